"""The tables of the results index (stage=index): one per kind of thing a run directory holds, every column
documented. `schema()` is the SQL that creates them; `describe()` the same as Markdown for docs/statistics.md."""
from __future__ import annotations

SCHEMA_VERSION = 1
"""Stored as the file's `PRAGMA user_version`; an index of another version is rebuilt from scratch."""

RUN = ("run", "TEXT", "the run directory relative to paths.results, e.g. `demo/m__spark__s0` (joins every table)")

TABLES: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "runs": ("One row per run directory (manifest.json and what its records count).", (
        (RUN[0], "TEXT PRIMARY KEY", RUN[2]),
        ("path", "TEXT", "the run directory's absolute path when indexed"),
        ("experiment", "TEXT", "`experiment_name` of the run's identity (the parent folder without one)"),
        ("benchmark", "TEXT", "`dataset.name` of the run's identity"),
        ("model", "TEXT", "the coder (the first record's, else the identity's `model.name`)"),
        ("memory", "TEXT", "the memory condition"),
        ("seed", "INTEGER", "the run's seed"),
        ("status", "TEXT", "manifest `status`: running, interrupted or finished"),
        ("started_at", "TEXT", "manifest `started_at` (ISO 8601)"),
        ("finished_at", "TEXT", "manifest `finished_at` (NULL until finished)"),
        ("wall_s", "REAL", "manifest `wall_s`: seconds of the last session of the run"),
        ("records", "INTEGER", "finished records read from records.jsonl"),
        ("passed", "INTEGER", "records whose code passed the benchmark's tests"),
        ("errors", "INTEGER", "records that ended in an error"),
        ("problems", "INTEGER", "distinct problem ids among the records"),
        ("counts", "TEXT", "manifest `counts` (JSON): the counts the run wrote when it finished"),
        ("leaky", "INTEGER", "1 when the memory saw reference answers (manifest `leaky` or any record's)"),
        ("dataset_hash", "TEXT", "content hash of the benchmark data the run used"),
        ("config_hash", "TEXT", "hash of the run's result identity (what resume compares)"),
        ("git_sha", "TEXT", "the commit the harness ran from"),
        ("git_dirty", "INTEGER", "1 when its work tree had changes"),
        ("memory_state_hash", "TEXT", "manifest `memory.state_hash`: the memory's final state"),
        ("insights", "INTEGER", "manifest `memory.insights`: insights in the final memory"),
        ("versions", "TEXT", "manifest `versions` (JSON): prompt, rubric and program versions"),
        ("manifest", "TEXT", "the whole manifest.json (JSON; query it with json_extract)"),
        ("signature", "TEXT", "size and mtime of records.jsonl, manifest.json and summary.json when indexed"),
        ("indexed_at", "TEXT", "when this row was written (UTC, ISO 8601)"),
    )),
    "summaries": ("One row per run with a summary.json (derived from its records when the run last wrote it).", (
        RUN,
        ("n", "INTEGER", "records summarized"),
        ("passed", "INTEGER", "of them passed"),
        ("pass_rate", "REAL", "passed / n"),
        ("errors", "INTEGER", "records that ended in an error"),
        ("infra_error", "INTEGER", "records whose sandbox failed"),
        ("leak_flag_rate", "REAL", "share of recommendations flagged as overlapping the reference code"),
        ("quality_mean", "TEXT", "JSON {judge: mean quality}"),
        ("helpfulness_bands", "TEXT", "JSON {judge: {band: share}}"),
        ("by_library", "TEXT", "JSON {library: {n, passed, pass_rate, ...}}"),
        ("by_perturbation", "TEXT", "JSON {perturbation type: {n, passed, pass_rate, ...}}"),
        ("summary", "TEXT", "the whole summary.json (JSON)"),
    )),
    "records": ("One row per line of records.jsonl: a problem under one condition, epoch and repeat.", (
        RUN,
        ("line", "INTEGER", "position of the record in records.jsonl (1 first)"),
        ("key", "TEXT", "unique per (problem, epoch, repeat) within the run"),
        ("problem_id", "INTEGER", "the benchmark's problem id (pairs runs of one benchmark)"),
        ("library", "TEXT", "the problem's library"),
        ("perturbation_type", "TEXT", "Origin, Surface, Semantic or Difficult-Rewrite"),
        ("family", "TEXT", "origin family `Library/id` (the independent unit of the statistics)"),
        ("model", "TEXT", "the coder"),
        ("memory", "TEXT", "the memory condition"),
        ("seed", "INTEGER", "the run's seed"),
        ("epoch", "INTEGER", "memory epoch"),
        ("repeat", "INTEGER", "sample of the problem within its epoch"),
        ("status", "TEXT", "execution status: passed, failed, timeout, infra_error, skipped, none (never ran)"),
        ("passed", "INTEGER", "1 when status is passed"),
        ("error", "TEXT", "why the record is incomplete (NULL: complete)"),
        ("error_type", "TEXT", "the exception the code raised when it did not pass"),
        ("advised", "INTEGER", "1 when the coder was shown advice"),
        ("advice_error", "TEXT", "why the memory gave no advice"),
        ("rec_leak", "INTEGER", "1 when the advice was flagged as overlapping the reference code"),
        ("items", "INTEGER", "retrieved items shown to the recommendation's writer"),
        ("input_tokens", "INTEGER", "the coder's input tokens"),
        ("output_tokens", "INTEGER", "the coder's output tokens"),
        ("cost_usd", "REAL", "the coder's cost"),
        ("latency_s", "REAL", "the coder's latency"),
        ("cached", "INTEGER", "1 when the coder's answer came from the response cache"),
        ("memory_hash", "TEXT", "content hash of the memory state the problem saw"),
        ("versions", "TEXT", "prompt and rubric versions (JSON)"),
    )),
    "verdicts": ("One row per record x judgment.", (
        RUN,
        ("key", "TEXT", "the record's key"),
        ("problem_id", "INTEGER", "the record's problem"),
        ("judge", "TEXT", "the judge's name, e.g. `quality/qwen2.5-coder-1.5b`"),
        ("kind", "TEXT", "quality (code, 1-5) or helpfulness (recommendation, five bands)"),
        ("repeat", "INTEGER", "the judge's repeat"),
        ("score", "REAL", "the grade (NULL: the verdict is missing, never guessed)"),
        ("band", "TEXT", "helpfulness band"),
        ("parse_error", "TEXT", "why the judge's reply gave no grade"),
        ("version", "TEXT", "the rubric version"),
        ("input_tokens", "INTEGER", "the judge's input tokens"),
        ("output_tokens", "INTEGER", "the judge's output tokens"),
        ("cost_usd", "REAL", "the judge's cost"),
        ("criteria", "TEXT", "per-criterion grades (JSON)"),
    )),
    "ledger": ("One row per run x component (coder, agent, learner, judge, ...): calls, tokens and cost.", (
        RUN,
        ("component", "TEXT", "what made the calls"),
        ("source", "TEXT", "manifest.json, or summary.json when the manifest has no ledger yet"),
        ("calls", "INTEGER", "model calls"),
        ("cached", "INTEGER", "of them answered from the response cache"),
        ("input_tokens", "INTEGER", "input tokens"),
        ("output_tokens", "INTEGER", "output tokens"),
        ("cost_usd", "REAL", "cost in USD"),
        ("latency_s", "REAL", "summed latency"),
    )),
    "items": ("One row per record x retrieved item shown in its recommendation.", (
        RUN,
        ("key", "TEXT", "the record's key"),
        ("problem_id", "INTEGER", "the record's problem"),
        ("rank", "INTEGER", "position among the record's items (1 first)"),
        ("item_id", "TEXT", "`doc:...` or `ins:...`"),
        ("kind", "TEXT", "doc or insight"),
        ("score", "REAL", "retrieval score"),
        ("cited", "INTEGER", "1 when the recommendation cited it"),
        ("leak", "INTEGER", "1 when it overlaps the reference code"),
        ("contributors", "TEXT", "the coder models whose experience made the insight, comma-separated"),
    )),
}

INDEXES = ("CREATE INDEX IF NOT EXISTS {table}_run ON {table}(run)",)
EXTRA_INDEXES = ("CREATE INDEX IF NOT EXISTS records_problem ON records(problem_id)",)


def columns(table: str) -> list[str]:
    return [name for name, _, _ in TABLES[table][1]]


def schema() -> list[str]:
    """The statements that create every table and index (idempotent)."""
    statements = []
    for table, (_, cols) in TABLES.items():
        body = ", ".join(f'"{name}" {kind}' for name, kind, _ in cols)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        if table != "runs":
            statements += [index.format(table=table) for index in INDEXES]
    return statements + list(EXTRA_INDEXES)


def describe() -> str:
    """Every table and its columns as Markdown (one line per table: `name`: meaning; columns)."""
    lines = []
    for table, (meaning, cols) in TABLES.items():
        lines.append(f"- `{table}`: {meaning} Columns: {', '.join(name for name, _, _ in cols)}.")
    return "\n".join(lines)
