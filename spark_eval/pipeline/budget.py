"""`budget.usd`: a spending cap on a run (or, with `budget.scope=sweep`, on every run of its experiment folder).

Two checks keep the spend under the cap. Before a call goes out, the run's ledger (models/ledger.py) holds its worst
case (the prompt at 3 characters a token, all of `max_tokens` as output, at the model's prices) and refuses the
call if the spend, the worst cases of the calls in flight and its own would pass the cap; the problem it was for is
not written (a resume makes it; its earlier calls come back from the response cache). So that few problems are
cut short, a problem starts only if the spend, what the problems already running will likely cost (the run's mean
per finished problem, earlier attempts included; one problem at a time until one has finished) and one more
problem stay under the cap. Running problems finish and are written, the manifest says `status:
budget_exhausted`; the spend of earlier attempts counts, so a resume with a higher cap goes on where the last one
stopped, and a cap below what is already spent stops before anything starts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from spark_eval.errors import UserError
from spark_eval.models.ledger import Ledger
from spark_eval.records import Record, read_records
from spark_eval.records.index import signature
from spark_eval.records.summary import ledger

SIBLINGS_EVERY_S = 2.0  # how often a sweep-wide budget rereads the other runs' manifests


class BudgetError(UserError):
    """The cap is below what is already spent; the message names the fix."""


def spent_by(records: Iterable[Record], manifest: dict[str, Any]) -> float:
    """What a run directory's earlier attempts spent: its manifest's `spent_usd` (kept current while it ran), or
    the cost its records hold, whichever is larger (a run from before `spent_usd`, or one killed between updates)."""
    in_records = sum(account["cost_usd"] for account in ledger(records).values())
    return max(float(manifest.get("spent_usd") or 0.0), in_records)


class Budget:
    """The cap, what was spent before this attempt, this attempt's ledger, and (scope sweep) the other runs'.

    A problem's likely cost is this run's spend over the problems it has finished, earlier attempts included;
    until one has finished, problems start one at a time, so a cap is never passed by a whole wave of them.
    """

    def __init__(self, usd: float | None, scope: str, run_dir: Path, before: float, run_ledger: Ledger,
                 finished_before: int = 0) -> None:
        if scope not in ("run", "sweep"):
            raise BudgetError(f"budget.scope={scope} is unknown; use run or sweep")
        if usd is not None and usd < 0:
            raise BudgetError(f"budget.usd={usd} is negative; give a cap in USD, or leave it unset")
        self.usd, self.scope, self.run_dir, self.before, self.ledger = usd, scope, Path(run_dir), before, run_ledger
        self._siblings: dict[Path, tuple[str, float]] = {}  # by run: its files' signature, its spend
        self._siblings_total, self._siblings_at = 0.0, -SIBLINGS_EVERY_S
        self.problems_done = finished_before  # problems finished, earlier attempts included: the mean cost of one
        run_ledger.limit = self.may_reserve  # a call goes out only if its worst case fits under the cap
        if usd is not None and self.spent() > usd:
            where = "this experiment's runs have" if scope == "sweep" else "this run has"
            raise BudgetError(f"budget.usd={usd:g} is below the ${self.spent():.2f} {where} already spent; "
                              f"give budget.usd above {self.spent():.2f} to continue")

    def own(self) -> float:
        """This run's spend, earlier attempts included."""
        return self.before + self.ledger.usd

    def spent(self) -> float:
        return self.own() + (self._other_runs() if self.scope == "sweep" else 0.0)

    def allows(self, running: int) -> bool:
        """Whether one more problem may start with `running` problems under way."""
        if self.usd is None:
            return True
        spent = self.spent()
        if not self.problems_done:
            return running == 0 and spent < self.usd  # no cost known yet: one at a time
        per_problem = self.own() / self.problems_done
        return spent < self.usd and spent + (running + 1) * per_problem <= self.usd

    def may_reserve(self, reserved: float) -> bool:
        """Whether calls whose worst cases add up to `reserved` USD may be in flight."""
        return self.usd is None or self.spent() + reserved <= self.usd

    def shown(self) -> str:
        """For the progress bar: `$1.23` or `$1.23/5` with a cap."""
        spent = f"${self.spent():.2f}"
        return spent if self.usd is None else f"{spent}/{self.usd:g}"

    def _other_runs(self) -> float:
        """What the other run directories of the experiment folder spent (`spent_by`; a run's files are read again
        only when they changed, and looked at every few seconds)."""
        now = time.monotonic()
        if now - self._siblings_at < SIBLINGS_EVERY_S:
            return self._siblings_total
        seen = {}
        for run_dir in self.run_dir.parent.iterdir() if self.run_dir.parent.is_dir() else ():
            if run_dir == self.run_dir or not (run_dir / "manifest.json").is_file():
                continue
            try:
                stamp = signature(run_dir)
                if self._siblings.get(run_dir, ("", 0.0))[0] != stamp:
                    manifest = json.loads((run_dir / "manifest.json").read_text())
                    records = read_records(run_dir / "records.jsonl", repair=False) \
                        if (run_dir / "records.jsonl").is_file() else []
                    self._siblings[run_dir] = (stamp, spent_by(records, manifest if isinstance(manifest, dict) else {}))
                seen[run_dir] = self._siblings[run_dir]
            except (OSError, ValueError, UserError):
                continue  # being rewritten, or not a run's: the next look counts it
        self._siblings = seen
        self._siblings_total, self._siblings_at = sum(spent for _, spent in seen.values()), now
        return self._siblings_total
