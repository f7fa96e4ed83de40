# Relationship streams: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data/CollegeMsg.txt.gz
PYTEST_ARGS ?=

.PHONY: help install run topics test test-unit lint format kafka kafka-stop kafka-reset bench bench-replay bench-rows bench-service bench-latency bench-recovery soak check-rules clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv (Python 3.11) with the pinned dependencies; quick when nothing changed

kafka: ## start the local Kafka broker (no-op if one answers); returns once it accepts connections
	bash deploy/kafka/kafka.sh start

kafka-stop: ## stop the local Kafka broker
	bash deploy/kafka/kafka.sh stop

kafka-reset: ## stop the local broker and delete its data
	bash deploy/kafka/kafka.sh reset

topics: install ## create the input, alert and dead-letter topics (STREAMS_PARTITIONS partitions)
	$(PY) -m streams topics create

run: install kafka topics ## install, start the broker, create topics, run one worker in the foreground
	@echo "worker web port: http://$${STREAMS_WEB_HOST:-127.0.0.1}:$${STREAMS_WEB_PORT:-6066}  (metrics: /metrics, health: /healthz /readyz)"
	$(PY) -m streams worker

test: install ## run the whole suite (unit + real-broker integration; starts the broker if needed)
	$(MAKE) kafka
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install ## run the unit tests only (no broker)
	$(PY) -m pytest -m "not broker and not prometheus" $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy
	$(PY) -m ruff check streams tests bench
	$(PY) -m ruff format --check streams tests bench
	$(PY) -m mypy streams

format: install ## apply ruff formatting and safe fixes
	$(PY) -m ruff check --fix streams tests bench
	$(PY) -m ruff format streams tests bench

bench-replay: install ## replay events/s vs a bare orjson parse loop, on >= 500k events
	$(PY) -m bench.bench_replay --data $(DATA)

bench-rows: install ## bytes per row, serialised and in memory
	$(PY) -m bench.bench_row_size --data $(DATA)

bench-service: install kafka ## one and two workers end to end vs a bare aiokafka consumer
	$(PY) -m bench.bench_service --data $(DATA)

bench-latency: install kafka ## alert latency in live (hybrid) mode, p50/p99
	$(PY) -m bench.bench_latency

bench-recovery: install kafka ## recovery after SIGKILL with 1M rows (local RocksDB kept, and lost)
	$(PY) -m bench.bench_recovery --rows 1000000

bench: bench-replay bench-rows bench-service bench-latency bench-recovery ## every benchmark (figures and ratios against same-run baselines)

soak: install kafka ## steady load for SOAK_MINUTES (default 30; SOAK_GUARANTEE=exactly_once) with RSS sampled; fails if memory keeps growing
	$(PY) bench/soak.py --minutes $${SOAK_MINUTES:-30}

check-rules: ## promtool: check Prometheus config and unit-test the alert rules
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

clean: ## remove the virtualenv and local state (not the broker)
	rm -rf $(VENV) .data
