"""Serve the embedded model to other tools over HTTP, with llama.cpp's own server, in the foreground:

    .venvs/harness/bin/python scripts/serve_local.py [--model 0.5b|1.5b] [--port 8080]

It prints one line, `ready: http://127.0.0.1:8080/v1`, once the server answers; that base URL speaks OpenAI's
Chat Completions (with `json_schema`) and Responses API and, at the server's root, Anthropic's Messages API. The
model's name in requests is the config's (`qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b`). Ctrl-C or SIGTERM stops the
server; the script exits with the server's code. The weights are the embedded ones (`model=local`, `model=local_1p5b`:
the registry part packages `make setup` installs), the server the one `make setup` builds. The harness itself can
be pointed at it: `python -m spark_eval model=openai_compatible model.base_url=http://127.0.0.1:8080/v1`.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from spark_eval.config import compose_config
from spark_eval.errors import UserError
from spark_eval.models import llama_server
from spark_eval.models.weights import resolve_weights

MODELS = {"0.5b": "local", "1.5b": "local_1p5b"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="0.5b", help="which embedded model (default 0.5b)")
    parser.add_argument("--port", type=int, default=8080, help="the port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)
    model = compose_config(f"model={MODELS[args.model]}").model
    try:
        weights = resolve_weights(dict(model.weights), model.weights_dir)
        options = ["--alias", model.name, "--ctx-size", str(model.n_ctx), "--threads", str(model.n_threads),
                   "--flash-attn", "on" if model.flash_attn else "off"]
        command = llama_server.command(weights, args.port, *options)
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    # its own session: a Ctrl-C at the terminal reaches this script alone, which passes it on once (a second
    # SIGINT would make llama-server stop at once instead of finishing what it is doing)
    server = subprocess.Popen(command, stdout=sys.stderr, start_new_session=True)
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        server.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    try:
        llama_server.wait_until_ready(server, f"http://127.0.0.1:{args.port}")
    except UserError as e:
        if not stopping:
            print(e, file=sys.stderr)
            server.terminate()
        return exit_code(server.wait())
    print(f"ready: http://127.0.0.1:{args.port}/v1", flush=True)
    return exit_code(server.wait())


def exit_code(returncode: int) -> int:
    """The server's exit code; killed by a signal, the shell's 128 + its number."""
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
