# `make check` mirrors CI (.ci/run) on an existing environment, plus the linters
# (pip install -e '.[test,dev]').
.PHONY: check lint test bench

check: lint test

lint:
	ruff format --check .
	ruff check .

test:
	python -m pytest

bench:
	OMP_NUM_THREADS=1 python benchmarks/train_speed.py
