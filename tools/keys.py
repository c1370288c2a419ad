"""Create client keys for a deployed router: `python -m tools.keys create --name NAME --stack STACK`.

The key is printed once; only its SHA-256 hash is stored in the stack's DynamoDB table. Uses your
normal AWS credentials (profile, environment or SSO) and needs dynamodb:PutItem on the table.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def table_from_stack(stack: str, region: str | None) -> str:
    outputs = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)["Stacks"][0][
        "Outputs"
    ]
    for output in outputs:
        if output["OutputKey"] == "TableName":
            return str(output["OutputValue"])
    raise SystemExit(f"stack {stack!r} has no TableName output; is it this router's stack?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.keys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a client key and print it once")
    create.add_argument("--name", required=True, help="who the key is for (kept with the hash)")
    where = create.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="CloudFormation stack name of the deployed router")
    where.add_argument("--table", help="DynamoDB table name (the stack output TableName)")
    create.add_argument("--region", default=None, help="AWS region (default: your configured region)")
    args = parser.parse_args(argv)

    import os

    try:
        table = args.table or table_from_stack(args.stack, args.region)
        if args.region:
            os.environ["AWS_DEFAULT_REGION"] = args.region
        from router_core.keys import create_client_key
        from router_core.store import RouterStore

        key = create_client_key(RouterStore(table_name=table, queue_url="unused"), args.name)
    except (BotoCoreError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(key)
    print(f"# client key for {args.name!r}: shown once, stored only as a SHA-256 hash in {table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, "layers/router_core")
    raise SystemExit(main())
