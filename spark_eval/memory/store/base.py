"""The memory store's vocabulary: the item, the store's protocol (split by caller), its one-line error, and the
database URL's helpers (recognise one, hide its secrets)."""
from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence
from urllib.parse import unquote

import numpy as np

from spark_eval.errors import UserError

SCHEMA_VERSION = 1
KINDS = ("doc", "insight")
STATUSES = ("active", "retired")
OPS = ("ADD", "MERGE", "UPDATE", "RETIRE", "REJECT")

LOCK_WAIT_S = 120.0  # how long a writer waits for the write lock by default (memory.lock_wait_s)


class MemoryStoreError(UserError):
    """The store file cannot be used as asked; the one-line message names the file and the fix."""


@dataclass(frozen=True)
class Item:
    """A documentation chunk or an insight. JSON fields come back as JSON gives them (tuples as lists)."""

    id: str
    """`doc:numpy:numpy.linalg.norm#parameters` or `ins:<hex>`."""
    kind: str
    """`doc` or `insight`."""
    library: str | None
    """DS-1000 library name (`Numpy`, `Pandas`, ...), or None for general items."""
    title: str
    content: str
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    """doc: qualname, version, section, objtype; insight: applies_when, source, ..."""
    provenance: tuple[dict[str, Any], ...] = ()
    """Where an insight came from: `{problem_id, family, record_key, round, epoch, model}` each (`model`: the coder
    whose attempt it was; `poison: true` on a source the poisoning arm wrote)."""
    helpful: int = 0
    harmful: int = 0
    endorsements: int = 1
    status: str = "active"
    """`active` or `retired`."""
    created_round: int | None = None

    @property
    def families(self) -> tuple[str, ...]:
        """Sorted unique origin families of the provenance, as `Lib/id` strings."""
        labels = {_family_label(p["family"]) for p in self.provenance if p.get("family") is not None}
        return tuple(sorted(labels))

    @property
    def contributors(self) -> tuple[str, ...]:
        """Sorted unique models whose attempts the insight came from (empty for documentation)."""
        return tuple(sorted({str(p["model"]) for p in self.provenance if p.get("model")}))

    @property
    def poison(self) -> bool:
        """True when a source of the insight was written by the poisoning arm (never shown to coder or judges)."""
        return poisoned(self.provenance)


def poisoned(provenance: Sequence[Any]) -> bool:
    """Whether any source of a provenance is marked as written by the poisoning arm."""
    return any(isinstance(s, Mapping) and bool(s.get("poison")) for s in provenance or ())


class ItemStore(Protocol):
    """Items and settings: what a knowledge base builds and a curator reads. Contracts are on SQLStore."""

    path: str

    def put_items(self, items: Sequence[Item]) -> None: ...
    def get_items(self, ids: Sequence[str]) -> list[Item]: ...
    def items(self, kind: str | None = None, status: str | None = "active") -> list[Item]: ...
    def count(self, kind: str | None = None, status: str | None = "active") -> int: ...
    def count_by_library(self, kind: str) -> dict[str, int]: ...
    def get_meta(self, key: str, default: Any = None) -> Any: ...
    def set_meta(self, key: str, value: Any) -> None: ...


class CurationLog(Protocol):
    """What curation changes besides items: outcome counters, retirement, and the log of operations."""

    def add_counters(self, deltas: dict[str, tuple[int, int]]) -> None: ...
    def set_status(self, ids: Sequence[str], status: str) -> None: ...
    def log_ops(self, ops: Sequence[dict[str, Any]]) -> None: ...
    def ops(self) -> list[dict[str, Any]]: ...


class CuratedStore(ItemStore, CurationLog, Protocol):
    """What the curator uses."""


class TraceLog(Protocol):
    """The traces learned from: a resumed or concurrent learner skips what is there."""

    def add_traces(self, traces: Sequence[dict[str, Any]]) -> list[str]: ...
    def traces(self) -> list[dict[str, Any]]: ...
    def known_traces(self, keys: Sequence[str]) -> set[str]: ...


class EmbeddingStore(Protocol):
    """Vectors by embedder and text hash (an `embed.EmbeddingCache`)."""

    def get_embeddings(self, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]: ...
    def put_embeddings(self, model: str, vectors: dict[str, np.ndarray]) -> None: ...


class MemoryStore(CuratedStore, TraceLog, EmbeddingStore, Protocol):
    """Where Spark keeps what it knows (an embedded SQLite file, or a PostgreSQL database that several machines
    share): everything a memory opens, each caller typed with the part it uses. Each method's contract is
    documented on SQLStore."""

    def state_hash(self, kind: str | None = None) -> str: ...
    def snapshot(self, dest: Path) -> dict[str, Any]: ...
    def transaction(self) -> AbstractContextManager[Any]: ...
    def close(self) -> None: ...


def is_database_url(location: str | Path) -> bool:
    """True for `postgresql://...` (or `postgres://...`): a store on a database server."""
    return str(location).startswith(("postgresql://", "postgres://"))


# A URL's password: from the user name's colon to the last @ before the query (an unencoded @ or / in a password
# must not leave part of it shown); and the query's `password` and `sslpassword` values.
_URL_PASSWORD = re.compile(r"^(\w+://[^:/@?#]*:)([^?#]*)@")
_PARAM_SECRET = re.compile(r"([?&](?:ssl)?password=)([^&#]*)")
# A database URL in free text, also as Hydra shows it in overrides (`postgresql\://user\:secret@host/db`).
_DATABASE_URL = re.compile(r"\bpostgres(?:ql)?\\?://(?:\\.|[^\s'\"\\])+")
_SHORTEST_MASKED = 3  # secrets shorter than this are not searched for in free text (they would mask any word)


def shown_url(url: str) -> str:
    """A database URL with its password and sslpassword hidden, for messages, logs, manifests and the resume
    identity (a file's path, or anything else, comes back as it is)."""
    return _PARAM_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def url_password(url: str) -> str | None:
    """The password a database URL carries before its host, as written (percent-encoded); None without one."""
    found = _URL_PASSWORD.match(url)
    return found.group(2) if found else None


def url_secrets(url: str) -> list[str]:
    """What a database URL carries that must not be shown (its password, `password` and `sslpassword`
    parameters), as written and percent-decoded, longest first."""
    written = [url_password(url) or "", *(found.group(2) for found in _PARAM_SECRET.finditer(url))]
    return sorted({s for w in written if w for s in (w, unquote(w))}, key=lambda s: (-len(s), s))


def mask_database_urls(text: str) -> str:
    """`text` with the password of every database URL in it hidden (`shown_url`; a backslash-escaped one is shown
    unescaped): log lines that quote one."""
    return _DATABASE_URL.sub(lambda found: shown_url(re.sub(r"\\(.)", r"\1", found.group(0))), text)


def mask_secrets(text: str, url: str) -> str:
    """`text` (a driver's message about `url`) with the URL's secrets hidden wherever it echoes them."""
    text = mask_database_urls(text.replace(url, shown_url(url)))
    for secret in url_secrets(url):
        if len(secret) >= _SHORTEST_MASKED:
            text = text.replace(secret, "***")
    return text


def _family_label(family: Any) -> str:
    """`Numpy/12` from ("Numpy", 12), ["Numpy", 12] or "Numpy/12"."""
    return family if isinstance(family, str) else "/".join(str(part) for part in family)
