"""What the SQLite and PostgreSQL stores share: the queries, written once with `?` marks, the transactions, the
state hash, snapshots and copies."""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from spark_eval.memory.store.base import KINDS, OPS, SCHEMA_VERSION, STATUSES, Item, MemoryStoreError
from spark_eval.records import write_json, write_jsonl
from spark_eval.records.run import SNAPSHOT_INSIGHTS, SNAPSHOT_OPS, SNAPSHOT_STATE, SNAPSHOT_TRACES

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per `IN (...)`, well under SQLite's limit on bound variables
_VECTOR = np.dtype("<f4")
_ITEM_COLUMNS = ("id", "kind", "library", "title", "content", "tags", "meta", "provenance",
                 "helpful", "harmful", "endorsements", "status", "created_round")
_OP_COLUMNS = ("seq", "op", "item_id", "round", "epoch", "detail", "time")
_TABLES = {"items": _ITEM_COLUMNS, "ops": _OP_COLUMNS, "traces": ("seq", "key", "body"),
           "embeddings": ("model", "text_hash", "vector"), "meta": ("key", "value")}
_HASHED_ROWS = ("SELECT id, content, tags, status, helpful, harmful, endorsements, provenance "
                "FROM items WHERE kind = ? ORDER BY id")


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

