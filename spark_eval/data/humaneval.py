"""Benchmarks in HumanEval's layout, as PandasEval and NumpyEval (Zan et al., 2022) come: each problem is code to
continue (`prompt`), accepted continuations (`canonical_solution`) and a `check` function (`test`); the program is
prompt + answer + test + `check(<entry_point>)` (`check()` when the entry point is `"none"`: a fragment
completed in place).

A chat model does not always continue the code where it stops: it may restate the last line, drop the
indentation, or rewrite the whole function. `continued` tries, in a fixed order, the few ways an answer can
join its prompt and takes the first that compiles; the record keeps the answer's code, and the program is
rebuilt the same way from it.
"""
from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

from spark_eval.data.base import ADVICE_TEMPLATE, DatasetError, LoadedBenchmark, with_advice
from spark_eval.records import Recommendation, read_jsonl
from spark_eval.types import LIBRARIES, Message, Problem

POSTPROCESS_VERSION = "fenced-code-2"
PROGRAM_VERSION = "humaneval-continue-2"
CODER_VERSION = "coder-continue-1"

CODER_SYSTEM = (
    "You are an expert Python programmer for data science (NumPy, pandas). Complete the code you are given. "
    "Reply with only the code that comes next, starting exactly where the given code stops, with no explanation "
    "and no tests."
)
CODER_PROMPT = "Complete this code:\n```python\n{prompt}\n```"
STOP_SEQUENCES = ("\ndef check(", "\nif __name__", "\n# test", "\nprint(")
_REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


class HumanEvalLayout(LoadedBenchmark):
    """Problems from JSON-lines files in HumanEval's layout, one file per library (`dataset.files`), the accepted
    solution the first of `canonical_solution`. Ids follow the files' order (PandasEval/0..100 are 0..100,
    NumpyEval/0..100 are 101..201); every problem is its own family (no perturbations).

    Args:
        cfg: the `dataset` config node: `path` (the folder), `files` ({library: file name}), the filters.
    """

    stop = STOP_SEQUENCES
    prompts = (CODER_SYSTEM, CODER_PROMPT, ADVICE_TEMPLATE)
    versions_ = {"postprocess": POSTPROCESS_VERSION, "program": PROGRAM_VERSION, "coder": CODER_VERSION}

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.name = str(cfg.name)
        self.files = dict(cfg.files)
        unknown = [lib for lib in self.files if lib not in LIBRARIES]
        if unknown:
            raise DatasetError(f"dataset.files names unknown libraries {unknown}; use names from {list(LIBRARIES)}")
        self.libraries = tuple(self.files)

    def read(self) -> list[Problem]:
        folder = Path(self.cfg.path)
        _check_sums(folder, self.files.values())
        problems: list[Problem] = []
        for library, name in self.files.items():
            for lineno, row in read_jsonl(folder / name, DatasetError):
                problems.append(_to_problem(row, len(problems), library, f"{folder / name}:{lineno}"))
        return problems

    def coder_messages(self, problem: Problem, recommendation: Recommendation | None) -> list[Message]:
        prompt = with_advice(CODER_PROMPT.format(prompt=problem.prompt.rstrip("\n")), recommendation)
        return [{"role": "system", "content": CODER_SYSTEM}, {"role": "user", "content": prompt}]

    def program(self, problem: Problem, answer: str) -> tuple[str, str]:
        code = fenced_code(answer)
        return code, continued(problem.prompt, code, _entry_point(problem)) + "\n" + problem.code_context


def fenced_code(answer: str | list[str]) -> str:
    """The code of a chat answer: the first fenced block's content; with a single fence, what follows an opening
    fence (```python, or a fence with nothing before it) or what precedes a stray closing one; else the answer."""
    if isinstance(answer, list):
        answer = answer[0]
    parts = answer.split("```")
    if len(parts) == 1:
        return answer
    if len(parts) == 2 and parts[0].strip() and not re.match(r"[\w+-]+[ \t]*\n", parts[1]):
        return parts[0]  # code, then a closing fence with nothing to open it
    return re.sub(r"^[\w+-]*[ \t]*\n?", "", parts[1], count=1)


def continued(prompt: str, code: str, entry_point: str | None) -> str:
    """The prompt continued by `code`: the first of these that compiles, else the plain continuation.

    1. when the answer defines `def <entry_point>(` and the prompt does too: the prompt's text before its
       `def` + the answer (the answer rewrites the whole function);
    2. prompt + code (a true continuation: `return ` + `df.dropna()`);
    3. prompt + code indented as the prompt's last line (a function body written from column 0);
    4. the prompt without its last line + that code (the answer restates the line it completes);
    5. the prompt without its last line + code as it is (the answer restates the whole fragment).

    Compiling, not only parsing, is the test: `return` outside a function parses but does not compile.
    """
    head, _, last = prompt.rstrip("\n").rpartition("\n")
    indent = re.match(r"[ \t]*", last).group(0) if last.strip() else ""
    first = next((line for line in code.splitlines() if line.strip()), "")
    body = code if first[:1].isspace() or not indent else textwrap.indent(code, indent)
    candidates = [prompt + code, prompt + body, head + "\n" + body]
    definition = re.search(rf"^def {re.escape(entry_point)}\(", prompt, flags=re.M) if entry_point else None
    if definition and re.search(rf"^def {re.escape(entry_point)}\(", code, flags=re.M):
        candidates.insert(0, prompt[: definition.start()] + code.lstrip("\n"))
    candidates.append(head + "\n" + code)
    for candidate in candidates:
        if _compiles(candidate):
            return candidate
    return prompt + code


def _compiles(source: str) -> bool:
    try:
        compile(source, "<answer>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _entry_point(problem: Problem) -> str | None:
    called = re.search(r"^check\((\w*)\)\s*$", problem.code_context, flags=re.M)
    return called.group(1) or None if called else None


def _to_problem(row: Any, problem_id: int, library: str, where: str) -> Problem:
    if not isinstance(row, dict) or any(k not in row for k in _REQUIRED):
        raise DatasetError(f"{where}: a problem needs the keys {', '.join(_REQUIRED)}")
    solutions = row["canonical_solution"]
    entry = str(row["entry_point"])
    call = "check()" if entry == "none" else f"check({entry})"
    return Problem(
        problem_id=problem_id, library=library, perturbation_type="Origin", origin_family=(library, problem_id),
        prompt=row["prompt"], reference_code=solutions[0] if isinstance(solutions, list) else str(solutions),
        code_context=row["test"].rstrip("\n") + "\n\n\n" + call + "\n", test_case_cnt=row["test"].count("assert "),
        task_id=str(row["task_id"]))


def _check_sums(folder: Path, names: Any) -> None:
    """Compare the data files with the folder's SHA256SUMS (when it has one): another copy is refused by name."""
    sums_file = folder / "SHA256SUMS"
    if not folder.is_dir():
        raise DatasetError(f"benchmark folder not found: {folder}; set dataset.path=<folder with the .jsonl.gz files>")
    if not sums_file.is_file():
        return
    pinned = dict(reversed(line.split(None, 1)) for line in sums_file.read_text().splitlines() if line.strip())
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{path} is missing; restore it (git checkout data/) or set dataset.files")
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        if name in pinned and pinned[name] != found:
            raise DatasetError(f"{path} has sha256 {found[:16]}..., not the {pinned[name][:16]}... its SHA256SUMS "
                               "pins; restore it (git checkout data/)")
