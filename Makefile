# speechseq developer entry points. A fresh machine needs only:  make quickstart   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the CPU build through constraints.txt; GPU users: make setup CONSTRAINTS=your-constraints.txt
CONSTRAINTS ?= constraints.txt
SCALE ?= tiny

.PHONY: setup quickstart test test-slow bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	bash tools/install_system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) torch
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

# The main job: synthesize the tiny corpus, train conformer-CTC, decode, print the WER table.
quickstart: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" egs/synth_en/asr/run.sh --scale $(SCALE)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/bench_fbank.py && $(PY) benchmarks/bench_sampler.py && $(PY) benchmarks/bench_decode.py \
	  && $(PY) benchmarks/bench_train.py && $(PY) benchmarks/bench_asr_models.py --funasr-size

clean-venv:
	rm -rf $(VENV)
