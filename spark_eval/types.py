"""Frozen records that flow through the pipeline: Problem -> Completion -> ExecResult -> Record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One DS-1000 problem."""

    problem_id: int
    """Index 0..999 in the dataset."""
    library: str
    """`Pandas`, `Numpy`, `Matplotlib`, `Tensorflow`, `Scipy`, `Sklearn` or `Pytorch`."""
    perturbation_type: str
    """`Origin`, `Surface`, `Semantic` or `Difficult-Rewrite`."""
    origin_family: tuple[str, int]
    """(library, perturbation_origin_id): problems perturbed from the same original share it."""
    prompt: str
    """The question text the coder continues."""
    reference_code: str
    """DS-1000's reference solution (what goes where the answer goes)."""
    code_context: str
    """The test module defining `test_execution` (and sometimes `test_string`)."""
    test_case_cnt: int
    """Number of generated test cases."""


@dataclass(frozen=True)
class Recommendation:
    """What a memory hands the coder for one problem."""

    text: str
    """The recommendation shown to the coder."""
    plan: dict[str, Any] = field(default_factory=dict)
    """The retrieval agent's search plan."""
    items: tuple[dict[str, Any], ...] = ()
    """Retrieved items: `{id, kind, score, ...}`; `leak` marks an item overlapping the reference code."""
    leak_flag: bool = False
    """True when the text or a retrieved item overlaps the problem's reference code (n-gram guard)."""
    trace: dict[str, Any] = field(default_factory=dict)
    """How it was made: queries, hits with their ranks and scores, the agent's tokens."""
    error: str | None = None
    """Why there is no advice (text is empty then): the problem proceeds without it."""


@dataclass(frozen=True)
class Completion:
    """One answer from a coder."""

    text: str
    """The raw answer text."""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    attempts: int = 1
    finish_reason: str | None = None
    request_id: str | None = None


EXEC_STATUSES = ("passed", "failed", "timeout", "infra_error", "skipped")


@dataclass(frozen=True)
class ExecResult:
    """The verdict of DS-1000's own tests on one answer."""

    status: str
    """One of EXEC_STATUSES."""
    error_type: str | None = None
    """Exception class name (or a short cause) when not passed."""
    stderr_tail: str = ""
    """The last bytes of the program's stderr and stdout."""
    duration_s: float = 0.0
    """Wall time of the program, as measured by its parent."""


@dataclass(frozen=True)
class Judgment:
    """One judge's verdict on one item; score None means the verdict is missing (never a default)."""

    judge: str
    """The judge's name (kind and model), e.g. `quality/qwen2.5-coder-1.5b`."""
    kind: str
    """`quality` (code, 1-5) or `helpfulness` (recommendation, five bands)."""
    score: float | None = None
    band: str | None = None
    criteria: dict[str, Any] = field(default_factory=dict)
    rationale: str = ""
    raw: str = ""
    """The judge model's last reply, as it came."""
    parse_error: str | None = None
    version: str = ""
    """The rubric/prompt version."""
    repeat: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    """Tokens, cost, latency, attempts and cache hits of the judge's calls."""


@dataclass(frozen=True)
class Record:
    """One line of records.jsonl: a problem under one condition, epoch and repeat."""

    key: str
    problem_id: int
    library: str
    perturbation_type: str
    origin_family: tuple[str, int]
    model: str
    memory: str
    seed: int
    epoch: int
    repeat: int
    completion: Completion | None
    code: str | None
    exec: ExecResult | None
    recommendation: Recommendation | None
    judgments: tuple[Judgment, ...]
    memory_hash: str
    versions: dict[str, str]
    error: str | None = None
    leaky: bool = False
    """The memory was built with access to reference answers (the paper's synthetic experience)."""

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON-able data (tuples become lists)."""
        return asdict(self)


def record_key(problem_id: int, epoch: int, repeat: int) -> str:
    """The unique key of a record within a run."""
    return f"{problem_id}/e{epoch}/r{repeat}"
