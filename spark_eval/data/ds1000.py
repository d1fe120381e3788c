"""DS-1000 (Lai et al., 2023) as a benchmark: 1000 problems over seven libraries, perturbed from 452 originals;
loaded from the offline gzip JSONL file (hash checked) or the Hub, graded exactly as its official harness does."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from spark_eval.data.base import ADVICE_TEMPLATE, DatasetError, LoadedBenchmark, with_advice
from spark_eval.records import Recommendation, read_jsonl
from spark_eval.types import LIBRARIES, Message, Problem

log = logging.getLogger(__name__)

PERTURBATIONS = ("Origin", "Surface", "Semantic", "Difficult-Rewrite")
_REQUIRED = ("prompt", "reference_code", "metadata", "code_context")
_REQUIRED_META = ("problem_id", "library", "test_case_cnt", "perturbation_type", "perturbation_origin_id")

# Bump a version when what it names changes: the versions go into every record, and resume refuses to mix.
POSTPROCESS_VERSION = "ds1000-official-1"
PROGRAM_VERSION = "ds1000-official-1"
CODER_VERSION = "coder-1"

CODER_SYSTEM = (
    "You are an expert Python programmer for data science (NumPy, pandas, Matplotlib, SciPy, scikit-learn, "
    "PyTorch, TensorFlow). Complete the solution to the problem. Reply with only the code that goes where "
    "the solution goes, with no explanation and no tests. Keep the variable names the problem asks for."
)

# Where DS-1000's prompts expect the answer to end (its prompts' own markers).
STOP_SEQUENCES = ("</code>", "# SOLUTION END", "END SOLUTION")


class DS1000(LoadedBenchmark):
    """DS-1000: `dataset.source=file` (the copy in data/ds1000, sha256 pinned) or `hub` (a pinned revision).

    Args:
        cfg: the `dataset` config node (see `config.DatasetConfig`).
    """

    name = "ds1000"
    libraries = LIBRARIES
    perturbations = PERTURBATIONS
    stop = STOP_SEQUENCES
    prompts = (CODER_SYSTEM, ADVICE_TEMPLATE)
    versions_ = {"postprocess": POSTPROCESS_VERSION, "program": PROGRAM_VERSION, "coder": CODER_VERSION}

    def read(self) -> list[Problem]:
        return sorted(read_dataset(self.cfg), key=lambda p: p.problem_id)

    def coder_messages(self, problem: Problem, recommendation: Recommendation | None) -> list[Message]:
        return coder_messages(problem, recommendation)

    def program(self, problem: Problem, answer: str) -> tuple[str, str]:
        code = postprocess(answer)
        return code, build_program(problem.code_context, code)


def coder_messages(problem: Problem, recommendation: Recommendation | None) -> list[Message]:
    """System prompt, then the DS-1000 prompt as it is (plus the recommendation when a memory gives one)."""
    return [{"role": "system", "content": CODER_SYSTEM}, {"role": "user", "content": with_advice(problem.prompt, recommendation)}]


def postprocess(answer: str | list[str]) -> str:
    """Cut a model's answer down to the code DS-1000 inserts into its test program.

    Same steps, same order as the official harness: first element of a list; up to the first
    `</code>`; drop "```python"; up to the next "```"; up to "\\nEND SOLUTION"; drop `<code>`.
    Leading indentation is kept (the 71 function-body problems need it).
    """
    if isinstance(answer, list):
        answer = answer[0]
    code = answer.split("</code>")[0]
    code = code.replace("```python", "")
    code = code.split("```")[0]
    code = code.split("\nEND SOLUTION")[0]
    return code.replace("<code>", "")


def build_program(code_context: str, answer: str) -> str:
    """The official recipe (test_ds1000.py): context, the answer as a literal, then its tests.

    `test_string(code)` runs only when the context defines it; otherwise the official harness appends
    an empty line, kept here so the program text is byte-for-byte the same.
    """
    tail = "test_string(code)\n" if "test_string(" in code_context else "\n"
    return code_context + "\n" + f"code = {answer!r}\n" + "test_execution(code)\n" + tail


def read_dataset(cfg: Any) -> list[Problem]:
    """Every problem of the configured source (the `dataset` node), unfiltered."""
    if cfg.source == "file":
        rows = _read_jsonl_gz(Path(cfg.path), cfg.get("sha256"))
    elif cfg.source == "hub":
        rows = _read_hub(cfg.hub_id, cfg.hub_revision)
    else:
        raise DatasetError(f"dataset.source={cfg.source!r} is unknown; use 'file' or 'hub'")
    return [_to_problem(row, where) for where, row in rows]


def _read_jsonl_gz(path: Path, sha256: str | None) -> list[tuple[str, dict]]:
    if not path.is_file():
        raise DatasetError(f"DS-1000 file not found: {path}; set dataset.path=<ds1000.jsonl.gz>")
    if sha256:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        if found != sha256:
            raise DatasetError(
                f"{path} has sha256 {found[:16]}..., not the pinned copy's {sha256[:16]}...; restore it "
                "(git checkout data/), or set dataset.sha256=null to grade another copy on purpose"
            )
    return [(f"{path}:{lineno}", row) for lineno, row in read_jsonl(path, DatasetError)]


def _read_hub(hub_id: str, revision: str) -> list[tuple[str, dict]]:
    try:
        import datasets
    except ImportError:
        raise DatasetError("dataset.source=hub needs the `datasets` package: pip install datasets") from None
    ds = datasets.load_dataset(hub_id, split="test", revision=revision)
    return [(f"{hub_id}@{revision[:8]} row {i}", dict(row)) for i, row in enumerate(ds)]


def _to_problem(row: Any, where: str) -> Problem:
    if not isinstance(row, dict) or any(k not in row for k in _REQUIRED):
        raise DatasetError(f"{where}: a DS-1000 record needs the keys {', '.join(_REQUIRED)}")
    meta = row["metadata"]
    if not isinstance(meta, dict) or any(k not in meta for k in _REQUIRED_META):
        raise DatasetError(f"{where}: metadata needs the keys {', '.join(_REQUIRED_META)}")
    return Problem(
        problem_id=int(meta["problem_id"]),
        library=str(meta["library"]),
        perturbation_type=str(meta["perturbation_type"]),
        origin_family=(str(meta["library"]), int(meta["perturbation_origin_id"])),
        prompt=row["prompt"],
        reference_code=row["reference_code"],
        code_context=row["code_context"],
        test_case_cnt=int(meta["test_case_cnt"]),
    )
