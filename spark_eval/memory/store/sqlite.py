"""The embedded store: one SQLite file (WAL), the default, on one machine."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from spark_eval.memory.store.base import LOCK_WAIT_S, SCHEMA_VERSION, MemoryStoreError
from spark_eval.memory.store.sql import SQLStore

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
