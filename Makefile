# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: run test bench clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

## make run: private Redis (unless REDIS_URL), migrate, demo user and jobs, then web + worker + clock.
## PORT=8001 make run (or make run PORT=8001) serves on another port; a taken port stops it at once.
run: $(STAMP)
	$(BIN)/python manage.py devrun $(if $(PORT),--port $(PORT))

## make test: the whole suite (browser tests skip themselves where chromium is missing).
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: every figure of docs/PERFORMANCE.md (PostgreSQL at 127.0.0.1:5432, its own jobdeck_perf*
## databases), run by a separate .venv-bench with the reference dashboards and profilers of bench/requirements.txt.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat requirements.txt bench/requirements.txt | cksum | cut -d' ' -f1)

$(BENCH_STAMP): requirements.txt bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r bench/requirements.txt
	rm -f $(BENCH_VENV)/.installed-* && touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-bench var staticfiles
