# shellcheck shell=bash
# Sourced by scripts/test and scripts/local (`source scripts/tools.sh`).
#
# Creates or updates the project's Python virtualenv `.venv/` (repo root,
# gitignored) with the pinned tools below, and puts `.venv/bin` first on PATH:
#   moto_server          local DynamoDB for the tests and the local run
#   sam, cfn-lint        template checks and `sam build`
#   cargo-lambda         `cargo lambda watch/build` (sam's rust-cargolambda builder)
#   waitress             serves moto with keep-alive for scripts/measure-cpu
#   (boto3, which scripts/measure-cpu's Python peer runs on, comes with moto and
#   aws-sam-cli, which both require it; measure-cpu says so if it is missing)
#   checkov              the template's security scan, in a virtualenv of its own,
#                        .venv/checkov, since its dependencies clash with aws-sam-cli's
# A fresh machine needs only python3 and cargo. Re-sourcing is cheap: the
# install is skipped when the stamp in .venv records the same pins.

MAILHOOKS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAILHOOKS_VENV="$MAILHOOKS_ROOT/.venv"

# Pinned versions (tried together on the project's machines).
MAILHOOKS_PIP_PINS=(
  "moto[server,dynamodb,s3]==5.2.5"
  "cfn-lint==1.58.0"
  "aws-sam-cli==1.170.0"
  "cargo-lambda==1.9.2"
  "waitress==3.0.2"
)
MAILHOOKS_CHECKOV_PIN="checkov==3.3.30"

mailhooks_tools() {
  local stamp="$MAILHOOKS_VENV/.mailhooks-tools"
  local want
  want="$(printf '%s\n' "${MAILHOOKS_PIP_PINS[@]}")"

  if [ ! -x "$MAILHOOKS_VENV/bin/python" ]; then
    echo "tools: creating .venv" >&2
    python3 -m venv "$MAILHOOKS_VENV" || return 1
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || [ ! -x "$MAILHOOKS_VENV/bin/moto_server" ] || [ ! -x "$MAILHOOKS_VENV/bin/sam" ] \
    || [ ! -x "$MAILHOOKS_VENV/bin/cfn-lint" ] || [ ! -x "$MAILHOOKS_VENV/bin/cargo-lambda" ]; then
    echo "tools: installing ${MAILHOOKS_PIP_PINS[*]} into .venv (a few minutes on a fresh machine)" >&2
    # Downloads are unpacked under .venv rather than the system temp folder,
    # which can be a small in-memory one, and no wheel cache is kept.
    mkdir -p "$MAILHOOKS_VENV/tmp"
    TMPDIR="$MAILHOOKS_VENV/tmp" "$MAILHOOKS_VENV/bin/python" -m pip install --quiet \
      --disable-pip-version-check --no-cache-dir "${MAILHOOKS_PIP_PINS[@]}" || return 1
    rm -rf "$MAILHOOKS_VENV/tmp"
    printf '%s\n' "$want" >"$stamp"
  fi
}

mailhooks_checkov() {
  local venv="$MAILHOOKS_VENV/checkov"
  local stamp="$venv/.mailhooks-tools"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || return 1
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$MAILHOOKS_CHECKOV_PIN" ] || [ ! -x "$venv/bin/checkov" ]; then
    echo "tools: installing $MAILHOOKS_CHECKOV_PIN into .venv/checkov (a few minutes on a fresh machine)" >&2
    mkdir -p "$MAILHOOKS_VENV/tmp"
    TMPDIR="$MAILHOOKS_VENV/tmp" "$venv/bin/python" -m pip install --quiet \
      --disable-pip-version-check --no-cache-dir "$MAILHOOKS_CHECKOV_PIN" || return 1
    rm -rf "$MAILHOOKS_VENV/tmp"
    printf '%s\n' "$MAILHOOKS_CHECKOV_PIN" >"$stamp"
  fi
  # Only the checkov command goes on PATH (below), not the rest of its virtualenv.
  mkdir -p "$venv/path"
  ln -sf ../bin/checkov "$venv/path/checkov"
}

mailhooks_tools || { echo "tools: could not install the Python tools into .venv" >&2; return 1 2>/dev/null || exit 1; }
mailhooks_checkov || { echo "tools: could not install checkov into .venv/checkov" >&2; return 1 2>/dev/null || exit 1; }

# .venv/bin and checkov first, once (an activated or other virtualenv comes after them).
PATH=":$PATH:"
PATH="${PATH//:$MAILHOOKS_VENV\/bin:/:}"
PATH="${PATH//:$MAILHOOKS_VENV\/checkov\/path:/:}"
PATH="${PATH#:}"
export PATH="$MAILHOOKS_VENV/bin:$MAILHOOKS_VENV/checkov/path:${PATH%:}"
# Checks and builds run offline and without credentials.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0
