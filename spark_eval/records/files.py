"""The run directory's file formats: JSON lines appended one at a time (flushed and synced), files replaced
atomically, and the one reader of records.jsonl (and of the other journals) that can repair a torn last line."""
from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from spark_eval.errors import UserError
from spark_eval.records.format import Record

log = logging.getLogger(__name__)


class RunDirectoryError(UserError):
    """A run directory cannot be used as asked; the message names the differing keys or the damage."""


def append_jsonl(path: Path, row: Any) -> None:
    """Append one JSON line and sync it: once this returns, a kill loses nothing of it."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Replace `path` with one JSON line per row, atomically (see `write_atomic`)."""
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_json(path: Path, data: Any) -> None:
    """Replace `path` with `data` as indented JSON, atomically."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary sibling, sync, then rename: a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line of a data file (plain or gzip); `error("<path>:<line>:
    ...")` on bad JSON. For inputs (data sets, answers files); run files are read with `read_lines`."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or replace that line") from None


def read_json_object(path: Path, missing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's JSON file that holds one object (manifest.json, summary.json): `missing` when it does not exist (or
    RunDirectoryError when `missing` is None), and a one-line RunDirectoryError naming the file and the fix when it
    is truncated, not UTF-8, or not an object."""
    if not path.is_file():
        if missing is None:
            raise RunDirectoryError(f"{path} does not exist; this is not a run directory, or it was never started")
        return missing
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirectoryError(f"{path} is damaged ({_why(e)}); restore it from a copy, or move the run "
                                "directory away and run again") from None
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{path} holds a JSON {_kind(data)}, not an object; restore it from a copy, "
                                "or move the run directory away and run again")
    return data


def _why(e: Exception, line: bool = False) -> str:
    """What is wrong with a file's bytes (`line`: with those of one JSON line, where only the column counts)."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 at byte {e.start}"
    assert isinstance(e, json.JSONDecodeError)
    where = f"column {e.colno}" if line else f"line {e.lineno} column {e.colno}"
    return f"not valid JSON at {where}: {e.msg}"


def read_lines(path: Path, repair: bool = True) -> list[dict[str, Any]]:
    """Every JSON object line of a run file appended with `append_jsonl` (see `_numbered_lines`)."""
    return [row for _, row in _numbered_lines(path, repair)]


@dataclass(frozen=True)
class TornLine:
    """A torn last line of a run file (a kill mid-write): where it is, what is wrong with it, what to keep."""

    path: Path
    line: int
    damage: str
    keep_bytes: int

    def cut(self) -> None:
        """Cut the line off its file (only a writer holding the run directory's lock may)."""
        log.warning("cutting a torn last line off %s (line %d: %s)", self.path, self.line, self.damage)
        with self.path.open("r+b") as f:
            f.truncate(self.keep_bytes)


def _numbered_lines(path: Path, repair: bool = True) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every JSON line of a run file appended with `append_jsonl`. A torn last line (a
    kill mid-write: cut anywhere, even inside a character, or what is left of it parsing as something other than
    an object) is cut off the file, or only skipped with `repair=False` (a reader beside a run that may be writing
    it); a damaged line elsewhere stops with its line number, so nothing is silently lost."""
    rows, torn = _scan(path)
    if torn is not None and repair:
        torn.cut()
    return rows


def _scan(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], TornLine | None]:
    """The numbered objects of a run file, and its torn last line if it has one (see `_numbered_lines`)."""
    if not path.exists():
        return [], None
    lines = path.read_bytes().split(b"\n")
    rows: list[tuple[int, dict[str, Any]]] = []
    good_bytes = 0
    for i, line in enumerate(lines):
        if line.strip():
            row, damage = _parse_line(line)
            if damage:
                if any(x.strip() for x in lines[i + 1 :]):
                    raise RunDirectoryError(f"{path}:{i + 1}: damaged record ({damage}); repair or remove that line")
                return rows, TornLine(path, i + 1, damage, good_bytes)
            rows.append((i + 1, row))
        good_bytes += len(line) + 1
    return rows, None


def _parse_line(line: bytes) -> tuple[dict[str, Any], str | None]:
    """The object one line holds, or what is wrong with it."""
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, _why(e, line=True)
    if not isinstance(row, dict):
        return {}, f"a JSON {_kind(row)}, not an object"
    return row, None


def _kind(value: Any) -> str:
    """JSON's name for the kind of a parsed value."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def read_records(path: Path, repair: bool = True) -> list[Record]:
    """The finished records of a records.jsonl (see `_numbered_lines` for `repair`); a line that is not a record
    (a field missing, unknown or of the wrong kind) stops with its line number."""
    records, torn = scan_records(path)
    if torn is not None and repair:
        torn.cut()
    return records


def scan_records(path: Path) -> tuple[list[Record], TornLine | None]:
    """The finished records of a records.jsonl, and its torn last line (skipped, left in the file) if any."""
    rows, torn = _scan(path)
    records = []
    for lineno, row in rows:
        try:
            records.append(Record.from_json(row))
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirectoryError(f"{path}:{lineno}: not a record this spark_eval reads ({e}); repair or remove "
                                    "that line, or read it with the version that wrote it") from None
    return records, torn


def append_record(path: Path, record: Record) -> None:
    append_jsonl(path, record.to_json())


def rewrite_records(path: Path, records: Iterable[Record]) -> None:
    """Replace records.jsonl with `records` atomically: a kill leaves the old file or the new one."""
    write_jsonl(path, (r.to_json() for r in records))
