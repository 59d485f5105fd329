#!/usr/bin/env python3
"""moto's AWS emulation, served with HTTP/1.1 keep-alive.

    moto-keep-alive.py PORT

`moto_server` answers every request with `Connection: close` (its werkzeug development server
always does), so a client opens a new TCP connection for every call. DynamoDB keeps a client's
connection open, and the AWS SDKs reuse it. scripts/measure-cpu serves the same moto
application with waitress instead, so the CPU a handler spends per write is measured as a
deployed function spends it, without a TCP handshake and teardown per request. Listens on
127.0.0.1 only.
"""

import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from waitress import serve


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit(__doc__.strip().splitlines()[2].strip())
    serve(DomainDispatcherApplication(create_backend_app), host="127.0.0.1", port=int(sys.argv[1]),
          threads=4, _quiet=True)


if __name__ == "__main__":
    main()
