"""Build DS-1000's official test program for one answer."""
from __future__ import annotations

PROGRAM_VERSION = "ds1000-official-1"


def build_program(code_context: str, answer: str) -> str:
    """The official recipe (test_ds1000.py): context, the answer as a literal, then its tests.

    `test_string(code)` runs only when the context defines it; otherwise the official harness appends
    an empty line, kept here so the program text is byte-for-byte the same.
    """
    tail = "test_string(code)\n" if "test_string(" in code_context else "\n"
    return code_context + "\n" + f"code = {answer!r}\n" + "test_execution(code)\n" + tail
