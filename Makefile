# Liandong: the two Quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_DATA ?= var/demo
DEMO_FLAGS ?=

.PHONY: setup setup-test demo test check unit lint fmt bench soak soak-test clean

setup:
	@scripts/bootstrap.sh runtime

setup-test:
	@scripts/bootstrap.sh test

## Starts the fixture cameras and the gateway on the embedded defaults, with the demo's own data dir
## (never `var`, where `liandong serve` keeps its data); Ctrl-C stops both.
demo: setup
	@$(PY) -m fixtures.demo --host $(HOST) --port $(PORT) --data-dir $(DEMO_DATA) $(DEMO_FLAGS)

check: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy gateway camera_registry acl streams snapshot web storage httpdigest gb28181 recording ptz bench fixtures/demo.py fixtures/district_sample.py fixtures/gb28181_device.py fixtures/onvif_camera.py fixtures/gb28181_superior.py
	$(VENV)/bin/mypy --strict gateway/wiring.py gateway/container.py gateway/app.py gateway/routes gateway/policy

## The whole suite, with every service its tests start themselves (RTSP fixture, Redis, Chromium).
test: check
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

fmt: setup-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup-test
	$(PY) -m bench.acl_bench --out bench/results/acl.json

## The long run (issue #10; not part of `make test`): 20 WebRTC (+ HLS once served) viewers, flaps,
## policy changes, alarms and positions for SOAK_MINUTES (default 30); pass/fail JSON, exit 1 on fail.
SOAK_MINUTES ?= 30
soak: setup-test
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES) --out bench/results/soak.json

## The same in one minute, as a test (~90 s; also left out of `make test`).
soak-test: setup-test
	LIANDONG_SOAK_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/bench/test_soak.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
