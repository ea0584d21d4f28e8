# The two commands a newcomer needs: `make run` and `make test`. Everything else is set-up they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE := .state
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test venv lint test-deps test-binaries flux-crds flux-controllers storage-servers system-deps bench-deps certs bench clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

certs: venv
	$(BIN)/fluxwarden certs generate --out $(STATE)/certs --if-missing

## make run: start the admission webhook on its defaults (https://127.0.0.1:8443, metrics on :8080).
run: venv certs
	$(BIN)/fluxwarden serve --cert-dir $(STATE)/certs

## The real kube-apiserver, etcd, kustomize and helm, built from Go modules once and cached.
test-binaries:
	@tests/cluster/build.sh >/dev/null

## The CRDs of the pinned upstream Flux release (tests/flux/go.mod), fetched from Go modules once and cached.
flux-crds:
	@tests/flux/crds.sh >/dev/null

## Upstream Flux's binaries (same pin): the flux CLI, kustomize-, helm- and source-controller, built in one go build and cached.
flux-controllers:
	@tests/flux/controllers.sh >/dev/null

## The storage servers of the Bucket/OCI source tests, cached: versitygw (S3) and the distribution registry
## (OCI) built from tests/storage/go.mod, Azurite (Azure Blob) installed from tests/azurite/package-lock.json.
storage-servers:
	@tests/storage/build.sh >/dev/null
	@tests/azurite/install.sh >/dev/null

## Everything the suite runs besides Python, built side by side (each script says what it builds and
## how long that takes cold; a warm cache returns at once).
test-deps:
	@$(MAKE) --no-print-directory -j4 test-binaries flux-crds flux-controllers storage-servers

lint: venv
	$(BIN)/ruff check fluxwarden tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## Debian packages the tests run for real: openssh-server's sshd (started by the tests, never as a service).
# Debian packages the tests (sshd) and benchmarks (wrk) run; installed only when missing.
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "install $$1 as root (apt-get install $$1)" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

system-deps:
	@if [ ! -x /usr/sbin/sshd ]; then set -- openssh-server; $(APT_INSTALL) openssh-server; fi

bench-deps:
	@if ! command -v wrk >/dev/null; then set -- wrk; $(APT_INSTALL) wrk; fi

## One pytest run on TEST_WORKERS workers, each test file whole on one worker (e2e modules keep their
## module-scoped servers and run in order). The e2e modules are collected first, so the quick unit and
## integration files fill the gaps the e2e waits leave on the cores. Each worker that runs e2e tests
## starts a control plane of its own.
TEST_WORKERS ?= 4
test: venv test-deps system-deps lint
	@export FLUXWARDEN_TEST_BIN=$$(tests/cluster/build.sh) FLUXWARDEN_FLUX_CRDS=$$(tests/flux/crds.sh) \
	  FLUXWARDEN_FLUX_CONTROLLERS=$$(tests/flux/controllers.sh) FLUXWARDEN_STORAGE_BIN=$$(tests/storage/build.sh) \
	  FLUXWARDEN_AZURITE=$$(tests/azurite/install.sh) && set -x && \
	  $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile tests/e2e tests/integration tests/unit

## make bench: webhook throughput and latency against a bare Starlette+uvicorn TLS endpoint.
bench: venv bench-deps
	$(BIN)/python -m bench.webhook

clean:
	rm -rf $(VENV) $(STATE) *.egg-info
