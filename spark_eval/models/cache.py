"""The response cache: SQLite, shared by every run and process, keyed by a hash of the whole request."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable


def request_key(request: dict[str, Any]) -> str:
    """sha256 of everything that changes the output (provider, model, base URL, messages, params)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def held_keys(path: str | Path, keys: Iterable[str]) -> set[str]:
    """Which of `keys` the cache file at `path` holds, read without writing anything (no file: none of them)."""
    if not Path(path).is_file():
        return set()
    ordered, found = sorted(keys), set()
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for start in range(0, len(ordered), 500):  # under SQLite's limit on bound parameters
            chunk = ordered[start : start + 500]
            rows = db.execute(f"SELECT key FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update(key for (key,) in rows)
    return found


class ResponseCache:
    """A key -> JSON store in one SQLite file (WAL, so several runs may share it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(value)))
