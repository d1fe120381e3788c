"""ProcessSandbox: a pool of fork servers in the grading environment, one per worker."""
from __future__ import annotations

import collections
import json
import logging
import os
import queue
import select
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from spark_eval.execution.base import Sandbox
from spark_eval.execution.environment import GradingEnvError, probe_environment, sandbox_env
from spark_eval.execution.isolation import (
    bwrap_prefix,
    bwrap_problem,
    check_reachable,
    claim_uid,
    exposure,
    make_undumpable,
    resolve_isolation,
    sandbox_uid,
)
from spark_eval.records import ExecResult

log = logging.getLogger(__name__)

FORKSERVER = Path(__file__).resolve().parents[1] / "programs" / "forkserver.py"
STARTUP_TIMEOUT_S = 600.0  # importing tensorflow and torch on two busy cores can take minutes
REPLY_GRACE_S = 30.0  # the server enforces the timeout; this only catches a wedged server


class ProcessSandbox(Sandbox):
    """Runs DS-1000 programs in the grading interpreter, `workers` at a time.

    `mode="fork"`: each worker is a warm fork server (libraries imported once, a child per program).
    `mode="strict"`: each program gets a fresh server process with nothing preloaded.

    Args:
        python: the grading interpreter.
        mode: `fork` or `strict`.
        workers: programs run at once (default: one per core).
        timeout_s: wall-clock limit per program, enforced by the parent.
        memory_mb: memory a program may allocate beyond the warm server's own.
        max_procs: processes a program may have (enforced where the sandbox has its own uid).
        disk_mb: what a program may write: each file (both isolations), and bwrap's /tmp and /dev/shm each.
        isolation: `auto`, `bwrap` or `process`. As root, programs run under a uid of their own in both; what
            process isolation leaves open is logged as a warning and written into `describe()`.
        preload: modules a fork server imports before forking.
        seaborn_data: folder of seaborn's CSVs, exported as SEABORN_DATA when it exists.
        output_tail_chars: how much of a program's stdout/stderr to keep.
    """

    def __init__(
        self,
        python: str,
        mode: str = "fork",
        workers: int | None = None,
        timeout_s: float = 120.0,
        memory_mb: int = 4096,
        max_procs: int = 512,
        disk_mb: int = 1024,
        isolation: str = "auto",
        preload: list[str] | tuple[str, ...] = (),
        seaborn_data: str | None = None,
        output_tail_chars: int = 2000,
    ) -> None:
        if mode not in ("fork", "strict"):
            raise ValueError(f"execution.mode={mode!r} is unknown; use fork or strict")
        undumpable = make_undumpable()  # before any program runs: a same-uid program cannot read our keys
        self.environment = probe_environment(python)
        self.requested = isolation
        self.isolation = resolve_isolation(isolation)
        self.mode = mode
        self.timeout_s = float(timeout_s)
        self.workers = int(workers or os.cpu_count() or 1)
        seaborn_data = os.path.realpath(seaborn_data) if seaborn_data else None
        extra = {"SEABORN_DATA": seaborn_data} if seaborn_data and os.path.isdir(seaborn_data) else {}
        self._env = sandbox_env(extra)
        self._settings = {"memory_mb": memory_mb, "max_procs": max_procs, "disk_mb": disk_mb,
                          "tail_chars": output_tail_chars}
        self._preload = list(preload) if mode == "fork" else []
        self._readable = [self.environment.prefix, self.environment.base_prefix, str(FORKSERVER)]
        self._readable += list(extra.values())
        self._claims: list[socket.socket] = []
        self._uids = self._own_uids()
        self.fallback = bwrap_problem() if isolation == "auto" and self.isolation == "process" else None
        self.exposes = exposure(self.isolation, self._uids[0], disk_mb, undumpable)
        self._warn_exposure()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for index in range(self.workers):
            self._idle.put(_Worker(self, index))

    def describe(self) -> dict[str, Any]:
        """How programs are run, for the manifest."""
        return {
            "mode": self.mode,
            "isolation": self.isolation,
            "requested": self.requested,
            "fallback": self.fallback,
            "own_uid": self._uid(0) is not None,
            "uids": self._uids,
            "exposes": self.exposes,
            "disk_mb": self._settings["disk_mb"],
            "workers": self.workers,
            "timeout_s": self.timeout_s,
            "grading_env": self.environment.to_json(),
        }

    def _warn_exposure(self) -> None:
        """One warning at start when programs are not sandboxed by bubblewrap: what was asked, what they reach."""
        if not self.exposes:
            return
        if self.isolation == "bwrap":
            log.warning("the sandbox leaves open %s", "; ".join(self.exposes))
            return
        how = (f"execution.isolation=auto fell back to process isolation ({self.fallback})" if self.fallback
               else "execution.isolation=process")
        who = f"uid {self._uids[0]}, not the harness's" if self._uids[0] is not None else "the harness's own user"
        log.warning("%s: programs run without bubblewrap as %s, and can reach %s. Run where bubblewrap can make its"
                    " namespaces to close these", how, who, "; ".join(self.exposes))

    def start(self) -> None:
        """Start every worker now (in parallel), so a broken grading environment stops a run before any work."""
        workers = [self._idle.get() for _ in range(self.workers)]
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(_Worker.ensure_started, workers))
        finally:
            for worker in workers:
                if self.mode == "strict":
                    worker.stop()
                self._idle.put(worker)

    def run(self, program: str, requires: tuple[str, ...] = ()) -> ExecResult:
        worker = self._idle.get()
        try:
            missing = worker.ensure_started() & set(requires)
            if missing:
                return ExecResult("skipped", f"NotInstalled: {', '.join(sorted(missing))}")
            return worker.execute(program, self.timeout_s)
        finally:
            if self.mode == "strict":  # a fresh interpreter for every program
                worker.stop()
            self._idle.put(worker)

    def close(self) -> None:
        for _ in range(self.workers):
            self._idle.get().stop()
        self._release_uids()  # the servers are gone: their uids may go to another run

    def _release_uids(self) -> None:
        for claim in self._claims:
            claim.close()
        self._claims.clear()

    def _uid(self, index: int) -> int | None:
        return self._uids[index]

    def _own_uids(self) -> list[int | None]:
        try:
            return [self._own_uid(index) for index in range(self.workers)]
        except GradingEnvError:
            self._release_uids()
            raise

    def _own_uid(self, index: int) -> int | None:
        """The uid worker `index`'s programs run under: their own whenever we are root (never root itself, in
        either isolation); None (ours) otherwise. Under process isolation it is claimed machine-wide and
        checked to reach the grading interpreter."""
        if os.geteuid() != 0:
            return None
        if self.isolation == "bwrap":
            return sandbox_uid(index)
        uid, claim = claim_uid()
        self._claims.append(claim)
        if index == 0:  # every claimed uid is alike: no groups, others' permissions
            check_reachable(self.environment.python, uid, self._readable, self._env)
        return uid

    def _command(self, index: int) -> list[str]:
        settings = {**self._settings, "preload": self._preload, "uid": self._uid(index)}
        command = [self.environment.python, str(FORKSERVER), json.dumps(settings)]
        if self.isolation != "bwrap":
            return command
        return bwrap_prefix(self._readable, self._settings["disk_mb"]) + command


class _Worker:
    """One fork server process, restarted when it dies or wedges."""

    def __init__(self, pool: ProcessSandbox, index: int) -> None:
        self.pool = pool
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.missing: set[str] = set()
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)

    def ensure_started(self) -> set[str]:
        """Start the server if needed; the grading modules it lacks."""
        if self.proc is not None and self.proc.poll() is None:
            return self.missing
        self.proc = subprocess.Popen(
            self.pool._command(self.index),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.pool._env,
            cwd="/",
            start_new_session=True,
        )
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        ready = self._read_reply(time.monotonic() + STARTUP_TIMEOUT_S)
        if ready is None or not ready.get("ready"):
            self.stop()
            raise GradingEnvError(
                f"the grading interpreter {self.pool.environment.python} could not start a sandbox"
                f" ({' | '.join(self.stderr)[-500:]}); rebuild it with `make setup` or set execution.isolation=process"
            )
        if ready["failed_imports"]:
            log.warning("grading environment could not import %s", ready["failed_imports"])
        self.missing = set(ready["missing"]) | {m.split(".")[0] for m in ready["failed_imports"]}
        return self.missing

    def execute(self, program: str, timeout_s: float) -> ExecResult:
        start = time.monotonic()
        try:
            self.proc.stdin.write((json.dumps({"program": program, "timeout_s": timeout_s}) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read_reply(start + timeout_s + REPLY_GRACE_S)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:  # the program killed or wedged its server: a sandbox fault, not a verdict
            code = self.proc.poll()
            self.stop()
            tail = f"server exit code {code}: " + " | ".join(self.stderr)[-1500:]
            return ExecResult("infra_error", "SandboxFault", tail, time.monotonic() - start)
        return ExecResult(reply["status"], reply.get("error_type"), reply.get("stderr_tail", ""), reply["duration_s"])

    def _read_reply(self, deadline: float) -> dict | None:
        stdout = self.proc.stdout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
                return None
            chunk = os.read(stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            line += chunk
        return json.loads(line)

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        for raw in proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    def stop(self) -> None:
        """End the server: politely (end of input) first, so it cleans up; then kill its process group."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None
