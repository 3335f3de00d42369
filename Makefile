# The developer workflow.  `make help` lists the targets; each is one or two
# commands you could type yourself (docs/development-guide.md explains them).

PYTHON ?= python3
URL ?= http://localhost:8081
NODES ?= 3
COMPOSE ?= docker compose
KUSTOMIZE_DIR ?= k8s/overlays/dev

.DEFAULT_GOAL := help
.PHONY: help build test lint run cluster create-jobs dev-up dev-down dev-logs \
	k8s-deploy k8s-delete bench bench-quick sim faults

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

build: ## Install the package with its test tools (pip install '.[test]')
	$(PYTHON) -m pip install '.[test]'

test: ## Run the whole test suite (the README's command)
	$(PYTHON) -m pytest -q

lint: ## ruff check, ruff format --check and mypy, as CI runs them
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

run: ## Run one node on the embedded default (REST API on :8080, data in ./data)
	$(PYTHON) -m scheduled_db run

cluster: ## Run a local cluster (NODES=3 by default; REST API on 8081, 8082, ...)
	$(PYTHON) -m scheduled_db cluster --nodes $(NODES)

create-jobs: ## Create example one-time and recurring jobs (URL=http://localhost:8081 by default)
	SCHEDULED_DB_URL=$(URL) sh scripts/create-jobs.sh

sim: ## Run the Raft simulator over 3000 seeds
	$(PYTHON) -m scheduled_db.testing.sim --seeds 3000

faults: ## Run the fault-injection suite (3 rounds of each scenario, about 15 minutes)
	$(PYTHON) -m tests.faults --rounds 3

dev-up: ## Start the compose cluster (3 nodes, nginx on :80, Prometheus, Grafana)
	$(COMPOSE) up -d --build

dev-down: ## Stop the compose cluster and remove its volumes
	$(COMPOSE) down -v

dev-logs: ## Follow the compose cluster's logs
	$(COMPOSE) logs -f

k8s-deploy: ## kubectl apply -k KUSTOMIZE_DIR (k8s/overlays/dev by default)
	kubectl apply -k $(KUSTOMIZE_DIR)

k8s-delete: ## Delete what k8s-deploy applied
	kubectl delete -k $(KUSTOMIZE_DIR)

bench: ## Run the whole benchmark suite and regenerate docs/benchmarks.md
	$(PYTHON) -m bench

bench-quick: ## A smoke run of the benchmarks (a few minutes), into a scratch directory
	$(PYTHON) -m bench --quick
