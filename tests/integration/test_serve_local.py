"""scripts/serve_local.py: the embedded 0.5B model served by llama-server in the foreground, one ready line, the
harness's own openai_compatible config answered through it, stopped by SIGINT."""
import asyncio
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from spark_eval.config import PROJECT_ROOT
from spark_eval.models import llama_server
from spark_eval.models.base import GenerationParams, ModelConfigError
from spark_eval.models.pool import ModelPool
from tests.conftest import compose_config
from tests.integration.conftest import free_port


def test_serve_local_serves_the_embedded_model_until_interrupted(tmp_path):
    try:
        llama_server.binary()
    except ModelConfigError as e:
        pytest.skip(str(e))  # CI fails on this skip: setup builds it
    port = free_port()
    with (tmp_path / "server.log").open("w") as log:
        script = subprocess.Popen([sys.executable, "scripts/serve_local.py", "--model", "0.5b", "--port", str(port)],
                                  cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
                                  stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            ready = script.stdout.readline()
            assert ready == f"ready: http://127.0.0.1:{port}/v1\n", (tmp_path / "server.log").read_text()[-3000:]
            cfg = compose_config("model=openai_compatible", f"model.base_url=http://127.0.0.1:{port}/v1",
                                 "model.model=qwen2.5-coder-0.5b", "model.cache_path=null")
            pool = ModelPool()
            completion = asyncio.run(pool.closing(pool.get(cfg.model).complete(
                [{"role": "user", "content": "Name a numpy function."}], GenerationParams(max_tokens=4))))
            assert completion.text.strip() and 0 < completion.output_tokens <= 4
        finally:
            script.send_signal(signal.SIGINT)
            code = script.wait(60)
    assert code == 0 and script.stdout.read() == ""  # the ready line was its only line
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
