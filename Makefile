# Asisten Prokus: every set-up step is a target; `make chat` and `make test` need nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help

VENV     := .venv
NLU_VENV := .venv-nlu
PROKUS   := $(VENV)/bin/prokus
NLU_PORT ?= 5005
CHAT_USER ?= 1
WEB_PORT ?= 8000
export NLU_PORT
# Personal data is encrypted at rest with PROKUS_DATA_KEY; without one, a local
# development key is made in data/dev-data-key (never for production; PostgreSQL refuses).
DATA_KEY_NOTE := test -n "$$PROKUS_DATA_KEY$$PROKUS_DATA_KEY_FILE" || echo "==> No PROKUS_DATA_KEY set: personal data is encrypted with the local development key $${PROKUS_DEV_KEY_FILE:-data/dev-data-key}"

.PHONY: help setup train db chat test run worker web nlu-serve nlu-eval nlu-validate nlu-compare nlu-seeds conversations conversations-fresh bench bench-broadcast bench-load bench-e2e bench-web lint clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(NLU_VENV)/.installed ## Create .venv (bot) and .venv-nlu (Rasa) when missing

$(VENV)/.installed: pyproject.toml
	@echo "==> Bot environment: $(VENV) ($$(python3 --version))"
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NLU_VENV)/.installed: requirements-nlu.txt requirements-nlu.lock
	@PY310=$$(scripts/find-python310) || exit 1; \
	echo "==> NLU environment: $(NLU_VENV) ($$($$PY310 --version), rasa 3.6.21; the first time takes a few minutes)"; \
	test -x $(NLU_VENV)/bin/python || $$PY310 -m venv $(NLU_VENV); \
	$(NLU_VENV)/bin/python -m pip install --quiet --upgrade pip; \
	$(NLU_VENV)/bin/python -m pip install -r requirements-nlu.txt -c requirements-nlu.lock \
	  | { grep --line-buffered -E '^(Collecting|Successfully installed)' || true; }
	@$(NLU_VENV)/bin/rasa --version >/dev/null 2>&1 || { echo "rasa did not install in $(NLU_VENV)" >&2; exit 1; }
	@touch $@

train: setup ## Train the NLU model unless one matches config.yml + nlu/ data
	@$(PROKUS) nlu train

db: setup ## Migrate the database (DATABASE_URL, default SQLite in data/), load regions and demo data
	@$(DATA_KEY_NOTE)
	@$(PROKUS) db upgrade
	@$(PROKUS) regions load
	@$(PROKUS) db demo

chat: train db ## Chat in the console (starts and stops a local NLU server); CHAT_USER=ID
	@$(PROKUS) chat --user $(CHAT_USER)

test: train ## Run the test suite (SQLite, and PostgreSQL when reachable)
	@test -n "$$PROKUS_DATA_KEY$$PROKUS_DATA_KEY_FILE" || echo "==> No PROKUS_DATA_KEY set: the tests make a throw-away data key"
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

run: train db ## Run the Telegram bot (needs TELEGRAM_BOT_TOKEN)
	@$(PROKUS) run

web: $(VENV)/.installed ## Operator web console on http://127.0.0.1:$(WEB_PORT) (demo data + demo supervisor, local demo db only)
	@$(DATA_KEY_NOTE)
	@$(PROKUS) db upgrade
	@$(PROKUS) regions load
	@$(PROKUS) db demo
	@$(PROKUS) operators demo
	@$(PROKUS) serve --host 127.0.0.1 --port $(WEB_PORT)

worker: db ## Run an outbox worker on its own (reminders, broadcasts; needs TELEGRAM_BOT_TOKEN)
	@$(PROKUS) worker

nlu-serve: train ## Serve the Rasa NLU HTTP API on 127.0.0.1:$(NLU_PORT)
	@$(PROKUS) nlu serve --port $(NLU_PORT)

nlu-eval: train ## Evaluate the model on the held-out set (figures + results/nlu-eval*.*)
	@$(PROKUS) nlu eval

conversations: train ## Scripted KPM conversations on the real model; fails under 0.90 (CI) -> results/conversations.json
	@$(VENV)/bin/python scripts/run_conversations.py --min-rate 0.90

conversations-fresh: train ## The held-out conversations (never tuned on) -> results/conversations_fresh.json
	@$(VENV)/bin/python scripts/run_conversations.py --suite tests/conversations_fresh

nlu-validate: setup ## Check the NLU data with `rasa data validate`
	@cd $(CURDIR) && PYTHONPATH=$(CURDIR) RASA_TELEMETRY_ENABLED=false $(NLU_VENV)/bin/rasa data validate \
	  --config config.yml --domain nlu/domain.yml --data nlu/data --fail-on-warnings

nlu-compare: setup ## Compare pipelines, 5-fold CV, timings (slow: ~75 min) -> results/nlu-compare.json
	@$(NLU_VENV)/bin/python scripts/nlu_compare.py --folds $(or $(FOLDS),5)

nlu-seeds: setup ## Ours vs Rasa's default over several training seeds (~30 min) -> results/nlu-seeds.json
	@$(NLU_VENV)/bin/python scripts/nlu_compare.py --seeds $(or $(SEEDS),1 2 3)

bench: $(VENV)/.installed ## Benchmarks: KPM import (1M rows, SQLite + PostgreSQL), NIK lookup, region load/match
	@$(VENV)/bin/python scripts/bench_kpm.py --rows $(or $(ROWS),1000000)
	@$(VENV)/bin/python scripts/bench_regions.py

bench-broadcast: $(VENV)/.installed ## Broadcast to N (10000) at RATE (30)/s via a fake Bot API, with a SIGKILL; PAID=1: paid, PostgreSQL -> results/broadcast*.json
	@$(VENV)/bin/python scripts/bench_broadcast.py --recipients $(or $(N),10000) --rate $(or $(RATE),30) $(if $(filter 1 yes true,$(PAID)),--paid,)

bench-load: $(VENV)/.installed ## Load on `prokus run` (fake Bot API, stub NLU): latency, capacity, hung NLU, broadcast -> results/bench-load.json
	@$(VENV)/bin/python scripts/bench_load.py $(BENCH_LOAD_ARGS)

bench-e2e: train ## End to end, real NLU: echo ceiling, polling SQLite/PostgreSQL, 2 webhook instances behind HAProxy; USERS (200) -> results/bench-e2e.json
	@$(VENV)/bin/python scripts/bench_e2e.py --users $(or $(USERS),200) $(BENCH_E2E_ARGS)

bench-web: $(VENV)/.installed ## Console under 20 operators, 100,000 registrations on PostgreSQL: queue/detail/dashboard p95 -> results/bench-web.json
	@$(VENV)/bin/python scripts/bench_web.py $(BENCH_WEB_ARGS)

lint: $(VENV)/.installed ## Lint with ruff
	@$(VENV)/bin/ruff check .

clean: ## Remove environments, models and local data
	rm -rf $(VENV) $(NLU_VENV) models/*.tar.gz .rasa .pytest_cache .ruff_cache
