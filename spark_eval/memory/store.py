"""The memory store: documentation chunks, insights, traces, embeddings and the curation log, in one SQLite file
(the embedded default, one machine) or one PostgreSQL database (`postgres.py`, shared across machines)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence
from urllib.parse import unquote

import numpy as np

from spark_eval.errors import UserError
from spark_eval.records import write_json, write_jsonl
from spark_eval.records.run import SNAPSHOT_INSIGHTS, SNAPSHOT_OPS, SNAPSHOT_STATE, SNAPSHOT_TRACES

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("doc", "insight")
STATUSES = ("active", "retired")
OPS = ("ADD", "MERGE", "UPDATE", "RETIRE", "REJECT")

LOCK_WAIT_S = 120.0  # how long a writer waits for the write lock by default (memory.lock_wait_s)
_CHUNK = 500  # ids per `IN (...)`, well under SQLite's limit on bound variables
_VECTOR = np.dtype("<f4")
_ITEM_COLUMNS = ("id", "kind", "library", "title", "content", "tags", "meta", "provenance",
                 "helpful", "harmful", "endorsements", "status", "created_round")
_OP_COLUMNS = ("seq", "op", "item_id", "round", "epoch", "detail", "time")
_TABLES = {"items": _ITEM_COLUMNS, "ops": _OP_COLUMNS, "traces": ("seq", "key", "body"),
           "embeddings": ("model", "text_hash", "vector"), "meta": ("key", "value")}
_HASHED_ROWS = ("SELECT id, content, tags, status, helpful, harmful, endorsements, provenance "
                "FROM items WHERE kind = ? ORDER BY id")
# Every write to a kind's items bumps kind_state.version (triggers, so raw SQL edits count too);
# state_hash caches the digest it computed for a version in the same row.
_BUMP = ("INSERT INTO kind_state (kind, version) VALUES ({}.kind, 1) "
         "ON CONFLICT (kind) DO UPDATE SET version = version + 1;")
_SCHEMA = (
    "CREATE TABLE items (id TEXT PRIMARY KEY, kind TEXT NOT NULL, library TEXT, title TEXT NOT NULL, "
    "content TEXT NOT NULL, tags TEXT NOT NULL, meta TEXT NOT NULL, provenance TEXT NOT NULL, "
    "helpful INTEGER NOT NULL, harmful INTEGER NOT NULL, endorsements INTEGER NOT NULL, "
    "status TEXT NOT NULL, created_round INTEGER)",
    "CREATE INDEX items_by_kind ON items (kind, id)",
    "CREATE INDEX items_by_status ON items (kind, status, id)",
    "CREATE TABLE ops (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, item_id TEXT, "
    "round INTEGER, epoch INTEGER, detail TEXT NOT NULL, time REAL NOT NULL)",
    "CREATE TABLE traces (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
    "CREATE TABLE embeddings (model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL, "
    "PRIMARY KEY (model, text_hash))",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE kind_state (kind TEXT PRIMARY KEY, version INTEGER NOT NULL, hash TEXT, hashed_version INTEGER)",
    f"CREATE TRIGGER items_inserted AFTER INSERT ON items BEGIN {_BUMP.format('NEW')} END",
    f"CREATE TRIGGER items_updated AFTER UPDATE ON items BEGIN {_BUMP.format('OLD')} {_BUMP.format('NEW')} END",
    f"CREATE TRIGGER items_deleted AFTER DELETE ON items BEGIN {_BUMP.format('OLD')} END",
)


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


class SQLStore:
    """What the SQLite and PostgreSQL stores share: the queries (written once, with `?` marks), the transactions
    that nest as savepoints, the state hash, snapshots and copies. A subclass connects, creates its schema, begins
    a read or write transaction its own way and turns its driver's errors into one-line `MemoryStoreError`s.

    Open one store per process; threads of a process may share it. Every call is one transaction;
    `transaction()` groups calls into one, and calls inside it join it. Write transactions are serialized across
    every process that shares the store, so a read-modify-write inside `transaction()` never loses an update.
    """

    path: str
    """Where the store is: a file, or a database URL with its password hidden (for messages and manifests)."""
    mark = "?"
    """The driver's parameter mark."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._db: Any = None

    # -- what a backend provides ----------------------------------------------------------------------

    def _begin(self, write: bool) -> None:
        """Begin a read or a write transaction (writers of every process in turn)."""
        raise NotImplementedError

    def _in_transaction(self) -> bool:
        raise NotImplementedError

    @contextmanager
    def _translated(self) -> Iterator[None]:
        yield

    def _connected(self) -> Any:
        """The connection, reconnected first if it was lost (a backend that can lose one)."""
        return self._db

    # -- transactions ---------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.mark == "?" else sql.replace("?", self.mark)

    def _run(self, db: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        return db.execute(self._sql(sql), args)

    def _run_many(self, db: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            db.cursor().executemany(self._sql(sql), rows)

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Any]:
        """A transaction, or a savepoint inside the open one, so that calls nest."""
        with self._lock, self._translated():
            nested = self._depth > 0
            if nested:
                self._db.execute(f"SAVEPOINT s{self._depth}")
            else:
                self._connected()
                self._begin(write)
            db = self._db
            self._depth += 1
            try:
                yield db
            except BaseException:
                self._end(nested, commit=False)
                raise
            self._end(nested, commit=True)

    def _end(self, nested: bool, commit: bool) -> None:
        self._depth -= 1
        try:
            if not self._in_transaction():  # the database already rolled back after an error of its own
                return
            if nested:
                if not commit:
                    self._db.execute(f"ROLLBACK TO s{self._depth}")
                self._db.execute(f"RELEASE s{self._depth}")
            elif not commit:
                self._db.execute("ROLLBACK")
            else:
                try:
                    self._db.execute("COMMIT")
                except Exception:
                    if self._in_transaction():  # leave the connection usable for the next call
                        self._db.execute("ROLLBACK")
                    raise
        except Exception:
            if commit:
                raise
            # rolling back failed too (a lost connection): the error that got us here is the one to report

    @contextmanager
    def transaction(self) -> Iterator[SQLStore]:
        """One write transaction around several calls: a read-modify-write is atomic across processes."""
        with self._tx(write=True):
            yield self

    # -- the MemoryStore protocol ---------------------------------------------------------------------

    def put_items(self, items: Sequence[Item]) -> None:
        """Insert, or replace by id (counters included: read-modify-write belongs in `transaction()`). NUL
        characters are removed first, with a warning: PostgreSQL's text cannot hold them, and every backend must
        store (and hash) the same content."""
        rows = [_item_row(_without_nul(item, self.path)) for item in items]
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ITEM_COLUMNS[1:])
        sql = (f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(_ITEM_COLUMNS))}) "
               f"ON CONFLICT (id) DO UPDATE SET {updates}")
        with self._tx(write=True) as db:
            self._run_many(db, sql, rows)

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        """The items asked for, in the order asked; unknown ids are skipped."""
        found: dict[str, Item] = {}
        with self._tx(write=False) as db:
            for chunk in _chunks(ids):
                sql = f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items WHERE id IN ({', '.join('?' * len(chunk))})"
                found.update((row[0], _item(row)) for row in self._run(db, sql, chunk))
        return [found[i] for i in ids if i in found]

    def items(self, kind: str | None = None, status: str | None = "active") -> list[Item]:
        """Items of a kind and status (None: any), ordered by id."""
        where, args = _where(kind, status)
        with self._tx(write=False) as db:
            rows = self._run(db, f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items{where} ORDER BY id", args).fetchall()
        return [_item(row) for row in rows]

    def count(self, kind: str | None = None, status: str | None = "active") -> int:
        where, args = _where(kind, status)
        with self._tx(write=False) as db:
            return self._run(db, f"SELECT count(*) FROM items{where}", args).fetchone()[0]

    def count_by_library(self, kind: str) -> dict[str, int]:
        """Active items of a kind per library; items without one count under `general`."""
        sql = "SELECT library, count(*) FROM items WHERE kind = ? AND status = 'active' GROUP BY library"
        with self._tx(write=False) as db:
            rows = self._run(db, sql, (kind,)).fetchall()
        return dict(sorted((library or "general", n) for library, n in rows))

    def add_counters(self, deltas: dict[str, tuple[int, int]]) -> None:
        """Add (helpful, harmful) to each item's counters, in place, so concurrent increments all count."""
        sql = "UPDATE items SET helpful = helpful + ?, harmful = harmful + ? WHERE id = ?"
        with self._tx(write=True) as db:
            missing = [i for i, (up, down) in deltas.items() if self._run(db, sql, (up, down, i)).rowcount == 0]
        if missing:
            log.warning("counters for %d unknown items ignored, e.g. %s", len(missing), missing[0])

    def set_status(self, ids: Sequence[str], status: str) -> None:
        _check("status", status, STATUSES)
        with self._tx(write=True) as db:
            self._run_many(db, "UPDATE items SET status = ? WHERE id = ?", [(status, i) for i in ids])

    def log_ops(self, ops: Sequence[dict[str, Any]]) -> None:
        """Append curation operations; the store numbers them and stamps the time."""
        now = time.time()
        rows = [(_check("op", o["op"], OPS), o.get("item_id"), o.get("round"), o.get("epoch"),
                 _canonical(o.get("detail", {})), now) for o in ops]
        with self._tx(write=True) as db:
            self._run_many(db, "INSERT INTO ops (op, item_id, round, epoch, detail, time) VALUES (?, ?, ?, ?, ?, ?)",
                           rows)

    def ops(self) -> list[dict[str, Any]]:
        with self._tx(write=False) as db:
            rows = self._run(db, f"SELECT {', '.join(_OP_COLUMNS)} FROM ops ORDER BY seq").fetchall()
        return [{**dict(zip(_OP_COLUMNS, row)), "detail": json.loads(row[5])} for row in rows]

    def add_traces(self, traces: Sequence[dict[str, Any]]) -> list[str]:
        """Append traces whose `key` is new; returns the keys this call added."""
        added = []
        sql = "INSERT INTO traces (key, body) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        with self._tx(write=True) as db:
            for trace in traces:
                if self._run(db, sql, (trace["key"], _canonical(trace))).rowcount:
                    added.append(trace["key"])
        return added

    def traces(self) -> list[dict[str, Any]]:
        """All traces in the order they were added."""
        with self._tx(write=False) as db:
            return [json.loads(body) for (body,) in self._run(db, "SELECT body FROM traces ORDER BY seq")]

    def known_traces(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that already have a trace (looked up by key; bodies are not read)."""
        found: set[str] = set()
        with self._tx(write=False) as db:
            for chunk in _chunks(keys):
                marks = ", ".join("?" * len(chunk))
                found.update(k for (k,) in self._run(db, f"SELECT key FROM traces WHERE key IN ({marks})", chunk))
        return found

    def get_embeddings(self, model: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored float32 vectors of `model` for the hashes asked; missing ones are absent."""
        found: dict[str, np.ndarray] = {}
        with self._tx(write=False) as db:
            for chunk in _chunks(text_hashes):
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN ({marks})"
                rows = self._run(db, sql, (model, *chunk))
                found.update((h, np.frombuffer(blob, dtype=_VECTOR).copy()) for h, blob in rows)
        return {h: found[h] for h in text_hashes if h in found}

    def put_embeddings(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        rows = [(model, h, np.ascontiguousarray(v, dtype=_VECTOR).tobytes()) for h, v in vectors.items()]
        sql = ("INSERT INTO embeddings (model, text_hash, vector) VALUES (?, ?, ?) "
               "ON CONFLICT (model, text_hash) DO UPDATE SET vector = excluded.vector")
        with self._tx(write=True) as db:
            self._run_many(db, sql, rows)

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._tx(write=False) as db:
            row = self._run(db, "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        sql = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        with self._tx(write=True) as db:
            self._run(db, sql, (key, _canonical(value)))

    def state_hash(self, kind: str | None = None) -> str:
        """sha256 over a kind's items (active and retired) in id order; with no kind, over every kind's hash.
        The same content gives the same hash in every backend."""
        kinds = (kind,) if kind else KINDS
        with self._tx(write=False) as db:
            states = {k: self._kind_digest(db, k) for k in kinds}
        self._remember(states)
        hashes = {k: digest for k, (digest, _, _) in states.items()}
        return hashes[kind] if kind else _combined(hashes)

    def _kind_digest(self, db: Any, kind: str) -> tuple[str, int, bool]:
        """(digest, version, computed now?): the cached digest when the kind has not changed since."""
        sql = "SELECT version, hash, hashed_version FROM kind_state WHERE kind = ?"
        row = self._run(db, sql, (kind,)).fetchone()
        version, cached, hashed_version = row or (0, None, None)
        if cached is not None and hashed_version == version:
            return cached, version, False
        digest = hashlib.sha256()
        for row in self._run(db, _HASHED_ROWS, (kind,)):
            digest.update(json.dumps(list(row), ensure_ascii=False).encode() + b"\n")
        return digest.hexdigest(), version, True

    def _remember(self, states: dict[str, tuple[str, int, bool]]) -> None:
        """Cache freshly computed digests, each only if its kind is still at the version it was computed for."""
        fresh = [(digest, version, k, version) for k, (digest, version, new) in states.items() if new and version]
        if fresh:
            with self._tx(write=True) as db:
                self._run_many(db, "UPDATE kind_state SET hash = ?, hashed_version = ? WHERE kind = ? AND version = ?",
                               fresh)

    def snapshot(self, dest: Path) -> dict[str, Any]:
        """Write insights.jsonl (retired too), ops.jsonl, traces.jsonl and state.json (last), each atomically."""
        with self.transaction():  # one consistent state; writers wait only while it is read
            insights, ops, traces = self.items("insight", status=None), self.ops(), self.traces()
            hashes = {k: self.state_hash(k) for k in KINDS}
            counts: dict[str, Any] = {k: {s: self.count(k, s) for s in STATUSES} for k in KINDS}
        counts.update(ops=len(ops), traces=len(traces))
        state = {"schema_version": SCHEMA_VERSION, "hash": _combined(hashes), "hashes": hashes, "counts": counts}
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        write_jsonl(dest / SNAPSHOT_INSIGHTS, [asdict(item) for item in insights])
        write_jsonl(dest / SNAPSHOT_OPS, ops)
        write_jsonl(dest / SNAPSHOT_TRACES, traces)
        write_json(dest / SNAPSHOT_STATE, state)
        return state

    def copy_into(self, dest: SQLStore) -> None:
        """Every row of this store (items, the log with its numbers and times, traces, embeddings, settings) into
        the empty store `dest`, from one consistent state: writers beside it wait while it is read."""
        with self.transaction(), dest.transaction():
            for table, columns in _TABLES.items():
                rows = self._run(self._db, f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                marks = ", ".join("?" * len(columns))
                dest._run_many(dest._db, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()


class SQLiteStore(SQLStore):
    """The embedded store: one SQLite file (WAL) that several processes of one machine read and write at once;
    writers take the file's write lock (BEGIN IMMEDIATE) in turn."""

    def __init__(self, path: str | Path, timeout_s: float = LOCK_WAIT_S) -> None:
        super().__init__()
        self.path = str(path)
        self.timeout_s = timeout_s
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._translated():
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        """Read the schema first (a damaged file fails here, before anything is written), then set up."""
        with self._translated():
            self._db.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            version = _schema_version(self.path, self._db)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        if version == 0:
            with self._tx(write=True) as db:
                if _schema_version(self.path, db) == 0:  # another process may have created it meanwhile
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _begin(self, write: bool) -> None:
        self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")

    def _in_transaction(self) -> bool:
        return self._db.in_transaction

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's complaints about the file itself into one line naming the file and the fix."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            error = _user_error(self.path, self.timeout_s, exc)
            if error is None:
                raise
            raise error from exc


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


def open_store(location: str | Path, lock_wait_s: float = LOCK_WAIT_S) -> SQLStore:
    """The store at `location`: a PostgreSQL database (`postgresql://user@host:port/db`), or else the embedded
    SQLite file at that path, created if absent. A writer waits up to `lock_wait_s` for another's write lock,
    then stops with one line."""
    if not lock_wait_s > 0:
        raise MemoryStoreError(f"memory.lock_wait_s={lock_wait_s} is no wait; give a number of seconds above 0")
    if is_database_url(location):
        from spark_eval.memory.postgres import PostgresStore  # the driver loads only for a server

        return PostgresStore(str(location), lock_wait_s=lock_wait_s)
    return SQLiteStore(location, timeout_s=lock_wait_s)


def copy_store(source: str | Path, dest: str | Path) -> str:
    """A consistent copy of the store at `source` (a file or a database URL) in a new SQLite file at `dest`;
    the copy's state hash. A missing source file is refused in one line naming it."""
    dest = Path(dest)
    if not is_database_url(source) and not Path(source).is_file():
        raise MemoryStoreError(f"memory store {source} does not exist; run the experiment that learns it first, "
                               "or point memory.frozen_store at a store file")
    original = open_store(source)
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    try:
        copy = SQLiteStore(partial)
        try:
            original.copy_into(copy)
        finally:
            copy.close()
    finally:
        original.close()
    os.replace(partial, dest)
    copied = SQLiteStore(dest)
    try:
        return copied.state_hash()
    finally:
        copied.close()


def _schema_version(path: str, db: sqlite3.Connection) -> int:
    """0 for an empty file, SCHEMA_VERSION for a store; anything else is refused before it is touched."""
    own = not db.in_transaction  # both reads from one snapshot: a process creating the schema meanwhile commits
    if own:                      # its tables and version together, and we must not see one without the other
        db.execute("BEGIN DEFERRED")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if not name.startswith("sqlite_")]
    finally:
        if own:
            db.execute("COMMIT")
    if version == 0 and tables:
        raise MemoryStoreError(f"memory store {path} is a SQLite database of something else (tables: "
                               f"{', '.join(tables[:5])}); point memory.store at a new file")
    if version not in (0, SCHEMA_VERSION):
        raise MemoryStoreError(f"memory store {path} has schema version {version}, unknown to this spark_eval "
                               f"(it writes {SCHEMA_VERSION}); upgrade spark_eval or point memory.store at a new file")
    return version


def _user_error(path: str, timeout_s: float, exc: sqlite3.DatabaseError) -> MemoryStoreError | None:
    """The user-facing error for a fault of the file (locked, damaged, unopenable); None for anything else."""
    cause = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in cause or "busy" in cause:
            return MemoryStoreError(f"memory store {path} is locked: another process has held it for writing longer "
                                    f"than {timeout_s:g}s; wait for that process to finish or stop it, or raise "
                                    "memory.lock_wait_s")
        if "unable to open" in cause:
            return MemoryStoreError(f"memory store {path} cannot be opened ({cause}); "
                                    "check that its folder exists and is writable")
        return None
    if type(exc) is sqlite3.DatabaseError:  # not a database, malformed image
        return MemoryStoreError(f"memory store {path} is not a readable SQLite database ({cause}); "
                                "move it aside or point memory.store at a new file")
    return None


def _combined(hashes: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}:{hashes[k]}\n" for k in sorted(hashes)).encode()).hexdigest()


def _without_nul(item: Item, where: str) -> Item:
    """The item with every NUL character taken out of its text, nested fields too, said in one warning naming it
    (a model's reply can carry them)."""
    cleaned = {f.name: _strip_nul(getattr(item, f.name)) for f in fields(item)}
    changed = [name for name, value in cleaned.items() if value != getattr(item, name)]
    if not changed:
        return item
    log.warning("memory store %s: NUL characters removed from the %s of %s %s before it was stored", where,
                ", ".join(changed), item.kind, item.id.replace("\x00", ""))
    return replace(item, **{name: cleaned[name] for name in changed})


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, (list, tuple)):
        return type(value)(_strip_nul(v) for v in value)
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    return value


def _item_row(item: Item) -> tuple[Any, ...]:
    _check("kind", item.kind, KINDS)
    _check("status", item.status, STATUSES)
    return (item.id, item.kind, item.library, item.title, item.content, _canonical(list(item.tags)),
            _canonical(item.meta), _canonical(list(item.provenance)), item.helpful, item.harmful,
            item.endorsements, item.status, item.created_round)


def _item(row: Sequence[Any]) -> Item:
    values = dict(zip(_ITEM_COLUMNS, row))
    for name in ("tags", "meta", "provenance"):
        values[name] = json.loads(values[name])
    return Item(**{**values, "tags": tuple(values["tags"]), "provenance": tuple(values["provenance"])})


def _where(kind: str | None, status: str | None) -> tuple[str, tuple[str, ...]]:
    pairs = [(column, value) for column, value in (("kind", kind), ("status", status)) if value is not None]
    if not pairs:
        return "", ()
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in pairs), tuple(value for _, value in pairs)


def _check(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    values = list(values)
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _canonical(value: Any) -> str:
    """JSON with sorted keys, so equal content is stored (and hashed) as equal text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _family_label(family: Any) -> str:
    """`Numpy/12` from ("Numpy", 12), ["Numpy", 12] or "Numpy/12"."""
    return family if isinstance(family, str) else "/".join(str(part) for part in family)
