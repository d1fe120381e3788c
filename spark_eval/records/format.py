"""The record vocabulary: what one line of records.jsonl holds, typed, and the words its fields use.

Everything that writes or reads a record goes through `Record` (`to_json` / `from_json`); the constants here
are the only spelling of execution statuses and helpfulness bands.
"""
from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any

EXEC_STATUSES = ("passed", "failed", "timeout", "infra_error", "skipped")
NO_STATUS = "none"
"""The status of a record without an execution result (it ended in an error before its program ran)."""
GRADED = ("passed", "failed", "timeout")
"""Execution verdicts about the code (infra errors and skips say nothing about it)."""
BANDS = ("EXTREMELY HELPFUL", "GOOD", "FAIR", "POOR", "HARMFUL")
"""The paper's five helpfulness bands, best first."""
BAND_SCORES = {band: 5 - i for i, band in enumerate(BANDS)}
CAPPED = "length"
"""The finish reason of a reply that ran to its token cap (OpenAI's word; every provider's cap is read as it)."""


@dataclass(frozen=True)
class RetrievedItem:
    """One item a memory retrieved and showed for a recommendation, as its record holds it."""

    id: str
    """The store's id: `doc:<library>:<name>#<section>` or `ins:<number>`."""
    kind: str
    """`doc` (documentation) or `insight` (learned)."""
    score: float
    """Its retrieval score, rounded to 6 places (1.0 for a playbook's insight)."""
    cited: bool | None = None
    """The recommendation cites it; None: the memory has no citing step (raw RAG, playbook)."""
    leak: bool | None = None
    """It overlaps the problem's reference code (the n-gram guard); None: not checked."""
    contributors: tuple[str, ...] | None = None
    """The models its sources came from (none for documentation); None: not named."""
    poison: bool = False
    """The poisoning arm corrupted it (for the analysis; the coder and the judges never see it)."""
    copied: bool = False
    """The recommendation copies a long run of its words (`memory/agent.py` COPY_WORDS) without citing it: it counts
    as used, as a cited item does."""

    def to_json(self) -> dict[str, Any]:
        """The item as its record's line holds it: a field left unset (None, or poison or copied False) is absent."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if v is not None and not (k in ("poison", "copied") and not v)}

    @property
    def used(self) -> bool:
        """The recommendation used it: cited it, or copied from it."""
        return bool(self.cited) or self.copied

    @classmethod
    def from_json(cls, data: Any) -> RetrievedItem:
        checked = _checked(cls, data)
        if checked.get("contributors") is not None:
            checked["contributors"] = tuple(checked["contributors"])
        return cls(**checked)


@dataclass(frozen=True)
class Recommendation:
    """What a memory hands the coder for one problem."""

    text: str
    """The recommendation shown to the coder."""
    plan: dict[str, Any] = field(default_factory=dict)
    """The retrieval agent's search plan."""
    items: tuple[RetrievedItem, ...] = ()
    """The retrieved items shown for it, best first."""
    leak_flag: bool = False
    """True when the text or a retrieved item overlaps the problem's reference code (n-gram guard)."""
    trace: dict[str, Any] = field(default_factory=dict)
    """How it was made: queries, hits with their ranks and scores, the agent's tokens."""
    error: str | None = None
    """Why there is no advice (text is empty then): the problem proceeds without it."""
    api_labels: tuple[str, ...] | None = None
    """The documented APIs the problem's reference solution uses (memory/docs/apilabels.py); None: not labelled."""
    api_hits: tuple[str, ...] | None = None
    """Those of `api_labels` that the advice's text names (`memory/docs/apilabels.py: names_api`): advice checked
    against ground truth, no judge needed. None: not checked (no labels, or a record written before the check)."""
    abstained: bool = False
    """The memory's gate chose silence (`memory.gate`, memory/gate.py): the coder answered without advice, its
    draft kept. A decision, not an error (text is empty and error None); `trace["gate"]` holds why."""

    @property
    def charged_insights(self) -> tuple[RetrievedItem, ...]:
        """The insights a record's outcome is charged to (curation's counters, the poison table's uses): those the
        advice used (cited, or copied from), every insight shown when it used none."""
        shown = tuple(i for i in self.items if i.kind == "insight")
        return tuple(i for i in shown if i.used) or shown


@dataclass(frozen=True)
class Completion:
    """One answer from a coder."""

    text: str
    """The raw answer text."""
    input_tokens: int = 0
    """Every prompt token billed, those read from or written to the provider's prompt cache included."""
    output_tokens: int = 0
    """Every output token billed, thinking included."""
    latency_s: float = 0.0
    cost_usd: float = 0.0
    """What every billed attempt of the call cost, at the model's prices (models/ledger.py: `price_usd`)."""
    cached: bool = False
    attempts: int = 1
    finish_reason: str | None = None
    request_id: str | None = None
    cached_input_tokens: int = 0
    """Of `input_tokens`, those read from the provider's prompt cache (billed at its cached-input price)."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, those written to the provider's prompt cache (Anthropic: billed at its cache-write price)."""
    reasoning_tokens: int = 0
    """Of `output_tokens`, the thinking the reply does not show (billed as output)."""

    def to_json(self) -> dict[str, Any]:
        """The completion as its record's line holds it: a billed part none of its tokens went to is absent."""
        return {k: v for k, v in asdict(self).items() if not (k in _PARTS and not v)}


_PARTS = ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
"""The parts of a completion's tokens billed apart (absent from its JSON when none were)."""


@dataclass(frozen=True)
class Usage:
    """What a component's model calls took, summed with `+`. A count nothing added to is None and absent from
    the JSON (a cached reply adds no tokens, cost or latency), so an account is written with the keys it counted."""

    calls: int | None = None
    """Calls made (a cache hit is not one)."""
    cached: int | None = None
    """Replies taken from the response cache."""
    capped: int | None = None
    """Replies that ran to their token cap."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int | None = None
    """Attempts, retries included (a cached reply counts those of the call that filled the cache)."""
    cached_input_tokens: int | None = None
    """Of `input_tokens`, those read from the provider's prompt cache (None: none were)."""
    cache_write_tokens: int | None = None
    """Of `input_tokens`, those written to the provider's prompt cache (None: none were)."""
    reasoning_tokens: int | None = None
    """Of `output_tokens`, unshown thinking (None: none was counted)."""

    @classmethod
    def of(cls, completion: Completion) -> Usage:
        """One completion's account: its tokens, cost and latency only when it was not a cache hit."""
        spent = not completion.cached
        return cls(calls=int(spent), cached=int(completion.cached), capped=int(completion.finish_reason == CAPPED),
                   input_tokens=completion.input_tokens if spent else None,
                   output_tokens=completion.output_tokens if spent else None,
                   cost_usd=completion.cost_usd if spent else None, latency_s=completion.latency_s if spent else None,
                   attempts=completion.attempts,
                   cached_input_tokens=(completion.cached_input_tokens or None) if spent else None,
                   cache_write_tokens=(completion.cache_write_tokens or None) if spent else None,
                   reasoning_tokens=(completion.reasoning_tokens or None) if spent else None)

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: _plus(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    def to_json(self) -> dict[str, Any]:
        """The counts that were added to, in field order."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Any) -> Usage:
        return cls(**_checked(cls, data))


def _plus(a: float | None, b: float | None) -> Any:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True)
class ExecResult:
    """The verdict of the benchmark's own tests on one answer."""

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
    """`quality` (code, 1-5), `helpfulness` (recommendation, five bands) or `pairwise` (one order of a comparison of
    two answers, judge.pairwise: score is the preference for the answer shown first, 0 to 1)."""
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
    """Which of the judge's repeated verdicts on this item (0 first)."""
    usage: Usage = Usage()
    """Tokens, cost, latency, attempts and cache hits of the judge's calls."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "usage": self.usage.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Judgment:
        checked = _checked(cls, data)
        return cls(**{**checked, "usage": Usage.from_json(checked.get("usage") or {})})


@dataclass(frozen=True)
class Record:
    """One line of records.jsonl: a problem under one condition, epoch and repeat."""

    key: str
    """Unique within its run: `<problem_id>/e<epoch>/r<repeat>` (`record_key`)."""
    problem_id: int
    """The benchmark's id of the problem."""
    library: str
    """The library the problem is about (DS-1000's spelling, e.g. `Pandas`)."""
    perturbation_type: str
    """`Origin`, `Surface`, `Semantic` or `Difficult-Rewrite` (`Origin` on a benchmark without them)."""
    origin_family: tuple[str, int]
    """(library, id of the original): problems perturbed from one original share it."""
    model: str
    """The coder's name."""
    memory: str
    """The memory condition's name (`none` without one)."""
    seed: int
    """The run's seed."""
    epoch: int
    """The pass over the stream it was made in (0 first)."""
    repeat: int
    """Which of the problem's repeated answers in its epoch (0 first)."""
    completion: Completion | None
    """The coder's answer; None when the run stopped before it."""
    code: str | None
    """The code taken from the answer and graded; None without an answer."""
    exec: ExecResult | None
    """The benchmark's tests' verdict; None when the program never ran."""
    recommendation: Recommendation | None
    """What the memory handed the coder; None without a memory."""
    judgments: tuple[Judgment, ...]
    """Every judge's verdicts, repeats included (stage=judge adds to them)."""
    memory_hash: str
    """The memory's state hash when the problem was asked (one per round)."""
    versions: dict[str, str]
    """The version of every prompt and recipe that shaped it (part of the resume identity)."""
    error: str | None = None
    """Why the record is incomplete (`ExceptionName: message`); a resume makes it again. None: it is complete."""
    leaky: bool = False
    """The memory was built with access to reference answers (the paper's synthetic experience)."""

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON-able data (tuples become lists)."""
        data = asdict(self)
        if self.completion is not None:
            data["completion"] = self.completion.to_json()
        if self.recommendation is not None:
            data["recommendation"]["items"] = [item.to_json() for item in self.recommendation.items]
        data["judgments"] = [j.to_json() for j in self.judgments]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """The record a JSON line holds (the inverse of `to_json`); ValueError naming the field when a key is
        unknown, a field missing, or a value of another kind than its field's (a problem id `"12"`, a list where an
        object belongs), so that nothing downstream meets it."""
        checked = _checked(cls, data)
        rec, exec_, completion = data.get("recommendation"), data.get("exec"), data.get("completion")
        return cls(**{
            **checked,
            "origin_family": tuple(data["origin_family"]),
            "completion": Completion(**_checked(Completion, completion)) if completion else None,
            "exec": ExecResult(**_checked(ExecResult, exec_)) if exec_ else None,
            "recommendation": None if rec is None else Recommendation(
                **{**_checked(Recommendation, rec), "items": tuple(map(RetrievedItem.from_json, rec.get("items") or ())),
                   **{k: tuple(rec[k]) for k in ("api_labels", "api_hits") if rec.get(k) is not None}}),
            "judgments": tuple(map(Judgment.from_json, data.get("judgments") or ())),
            "versions": dict(data.get("versions") or {}),
        })

    @property
    def status(self) -> str:
        """The execution status, or `none` when the program never ran."""
        return self.exec.status if self.exec else NO_STATUS

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def family(self) -> str:
        """The origin family as one label, `Library/id`."""
        library, origin = self.origin_family
        return f"{library}/{origin}"

    @property
    def advised(self) -> bool:
        """The coder was shown advice."""
        return bool(self.recommendation and self.recommendation.text)


def record_key(problem_id: int, epoch: int, repeat: int) -> str:
    """The unique key of a record within a run."""
    return f"{problem_id}/e{epoch}/r{repeat}"


def _checked(cls: type, data: Any) -> dict[str, Any]:
    """The fields of `cls` in `data`, each of its field's kind; a key it does not know is refused, so that no
    rewrite drops it."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} is {_shown(data)}, not an object")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {unknown[0]!r} (written by another spark_eval version?)")
    missing = [f.name for f in fields(cls)
               if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{cls.__name__} lacks its field {missing[0]!r}")
    for name, value in data.items():
        if not _fits(value, hints[name]):
            why = "an integer past 64 bits" if _too_large(value) else f"not {_named(hints[name])}"
            raise ValueError(f"{cls.__name__}.{name} is {_shown(value)}, {why}")
    return dict(data)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fits(value: Any, hint: Any) -> bool:
    """`value`, as JSON parsed it, can stand for a field typed `hint` (an integer for a float; a list for a tuple,
    item by item; an object for a nested record part, which is checked on its own). An integer past 64 bits stands
    for none: numpy, pandas and SQLite cannot hold it."""
    kinds, kind = _kinds(hint), type(value)
    if kinds is not None and kind not in kinds:
        return False
    if kind is int:
        return not _too_large(value)
    if kind is list and (items := _items(hint)) is not None:
        if items[1:] == (...,):
            return all(_fits(v, items[0]) for v in value)
        return len(value) == len(items) and all(map(_fits, value, items))
    return True


@cache
def _kinds(hint: Any) -> frozenset[type] | None:
    """The types JSON parses into that a field typed `hint` takes (exactly: a bool is no int); None for any."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        kinds: frozenset[type] = frozenset()
        for arg in args:
            part = _kinds(arg)
            if part is None:
                return None
            kinds |= part
        return kinds
    if hint is Any:
        return None
    if hint is float:
        return frozenset({int, float})
    if origin is tuple:
        return frozenset({list})
    return frozenset({dict}) if is_dataclass(hint) else frozenset({origin or hint})


@cache
def _items(hint: Any) -> tuple[Any, ...] | None:
    """The item types of a tuple field (of the tuple in a union); None when it has none."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return next((items for arg in args if (items := _items(arg)) is not None), None)
    return args if origin is tuple else None


def _too_large(value: Any) -> bool:
    return isinstance(value, int) and not -2**63 <= value < 2**63


def _named(hint: Any) -> str:
    """A field's type as the error says it."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return ", or ".join(_named(arg) for arg in typing.get_args(hint))
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin is tuple and args[1:] == (...,):
        return f"an array whose items are each {_named(args[0])}"
    if origin is tuple:
        return f"an array of {len(args)} items ({', '.join(map(_named, args))})"
    return {int: "a 64-bit integer", float: "a number", str: "a string", bool: "true or false", dict: "an object",
            tuple: "an array", type(None): "null"}.get(origin, "an object")


def _shown(value: Any) -> str:
    """A value as the error shows it, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
