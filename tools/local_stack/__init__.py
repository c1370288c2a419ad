"""The whole router on 127.0.0.1 with no AWS account: `python -m tools.local_stack`.

The stack reads `template.yaml` (through aws-sam-translator) for its routes, auth, CORS,
functions, table and queues, runs the real handlers in their own execution environments
(processes) behind a local HTTP API that speaks API Gateway HTTP API payload v2.0, verifies
SigV4 on IAM routes, keeps DynamoDB and SQS in moto (journaled to the state directory before
any write is acknowledged), polls the signal queue like Lambda's event source mapping, sweeps
TTL-expired items and serves `static_site/`. On 127.0.0.1 only.
"""
