"""Finding llama.cpp's server: where setup links it, or one line naming the fix; a server that exits before it answers."""
import socket
import subprocess
import sys

import pytest

from spark_eval.models.base import ModelConfigError
from spark_eval.models.llama_server import binary, command, wait_until_ready


def test_a_missing_server_is_one_line_naming_make_setup(tmp_path):
    with pytest.raises(ModelConfigError) as missing:
        binary(tmp_path)
    assert "run `make setup`" in str(missing.value) and "\n" not in str(missing.value)


def test_the_server_is_found_where_setup_links_it(tmp_path):
    (tmp_path / "llama-server").write_text("")
    assert binary(tmp_path) == tmp_path / "llama-server"


def test_the_command_serves_the_weights_on_the_loopback_port(monkeypatch, tmp_path):
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    (tmp_path / "llama-server").write_text("")
    assert command("w.gguf", 8081, "--alias", "m") == [str(tmp_path / "llama-server"), "--model", "w.gguf", "--host",
                                                      "127.0.0.1", "--port", "8081", "--alias", "m"]


def test_a_server_that_exits_before_it_answers_is_one_line():
    """wait_until_ready stops at once when the server has exited (a taken port, weights it cannot load)."""
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelConfigError) as failed:
        wait_until_ready(exited, f"http://127.0.0.1:{port}", timeout_s=60)
    assert str(failed.value) == "llama-server exited with code 3 before it answered (its log says why)"
