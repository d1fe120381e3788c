"""`budget.usd`: a spending cap on a run (or, with `budget.scope=sweep`, on every run of its experiment folder).

Two checks keep the spend under the cap. Before a call goes out, its worst case (models/ledger.py: the prompt at 3
characters a token, all of `max_tokens` as output, at the model's prices) is held in the experiment folder's ledger,
`budget.sqlite`, which every process running there shares: in one `BEGIN IMMEDIATE` transaction the spend the scope
counts, the worst cases every process holds for its calls in flight and this call's must stay under the cap, else
the call waits for calls in flight to settle, or, with none in flight, is refused; the problem it was for is not
written (a resume makes it; its earlier calls come back from the response cache). A call settles at its real cost.
So that few problems are cut short, a problem starts only if the spend, what the problems already running will
likely cost (the run's mean per finished problem, earlier attempts included; one problem at a time until one has
finished) and one more problem stay under the cap. Running problems finish and are written, the manifest says
`status: budget_exhausted`; the spend of earlier attempts counts, so a resume with a higher cap goes on where the
last one stopped, and a cap below what is already spent stops before anything starts. A `stage=judge` pass keeps the
same cap in the same way (`open_budget(..., judging=True)`): its verdicts are the units, the run's spend before it
counts against the cap but not in a verdict's likely cost, and a pass the cap stopped says `budget_exhausted`.

The ledger keeps each run directory's spend and, per process, the worst cases it holds. A run's spend is the larger
of the ledger's and its files' (`spent_by`: a run from before the ledger, a `stage=judge` pass, a run without a
cap), so nothing counts twice; a run directory without a manifest (new, or deleted) has spent nothing. The holds of
a process that died (killed) are released by the next call that looks, so no call waits on them for ever: on this
host when its pid is gone, from another host once it has been silent for STALE_AFTER_S. Settling them from the
run's records on resume instead would leave a sweep's other jobs waiting on a resume that may never come.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from spark_eval.errors import UserError
from spark_eval.models.ledger import Hold, Ledger
from spark_eval.records import Record
from spark_eval.records.run import Manifest, RunFiles
from spark_eval.stats.summary import ledger

LEDGER_FILE = "budget.sqlite"  # in the experiment folder, beside its run directories
STALE_AFTER_S = 3600.0  # a process on another host silent this long is gone (a call's attempts, 3 of 300 s by default, take less)
WAIT_FOR_LOCK_S = 60.0  # how long a transaction waits for other processes' (each takes milliseconds)

SCHEMA = """
CREATE TABLE IF NOT EXISTS spent (run TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TABLE IF NOT EXISTS held (run TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    calls INTEGER NOT NULL, usd REAL NOT NULL, seen REAL NOT NULL, PRIMARY KEY (run, host, pid));
"""


class BudgetError(UserError):
    """The cap is below what is already spent, or the ledger cannot be used; the message names the fix."""


def spent_by(records: Iterable[Record], manifest: Manifest) -> float:
    """What a run directory's earlier attempts spent: its manifest's `spent_usd` (kept current while it ran), or
    the cost its records hold, whichever is larger (a run from before `spent_usd`, or one killed between updates)."""
    in_records = sum(account["cost_usd"] for account in ledger(records).values())
    return max(float(manifest.spent_usd or 0.0), in_records)


def spent_in(run_dir: Path) -> float | None:
    """What a run directory's files say it spent (`spent_by`); None without a manifest (not a run, or not started).
    A file being written or damaged counts as empty: the ledger has that run's spend, or its own resume stops."""
    files = RunFiles(run_dir)
    if not files.has_manifest:
        return None
    try:
        manifest = files.manifest
    except (OSError, UserError):
        manifest = Manifest()
    try:
        records = files.records
    except (OSError, UserError):
        records = []
    return spent_by(records, manifest)


def open_budget(cfg: Any, files: RunFiles, ledger: Ledger, judging: bool = False) -> Budget:
    """The budget (`cfg`: the `budget` node) of a run, or of a `stage=judge` pass over it (`judging`), with what the
    run directory's earlier attempts spent; a damaged manifest stops here, in one line. A run's units are its
    problems (those finished before count in the mean cost of one); a judge pass's are its verdicts, and what the
    run spent before it counts against the cap only."""
    records = files.records
    before = spent_by(records, files.manifest)
    if judging:
        return Budget(cfg.usd, cfg.scope, files.path, before, ledger, apart=before)
    return Budget(cfg.usd, cfg.scope, files.path, before, ledger,
                  finished_before=sum(1 for r in records if not r.error))


class Budget:
    """The cap, what this run spent before this attempt, this attempt's ledger, and (scope sweep) the other runs'.

    A problem's likely cost is this run's spend over the problems it has finished, earlier attempts included;
    until one has finished, problems start one at a time, so a cap is never passed by a whole wave of them. Without
    a cap nothing is shared: the run only counts. `apart`: spend the cap counts that is not of these units (a judge
    pass's: the run's before it), left out of a unit's likely cost.
    """

    def __init__(self, usd: float | None, scope: str, run_dir: Path, before: float, run_ledger: Ledger,
                 finished_before: int = 0, apart: float = 0.0) -> None:
        if scope not in ("run", "sweep"):
            raise BudgetError(f"budget.scope={scope} is unknown; use run or sweep")
        if usd is not None and usd < 0:
            raise BudgetError(f"budget.usd={usd} is negative; give a cap in USD, or leave it unset")
        self.usd, self.scope, self.ledger = usd, scope, run_ledger
        self.shared = SharedLedger(Path(run_dir), scope, usd) if usd is not None else None
        self.before = self.shared.open(before) if self.shared else before
        self.problems_done = finished_before  # problems finished, earlier attempts included: the mean cost of one
        self.apart = apart
        run_ledger.limit = self.shared  # a call goes out only if its worst case fits under the cap
        if usd is not None and self.spent() > usd:
            where = "this experiment's runs have" if scope == "sweep" else "this run has"
            raise BudgetError(f"budget.usd={usd:g} is below the ${self.spent():.2f} {where} already spent; "
                              f"give budget.usd above {self.spent():.2f} to continue")

    def own(self) -> float:
        """This run's spend, earlier attempts included."""
        return self.before + self.ledger.usd

    def spent(self) -> float:
        """What the cap counts: this run's spend, and (scope sweep) the other runs' at the ledger's last look."""
        return self.own() + (self.shared.others if self.shared else 0.0)

    def allows(self, running: int) -> bool:
        """Whether one more problem may start with `running` problems under way."""
        if self.usd is None:
            return True
        spent = self.spent()
        if not self.problems_done:
            return running == 0 and spent < self.usd  # no cost known yet: one at a time
        per_problem = (self.own() - self.apart) / self.problems_done
        return spent < self.usd and spent + (running + 1) * per_problem <= self.usd

    def shown(self) -> str:
        """For the progress bar: `$1.23` or `$1.23/5` with a cap."""
        spent = f"${self.spent():.2f}"
        return spent if self.usd is None else f"{spent}/{self.usd:g}"


class Gate:
    """Where units of work (a run's problems, a judge pass's verdicts) start while `budget` allows one more with
    those under way; a unit the budget does not allow even alone does not start."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.running = 0
        self._finished = asyncio.Condition()

    async def enter(self) -> bool:
        """Wait until the budget allows one more unit (a running one's cost may make it known); False: it never will
        (nothing is running), so the unit does not start."""
        async with self._finished:
            while not self.budget.allows(self.running):
                if not self.running:
                    return False
                await self._finished.wait()
            self.running += 1
        return True

    async def leave(self) -> None:
        """A unit that entered has finished (or failed): its cost counts in the mean."""
        async with self._finished:
            self.running -= 1
            self.budget.problems_done += 1
            self._finished.notify_all()


class SharedLedger:
    """An experiment folder's `budget.sqlite` as one run of one process uses it: the ledger's `Limit` under `cap`.

    Each method is one `BEGIN IMMEDIATE` transaction, so no two processes check and hold at once; this process's
    threads take the one connection in turn. The scope `run` counts this run's rows only, `sweep` every run's.
    """

    def __init__(self, run_dir: Path, scope: str, cap: float) -> None:
        self.path, self.run, self.scope, self.cap = run_dir.parent / LEDGER_FILE, run_dir.name, scope, cap
        self.others = 0.0  # what the scope's other runs had spent at the last transaction
        self._me = (socket.gethostname(), os.getpid())
        self._scope = ("", ()) if scope == "sweep" else (" WHERE run = ?", (self.run,))
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=WAIT_FOR_LOCK_S, isolation_level=None,
                                       check_same_thread=False)
            # a rollback journal, not WAL: WAL's shared memory does not reach processes on other hosts of a shared
            # folder. No fsync per call (it took 15 ms of each transaction): a killed process loses nothing, only a
            # machine's crash could, and the run directories' files give their spend back.
            self._db.execute("PRAGMA journal_mode=TRUNCATE")
            self._db.execute("PRAGMA synchronous=OFF")
        except (OSError, sqlite3.Error) as e:
            raise self._unusable(e) from None
        with self._transaction() as db:
            for statement in SCHEMA.split(";")[:-1]:
                db.execute(statement)

    def open(self, before: float) -> float:
        """This run's spend, once the ledger has taken in what run directories' files say they spent: `before` for
        this one and, with scope sweep, every other run directory of the folder (read before the transaction)."""
        files = {self.run: before}
        if self.scope == "sweep":
            files |= {d.name: spent_in(d) for d in sorted(self.path.parent.iterdir()) if d.is_dir()
                      and d.name != self.run}
        with self._transaction() as db:
            self._release_stale(db)
            runs = set(files) | ({r for r, in db.execute("SELECT run FROM spent")} if self.scope == "sweep" else set())
            for run in sorted(runs):
                self._take_in(db, run, files.get(run))
            return self._look(db)

    def hold(self, worst_case: float) -> Hold:
        """Hold `worst_case` if the scope's spend, its holds and it stay under the cap."""
        with self._transaction() as db:
            self._release_stale(db)
            where, args = self._scope
            spent, = db.execute(f"SELECT COALESCE(SUM(usd), 0) FROM spent{where}", args).fetchone()
            held, calls = db.execute(f"SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(calls), 0) FROM held{where}",
                                     args).fetchone()
            fits = spent + held + worst_case <= self.cap
            if fits:
                db.execute("INSERT INTO held VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (run, host, pid) DO UPDATE SET "
                           "calls = calls + 1, usd = usd + excluded.usd, seen = excluded.seen",
                           (self.run, *self._me, worst_case, time.time()))
            self._look(db)
        return Hold(fits, calls > 0)

    def settle(self, worst_case: float, usd: float) -> None:
        """Release a call's hold (`worst_case` > 0: it was held) and charge its real cost."""
        with self._transaction() as db:
            if worst_case > 0:
                mine = (self.run, *self._me)
                db.execute("UPDATE held SET calls = calls - 1, usd = MAX(0, usd - ?), seen = ? "
                           "WHERE run = ? AND host = ? AND pid = ?", (worst_case, time.time(), *mine))
                db.execute("DELETE FROM held WHERE run = ? AND host = ? AND pid = ? AND calls <= 0", mine)
            if usd:
                db.execute("INSERT INTO spent VALUES (?, ?) ON CONFLICT (run) DO UPDATE SET usd = usd + excluded.usd",
                           (self.run, usd))
            self._look(db)

    def _take_in(self, db: sqlite3.Connection, run: str, files: float | None) -> None:
        """A run's spend becomes the larger of the ledger's and its files'; a run directory without a manifest
        (new, or deleted) is dropped, unless a process holds worst cases for it."""
        if not RunFiles(self.path.parent / run).has_manifest:
            if not db.execute("SELECT 1 FROM held WHERE run = ?", (run,)).fetchone():
                db.execute("DELETE FROM spent WHERE run = ?", (run,))
        if files is not None:
            db.execute("INSERT INTO spent VALUES (?, ?) ON CONFLICT (run) DO UPDATE SET usd = MAX(usd, excluded.usd)",
                       (run, files))

    def _look(self, db: sqlite3.Connection) -> float:
        """This run's spend; what the scope's other runs spent goes to `others`."""
        own = db.execute("SELECT COALESCE(SUM(usd), 0) FROM spent WHERE run = ?", (self.run,)).fetchone()[0]
        if self.scope == "sweep":
            self.others = db.execute("SELECT COALESCE(SUM(usd), 0) FROM spent").fetchone()[0] - own
        return own

    def _release_stale(self, db: sqlite3.Connection) -> None:
        """Drop the holds of processes that are gone: on this host, their pid; elsewhere, STALE_AFTER_S of silence."""
        host, silent = self._me[0], time.time() - STALE_AFTER_S
        gone = [(run, h, pid) for run, h, pid, seen in db.execute("SELECT run, host, pid, seen FROM held")
                if (not _alive(pid) if h == host else seen < silent)]
        db.executemany("DELETE FROM held WHERE run = ? AND host = ? AND pid = ?", gone)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:  # locked past WAIT_FOR_LOCK_S, or a filesystem without locks
                raise self._unusable(e) from None

    def _unusable(self, error: Exception) -> BudgetError:
        return BudgetError(f"{self.path}: {error}; budget.usd keeps its ledger there: give the runs a folder on a "
                           "filesystem with working file locks (hydra.run.dir), or delete a damaged ledger (the run "
                           "directories' files give their spend back)")


def _alive(pid: int) -> bool:
    """Whether a process of this host has that pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's
    return True
