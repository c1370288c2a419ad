#!/bin/sh
# The Lambda Web Adapter runs this as the handler: the web server it forwards invocations to.
# /opt/python (the router core layer) and the runtime directory (boto3) are on the path the
# way the Python runtime would put them.
PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/opt/python:${LAMBDA_RUNTIME_DIR:-/var/runtime}" exec python3 -m stream_server
