"""Finding llama.cpp's server: where setup links it, or one line naming the fix."""
import pytest

from spark_eval.models.base import ModelConfigError
from spark_eval.models.llama_server import binary, command


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
