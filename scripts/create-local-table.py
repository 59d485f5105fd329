#!/usr/bin/env python3
"""Create the events table (and the raw overflow bucket) in a local moto server from template.yaml.

    scripts/create-local-table.py --endpoint-url URL --table-name NAME [--bucket-name NAME]

The key schema, attribute definitions, indexes, billing mode and TTL are read
from the EventsTable resource of the SAM template, so they are written in one
place only. Idempotent: an existing table is left as it is (TTL is still
ensured). Needs boto3 (installed with moto into .venv by scripts/tools.sh).

--bucket-name creates the S3 bucket for raw payloads too large for an item
(RawBucket in the template), with the template's default encryption and public
access block; its lifecycle rule is left out (local runs keep events forever).
"""

import argparse
import os
import sys
from pathlib import Path

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parent.parent
RESOURCE = "EventsTable"
BUCKET_RESOURCE = "RawBucket"
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


def resource_properties(template_path, name, kind):
    with open(template_path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)
    resource = template["Resources"][name]
    if resource.get("Type") != kind:
        sys.exit(f"{template_path}: {name} is not an {kind}")
    return resource["Properties"]


def table_properties(template_path):
    return resource_properties(template_path, RESOURCE, "AWS::DynamoDB::Table")


def create_bucket(client, name, props):
    """The bucket with the template's encryption and public access block (plain values there)."""
    try:
        client.create_bucket(Bucket=name)
        print(f"created bucket {name}")
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        print(f"bucket {name} already exists")
    encryption = props.get("BucketEncryption")
    if encryption:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {("ApplyServerSideEncryptionByDefault" if key == "ServerSideEncryptionByDefault" else key): value
             for key, value in rule.items()}
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)


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
    parser.add_argument("--table-name", action="append", default=[],
                        help="table to create; repeat to create several in one run")
    parser.add_argument("--bucket-name", action="append", default=[],
                        help="raw overflow bucket to create (S3 on the same endpoint); repeatable")
    parser.add_argument("--template", default=str(REPO / "template.yaml"))
    args = parser.parse_args()

    # A local endpoint still wants credentials and a region; never real ones.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    if not args.table_name and not args.bucket_name:
        parser.error("give --table-name and/or --bucket-name")
    if args.table_name:
        client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=region)
        properties = table_properties(args.template)
        for name in args.table_name:
            create_table(client, name, properties)
    if args.bucket_name:
        s3 = boto3.client(
            "s3", endpoint_url=args.endpoint_url, region_name=region,
            config=Config(s3={"addressing_style": "path"}),
        )
        properties = resource_properties(args.template, BUCKET_RESOURCE, "AWS::S3::Bucket")
        for name in args.bucket_name:
            create_bucket(s3, name, properties)


if __name__ == "__main__":
    main()
