"""Read JSON Lines files (plain or gzip) line by line, naming the line of any malformed record."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator


def read_jsonl(path: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; `error("<path>:<line>: ...")` on bad JSON."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or replace that line") from None
