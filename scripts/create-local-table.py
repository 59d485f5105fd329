#!/usr/bin/env python3
"""Create the events table in a local DynamoDB (moto server) from template.yaml.

    scripts/create-local-table.py ENDPOINT_URL TABLE_NAME [--template template.yaml]
    scripts/create-local-table.py --endpoint-url URL --table-name NAME

The key schema, attribute definitions, indexes, billing mode and TTL are read
from the EventsTable resource of the SAM template, so they are written in one
place only. Idempotent: an existing table is left as it is (TTL is still
ensured). Needs boto3 (installed with moto into .venv by scripts/tools.sh).
"""

import argparse
import os
import sys
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parent.parent
RESOURCE = "EventsTable"
# Table properties that CreateTable takes as they are written in the template.
COPIED = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation short-form tags (!Ref, !Sub, ...)."""


def _unknown_tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"!{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _unknown_tag)


def table_properties(template_path):
    with open(template_path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)
    resource = template["Resources"][RESOURCE]
    if resource.get("Type") != "AWS::DynamoDB::Table":
        sys.exit(f"{template_path}: {RESOURCE} is not an AWS::DynamoDB::Table")
    return resource["Properties"]


def create_table(client, name, props):
    request = {key: props[key] for key in COPIED if key in props}
    try:
        client.create_table(TableName=name, **request)
        print(f"created table {name}")
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
        print(f"table {name} already exists")
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": True,
                },
            )
            print(f"enabled TTL on {ttl['AttributeName']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", required=True, help="local DynamoDB, e.g. http://127.0.0.1:5055")
    parser.add_argument("--table-name", action="append", required=True,
                        help="table to create; repeat to create several in one run")
    parser.add_argument("--template", default=str(REPO / "template.yaml"))
    args = parser.parse_args()

    # A local endpoint still wants credentials and a region; never real ones.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=region)
    properties = table_properties(args.template)
    for name in args.table_name:
        create_table(client, name, properties)


if __name__ == "__main__":
    main()
