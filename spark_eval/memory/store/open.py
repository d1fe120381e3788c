"""Open a store where `memory.store` points (a SQLite file or a PostgreSQL URL), and copy one into a new file."""
from __future__ import annotations

import os
from pathlib import Path

from spark_eval.memory.store.base import LOCK_WAIT_S, MemoryStoreError, is_database_url
from spark_eval.memory.store.sql import SQLStore
from spark_eval.memory.store.sqlite import SQLiteStore


def open_store(location: str | Path, lock_wait_s: float = LOCK_WAIT_S) -> SQLStore:
    """The store at `location`: a PostgreSQL database (`postgresql://user@host:port/db`), or else the embedded
    SQLite file at that path, created if absent. A writer waits up to `lock_wait_s` for another's write lock,
    then stops with one line."""
    if not lock_wait_s > 0:
        raise MemoryStoreError(f"memory.lock_wait_s={lock_wait_s} is no wait; give a number of seconds above 0")
    if is_database_url(location):
        from spark_eval.memory.store.postgres import PostgresStore  # the driver loads only for a server

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
