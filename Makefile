# Relationship streams: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DATA := data/CollegeMsg.txt.gz
PYTEST_ARGS ?=

.PHONY: help install install-dev manifests run topics test test-unit lint format kafka kafka-stop kafka-reset kafka-cluster kafka-cluster-stop bench bench-replay bench-rows bench-service bench-codec bench-row-cache bench-partition-open bench-latency bench-recovery bench-large-worker bench-guarantees soak mutation check-rules clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml core/pyproject.toml core/Cargo.toml core/Cargo.lock core/streams_core.pyi $(wildcard core/src/*.rs)
	@command -v $(PYTHON_BIN) >/dev/null || { echo "error: $(PYTHON_BIN) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q ./core
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP) ## create .venv (Python 3.11) with the service's pinned runtime dependencies and the compiled core
install-dev: $(DEV_STAMP) ## install, plus what tests, lint, benchmarks and plots need (the `dev` extra)

kafka: ## start the local Kafka broker (no-op if one answers); returns once it accepts connections
	bash deploy/kafka/kafka.sh start

kafka-stop: ## stop the local Kafka broker
	bash deploy/kafka/kafka.sh stop

kafka-reset: ## stop the local broker and delete its data
	bash deploy/kafka/kafka.sh reset

kafka-cluster: ## start a local three-broker KRaft cluster (127.0.0.1:29092,29094,29096; replication 3, min ISR 2)
	bash deploy/kafka/cluster.sh start

kafka-cluster-stop: ## stop the local three-broker cluster (data kept; `deploy/kafka/cluster.sh reset` deletes it)
	bash deploy/kafka/cluster.sh stop

topics: install ## create the input, alert and dead-letter topics (STREAMS_PARTITIONS partitions)
	$(PY) -m streams topics create

run: install kafka topics ## install, start the broker, create topics, run one worker in the foreground
	@echo "worker web port: http://$${STREAMS_WEB_HOST:-127.0.0.1}:$${STREAMS_WEB_PORT:-6066}  (metrics: /metrics, health: /healthz /readyz)"
	$(PY) -m streams worker

test: install-dev ## run the whole suite: test-unit, then the real-broker tests (starts the broker if needed; cluster and TLS tests start their own)
	$(MAKE) test-unit
	$(MAKE) kafka
	$(PY) -m pytest -m "broker or prometheus or cluster or tls" $(PYTEST_ARGS)

# A test needs a broker exactly when it is marked `broker` (the local one), `cluster` or `tls` (brokers
# its fixtures start): the others run with STREAMS_BROKER at a closed port.
UNIT_BROKER := kafka://127.0.0.1:1

test-unit: install-dev ## run every test that needs no broker and no Prometheus server (STREAMS_BROKER: a closed port)
	STREAMS_BROKER=$(UNIT_BROKER) $(PY) -m pytest -m "not broker and not prometheus and not cluster and not tls" $(PYTEST_ARGS)

lint: install-dev ## ruff (lint + format check) and mypy
	$(PY) -m ruff check streams tests bench tools
	$(PY) -m ruff format --check streams tests bench tools
	$(PY) -m mypy streams tools

format: install-dev ## apply ruff formatting and safe fixes
	$(PY) -m ruff check --fix streams tests bench tools
	$(PY) -m ruff format streams tests bench tools

bench-replay: install-dev ## replay events/s vs a bare orjson parse loop (CollegeMsg x9 and the mention profile)
	$(PY) -m bench.bench_replay --data $(DATA)

bench-rows: install-dev ## bytes per row (serialised, RocksDB, memory) on CollegeMsg, the mention profile, one-event pairs
	$(PY) -m bench.bench_row_size --data $(DATA)

bench-retention: install-dev ## rows kept and peak RSS of a replay with and without row_ttl (mention profile, CollegeMsg)
	$(PY) -m bench.bench_retention --data $(DATA)

bench-service: install-dev kafka ## workers end to end (to all alerts out) vs a bare aiokafka consumer
	$(PY) -m bench.bench_service --data $(DATA)

bench-codec: install-dev kafka ## the compiled row codec against the Python reference: one worker, interleaved pairs, medians
	$(PY) -m bench.bench_codec

bench-row-cache: install-dev kafka ## worker peak RSS and events/s with rows on disk behind a 16 MB row cache, against every row in memory
	$(PY) -m bench.bench_row_cache

bench-partition-open: install-dev ## opening a partition of ~930k mention rows from its checkpoint's counts, against the scan of every row (no broker)
	$(PY) -m bench.bench_partition_open

bench-latency: install-dev kafka ## alert latency in live (hybrid) mode, p50/p99
	$(PY) -m bench.bench_latency

bench-recovery: install-dev kafka ## restart after SIGKILL (local RocksDB kept, and lost): CollegeMsg and ~930k mention rows
	$(PY) -m bench.bench_recovery --data $(DATA)

bench-large-worker: install-dev kafka ## one worker building ~20M mention rows: RSS as rows grow, RocksDB memory, restart after SIGKILL (~45 min)
	$(PY) -m bench.bench_large_worker

bench-guarantees: install-dev kafka ## the cost of exactly_once: one backlog under each guarantee, median of 3 runs
	$(PY) -m bench.bench_guarantees --data $(DATA)

bench: bench-replay bench-rows bench-retention bench-service bench-codec bench-row-cache bench-partition-open bench-latency bench-recovery bench-large-worker bench-guarantees ## every benchmark; each writes its section of docs/figures/benchmarks/results.json and redraws the plots

soak: install-dev kafka ## steady load for SOAK_MINUTES (default 30; SOAK_GUARANTEE=exactly_once) with RSS sampled; fails if memory keeps growing
	$(PY) bench/soak.py --minutes $${SOAK_MINUTES:-30}

manifests: install-dev ## regenerate deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/rules/
	$(PY) deploy/kubernetes/prometheusrule.py

mutation: install-dev ## mutation check of streams/engine (mutmut, fast engine tests; docs/testing.md); fails below MUTATION_MIN_SCORE % caught
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $${MUTATION_JOBS:-2}
	$(VENV)/bin/mutmut results
	$(VENV)/bin/mutmut export-cicd-stats
	$(PY) -m tools.mutation_score --min-score $${MUTATION_MIN_SCORE:-94.2}

check-rules: ## promtool: check Prometheus config and unit-test the alert rules
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

clean: ## remove the virtualenv and local state (not the broker)
	rm -rf $(VENV) .data
