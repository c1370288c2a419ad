# One obvious command for each job. `make help` lists them.
SHELL := /bin/bash
# Python 3.12 for `sam build` (runtime python3.12): pyenv's 3.12, else a real python3.12 on PATH
# (pyenv shims on PATH only dispatch to the selected version, so they are checked by running them).
PY312 ?= $(shell p=$$(pyenv prefix 3.12 2>/dev/null) && echo $$p/bin/python3.12 || ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || { python3.12 -c "import sys" 2>/dev/null && command -v python3.12; })
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
export PYTHONPATH := layers/router_core:.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup run test test-fast complexity lint typecheck validate checkov build deploy deploy-site create-key \
        bench bench-learning bench-overhead bench-capabilities bench-classifier bench-latency bench-local bench-cost bench-live bench-fuzz bench-streaming clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/python: requirements-dev.txt layers/router_core/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(BIN)/python

setup: $(BIN)/python ## create .venv with every dependency (runs automatically)

run: setup ## run the whole system locally on 127.0.0.1 (API, pages, moto, simulated models, traffic)
	$(BIN)/python -m tools.local_stack $(ARGS)

test: setup ## run every test: unit, integration (moto), e2e (local stack), browser (chromium)
	$(BIN)/python -m pytest

test-fast: setup ## unit and integration tests only
	$(BIN)/python -m pytest -m "unit or integration"

complexity: setup ## cyclomatic complexity report (radon): every function of router_core and functions/ ranked C or worse
	$(BIN)/radon cc -s -n C layers/router_core/router_core functions

lint: setup ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup ## mypy (strict) on the domain library
	$(BIN)/mypy

$(SAM_VENV)/bin/sam:
	$(PY312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	# cfn-lint is pinned: releases >= 1.54 no longer run the SAM translator and miss SAM errors.
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0 cfn-lint==1.53.3

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30

validate: $(SAM_VENV)/bin/sam ## sam validate --lint (cfn-lint 1.53.3) on template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

checkov: $(CHECKOV_VENV)/bin/checkov ## checkov on template.yaml; every skipped check is justified in .checkov.yaml
	$(CHECKOV_VENV)/bin/checkov --skip-download --config-file .checkov.yaml -f template.yaml --framework cloudformation

build: $(SAM_VENV)/bin/sam ## sam build (layer built for python3.12 / arm64)
	PATH="$(dir $(PY312)):$$PATH" $(SAM_VENV)/bin/sam build --template template.yaml

deploy: build ## sam deploy --guided (needs AWS credentials)
	$(SAM_VENV)/bin/sam deploy --guided

deploy-site: setup ## upload static_site/ to the stack's bucket and invalidate CloudFront: make deploy-site STACK=name
	$(BIN)/python -m tools.deploy_site --stack $(STACK)

create-key: setup ## create a client key on a deployed stack: make create-key STACK=name NAME=alice
	$(BIN)/python -m tools.keys create --stack $(STACK) --name $(NAME)

bench: bench-learning bench-overhead bench-capabilities bench-classifier bench-latency bench-local bench-cost bench-live bench-fuzz bench-streaming ## every benchmark (tables printed, JSON in benchmarks/results/)

bench-learning: setup ## MMLU replay: APGR, CPT(50%), regret, drift recovery, swapped quality tiers
	$(BIN)/python -m benchmarks.learning

bench-overhead: setup ## in-process decision time (classify + sample + pick) for 10 models
	$(BIN)/python -m benchmarks.decision_overhead

bench-capabilities: setup ## capability filter cost per request (what it needs, who can serve it) for 10 models
	$(BIN)/python -m benchmarks.capability_filter

bench-classifier: setup ## classifier accuracy per type, macro-F1, confusion on labelled prompts (dev, held-out)
	$(BIN)/python -m benchmarks.classifier_eval

bench-latency: setup ## router-added latency through the local API vs the upstream called directly
	$(BIN)/python -m benchmarks.local_latency

bench-local: setup ## the local stack as a server: 32 clients at 1 s model latency, 64 connections, hanging model, crash/restart cycles, 100,000-turn restart
	$(BIN)/python -m benchmarks.local_load $(ARGS)

bench-streaming: setup ## streamed answers through the local stack vs the upstream direct: time to first token, spread, a 60 s answer, the openai client (ARGS=--quick: 2 min)
	$(BIN)/python -m benchmarks.streaming $(ARGS)

bench-cost: setup ## measured DynamoDB units, log bytes and time per request, signal and poll; AWS cost per 1M requests and per dashboard tab-day
	$(BIN)/python -m benchmarks.aws_cost

bench-live: setup ## local stack + tools.traffic, 10 seeds × 2 shapes: pick shares, savings, quality, regret vs the oracle
	$(BIN)/python -m benchmarks.live $(ARGS)

bench-fuzz: setup ## malformed requests on every route (10,000 each, fresh seed; ARGS="--requests N --seed S"): responses ≥ 500 (target 0)
	$(BIN)/python -m benchmarks.fuzz $(ARGS)

clean: ## remove virtualenvs, build output and local state
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .local
