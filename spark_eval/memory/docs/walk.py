"""Documentation chunks for the knowledge base, built from the libraries installed in the grading environment.

No website is fetched: `docwalk.py` walks each library's public API inside the grading interpreter and
prints its signatures and docstrings; this module splits each docstring into chunks, one per numpydoc
or Google-style section (`Parameters`, `Args:`, `Examples`, ...), long ones in parts. Same interpreter
and libraries, same chunks in the same order, same hash.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spark_eval.types import LIBRARY_MODULES
from spark_eval.execution.environment import sandbox_env

log = logging.getLogger(__name__)

BUILDER_VERSION = "docs-1"
DOCWALK = Path(__file__).resolve().parents[2] / "programs" / "docwalk.py"
SECTION_CAP = 1500  # characters of docstring per chunk; longer sections are split into parts
SIGNATURE_CAP = 800  # some signatures (pandas.read_csv) run to thousands of characters
WALK_TIMEOUT_S = 1800.0
# Google-style headers (torch, TensorFlow, Keras) we split on; numpydoc headers are found by their underline.
GOOGLE_HEADERS = {
    "args", "arguments", "parameters", "keyword args", "keyword arguments", "kwargs", "other parameters",
    "returns", "return", "yields", "yield", "raises", "example", "examples", "note", "notes", "warning",
    "warnings", "see also", "attributes", "references", "reference", "shape", "call arguments",
    "input shape", "output shape", "usage",
}
SYNONYMS = {"args": "parameters", "arguments": "parameters", "return": "returns", "yield": "yields",
            "example": "examples", "note": "notes", "warning": "warnings", "reference": "references",
            "keyword-arguments": "keyword-args", "kwargs": "keyword-args"}
GOOGLE_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]{0,30}?)\s*::?\s*$")
UNDERLINE = re.compile(r"^-{3,}\s*$")
# How a long section is cut, coarsest first: paragraphs, then entries (a line that starts unindented,
# as each parameter of a numpydoc list does), then lines; a single overlong line is cut at the cap.
SPLITTERS = ((re.compile(r"\n\s*\n"), "\n\n"), (re.compile(r"\n(?=\S)"), "\n"), (re.compile(r"\n"), "\n"))


@dataclass(frozen=True)
class DocChunk:
    """One retrievable piece of a library's documentation."""

    id: str
    """Stable and unique: `doc:<module>:<qualname>#<section>`, plus `/p<k>` for the k-th part (k >= 2)."""
    library: str
    """The DS-1000 library name (`Numpy`), or the import name for other packages."""
    qualname: str
    """The object's canonical public name, e.g. `numpy.linalg.norm`."""
    version: str
    """The library's version in the grading environment."""
    objtype: str
    """module, class, function, method or property."""
    section: str
    """`overview` (signature and summary) or the section's slug: `parameters`, `see-also`, ..."""
    title: str
    """The qualified name, the section title and the part, for display."""
    text: str
    """What is indexed: starts with the qualified name (and the signature, for the overview)."""


def library_versions(python: str, modules: Sequence[str]) -> dict[str, str]:
    """The installed version of each module in `python` (one process): its distribution's, else
    `__version__`, else Python's."""
    script = (
        "import importlib, importlib.metadata as md, platform, sys\n"
        "for name in sys.argv[1:]:\n"
        "    dists = md.packages_distributions().get(name, [])\n"
        "    if len(set(dists)) == 1:\n"
        "        print(md.version(dists[0]))\n"
        "    else:\n"
        "        print(getattr(importlib.import_module(name), '__version__', None) or platform.python_version())\n"
    )
    out = _run_walk_env(python, ["-c", script, *modules], timeout=600)
    versions = out.stdout.split()
    if out.returncode != 0 or len(versions) != len(modules):
        raise RuntimeError(f"cannot read the versions of {', '.join(modules)} in {python}: {out.stderr.strip()[-500:]}")
    return dict(zip(modules, versions))


def walk_library(python: str, library: str, version: str | None = None) -> list[DocChunk]:
    """All documentation chunks of `library` (a DS-1000 name or an import name) as installed in `python`;
    `version` when the caller has read it already."""
    module = LIBRARY_MODULES.get(library, library)
    version = version or library_versions(python, [module])[module]
    chunks = [chunk for entry in run_docwalk(python, module)
              for chunk in chunk_object(entry, library, module, version)]
    ids = [chunk.id for chunk in chunks]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"docwalk gave duplicate chunk ids for {module}; the walk is not canonical")
    return chunks


def run_docwalk(python: str, module: str) -> list[dict]:
    """docwalk.py's JSON lines for `module`, run in `python` with a scratch home and quiet libraries."""
    out = _run_walk_env(python, [str(DOCWALK), module], timeout=WALK_TIMEOUT_S)
    summary = [line for line in out.stderr.splitlines() if line.startswith("docwalk ")]
    if out.returncode != 0 or not summary:
        raise RuntimeError(f"docwalk failed for {module} in {python}: {out.stderr.strip()[-2000:]}")
    log.info("%s", summary[-1])
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _run_walk_env(python: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """`python args...` in the walk's environment, with a scratch home removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="docwalk-") as home:
        return subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout, env=walk_env(home))


def walk_env(home: str) -> dict[str, str]:
    """The sandbox's allowlisted environment, a scratch home (Keras and Matplotlib write there) and a fixed
    hash seed, so that set orderings in signatures and docstrings repeat."""
    return sandbox_env({"HOME": home, "MPLCONFIGDIR": home, "KERAS_HOME": home, "PYTHONHASHSEED": "0"})


def chunk_object(entry: dict, library: str, module: str, version: str, cap: int = SECTION_CAP) -> list[DocChunk]:
    """Chunks of one walked object: an overview (signature and summary), then one per non-empty section.

    An object with neither a docstring nor a signature gives nothing: its name alone is not documentation.
    """
    qualname, doc = entry["qualname"], entry.get("doc") or ""
    signature = entry.get("signature") or ""
    if len(signature) > SIGNATURE_CAP:
        signature = signature[: SIGNATURE_CAP - 1] + "…"
    if not doc.strip() and not signature:
        return []
    chunks, taken = [], set()
    for title, body in split_sections(doc):
        if title and not body:
            continue
        slug = unique_slug(section_slug(title) if title else "overview", taken)
        for k, part in enumerate(split_text(body, cap), start=1):
            label = (f"{qualname} — {title}" if title else qualname) + (f" (part {k})" if k > 1 else "")
            head = f"{qualname}{signature}" if not title and k == 1 else label
            chunks.append(DocChunk(
                id=f"doc:{module}:{qualname}#{slug}" + (f"/p{k}" if k > 1 else ""),
                library=library, qualname=qualname, version=version, objtype=entry["objtype"], section=slug,
                title=label, text=f"{head}\n\n{part}".rstrip(),
            ))
    return chunks


def split_sections(doc: str) -> list[tuple[str, str]]:
    """[(title, body)]: the text before any header first (title ""), then each numpydoc or Google section."""
    lines = doc.split("\n")
    sections, title, start, i = [], "", 0, 0
    while i < len(lines):
        header = section_header(lines[i], lines[i + 1] if i + 1 < len(lines) else "")
        if header is None:
            i += 1
            continue
        sections.append((title, textwrap.dedent("\n".join(lines[start:i])).strip()))
        title, used = header
        i += used
        start = i
    sections.append((title, textwrap.dedent("\n".join(lines[start:])).strip()))
    return sections


def section_header(line: str, following: str) -> tuple[str, int] | None:
    """(title, lines it takes) when `line` opens a section: a numpydoc title over dashes, or `Args:`."""
    if line and not line[0].isspace() and len(line.strip()) <= 40 and UNDERLINE.match(following):
        return line.strip(), 2
    match = GOOGLE_HEADER.match(line)
    if match and match.group(1).strip().lower() in GOOGLE_HEADERS:
        return match.group(1).strip(), 1
    return None


def section_slug(title: str) -> str:
    """`See Also` -> `see-also`; Google-style synonyms map to the numpydoc name (`Args` -> `parameters`)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    return SYNONYMS.get(slug, slug)


def unique_slug(slug: str, taken: set[str]) -> str:
    """`slug`, or `slug-2`, `slug-3`, ... when a docstring repeats a section (`Example:` twice)."""
    candidate, n = slug, 1
    while candidate in taken:
        n += 1
        candidate = f"{slug}-{n}"
    taken.add(candidate)
    return candidate


def split_text(text: str, cap: int, level: int = 0) -> list[str]:
    """`text` in parts of at most `cap` characters, cut at the coarsest boundary that fits."""
    if len(text) <= cap:
        return [text]
    if level == len(SPLITTERS):
        return [text[i : i + cap] for i in range(0, len(text), cap)]
    pattern, joiner = SPLITTERS[level]
    pieces = [piece for block in pattern.split(text) if block.strip()
              for piece in split_text(block, cap, level + 1)]
    parts: list[str] = []
    for piece in pieces:
        if parts and len(parts[-1]) + len(joiner) + len(piece) <= cap:
            parts[-1] += joiner + piece
        else:
            parts.append(piece)
    return parts


def chunks_hash(chunks: Sequence[DocChunk]) -> str:
    """sha256 over the chunks' ids and texts, in order."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk.id.encode() + b"\0" + chunk.text.encode() + b"\0")
    return digest.hexdigest()
