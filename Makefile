# gancodec: `make demo` and `make test` set everything up themselves (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# CPU torch by default. Where a local torch wheel is provided (these build machines), use it;
# elsewhere take PyTorch's CPU index. For CUDA: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_INDEX ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)*),,https://download.pytorch.org/whl/cpu)
TORCH_PIP := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

.PHONY: setup demo test bench gate grow clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP) "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

demo: setup
	$(BIN)/python -m gancodec.demo

test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -ra --durations=15

bench: setup
	$(BIN)/python benchmarks/codec_speed.py

# ship an experiment when it beats the shipped model: make gate EXP=name VERSION=v1.7 [DRY=1] (docs/training.md)
gate: setup
	@test -n "$(EXP)" -a -n "$(VERSION)" || { echo "usage: make gate EXP=name VERSION=v1.7 [DRY=1]"; exit 2; }
	$(BIN)/python -m gancodec.gate --exp $(EXP) --version $(VERSION) $(if $(DRY),--dry-run)

# the daily growing run: every trained part continues under the grow profile's budgets, in its own
# worktree, at the lowest priority (scripts/grow.sh; docs/training.md "Growing every day")
grow: setup
	PATH=$(abspath $(BIN)):$$PATH scripts/grow.sh

clean:
	rm -rf $(VENV) demo-out .pytest_cache
