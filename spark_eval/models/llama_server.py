"""llama.cpp's own HTTP server, `llama-server`: OpenAI's Chat Completions and Responses, Anthropic's Messages.

`make setup` compiles it from the llama.cpp sources inside the llama_cpp_python sdist, in the same build as the
llama-cpp-python wheel (scripts/build_llama.sh), and links it into the harness environment's `bin/`. It serves the
embedded weights to other tools (scripts/serve_local.py) and is the real server the provider tests talk to.
"""
from __future__ import annotations

import json
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

from spark_eval.models.base import ModelConfigError

READY_TIMEOUT_S = 300.0  # loading 1.1 GB of weights from a cold disk on a busy machine


def binary(scripts_dir: str | Path | None = None) -> Path:
    """The `llama-server` of this environment (its `bin/`, where setup links it), or a one-line error naming the fix."""
    path = Path(scripts_dir or sysconfig.get_path("scripts")) / "llama-server"
    if not path.is_file():
        raise ModelConfigError(f"llama-server is not built in this environment (no {path}): run `make setup`")
    return path


def command(weights: str | Path, port: int, *options: str) -> list[str]:
    """The command that serves `weights` on 127.0.0.1:`port`, with llama-server's `options` (its own flags)."""
    return [str(binary()), "--model", str(weights), "--host", "127.0.0.1", "--port", str(port), *options]


def wait_until_ready(process: subprocess.Popen[bytes], root: str, api_key: str | None = None,
                     timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the server at `root` (`http://127.0.0.1:<port>` and its `--api-prefix`) answers `/health` with 200: it
    answers 503 while it loads the weights (and, under a prefix, 401 without its `--api-key`). A ModelConfigError
    when it exits first or does not answer in time."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ModelConfigError(f"llama-server exited with code {process.returncode} before it answered "
                                   "(its log says why)")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{root}/health", headers=headers), timeout=5) as reply:
                if reply.status == 200 and json.loads(reply.read() or b"{}").get("status", "ok") == "ok":
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass  # not listening yet, or 503 while loading
        time.sleep(0.2)
    raise ModelConfigError(f"llama-server did not answer {root}/health within {timeout_s:.0f} s")
