"""Fork server for DS-1000 test programs; runs in the grading interpreter and uses only the stdlib.

Started as `python forkserver.py '<settings json>'`. It imports the `preload` modules once, answers
`{"ready": ...}`, then for each request line `{"program", "timeout_s"}` on stdin forks one child in a
fresh temporary directory, enforces the timeout from here (killing the child's whole process group),
and answers one JSON line. It never imports spark_eval: the grading environment does not have it.
Strict mode is the same server started per program with nothing preloaded.
"""
from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import urllib.error

# Modules DS-1000's test programs need; one that is missing or fails its own import is the environment's fault.
GRADING_MODULES = {
    "numpy", "pandas", "matplotlib", "scipy", "sklearn", "seaborn", "torch", "tensorflow", "keras",
    "statsmodels", "xgboost", "gensim", "yaml", "PIL",
}
NETWORK_ERRORS = (ConnectionError, socket.gaierror, socket.herror, socket.timeout, urllib.error.URLError)
NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}


def main() -> None:
    settings = json.loads(sys.argv[1])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from imports or programs must not corrupt the protocol
    home = tempfile.mkdtemp(prefix="ds1000-home-")
    os.environ.update(HOME=home, MPLCONFIGDIR=home)
    failed = preload(settings.get("preload", []))
    missing = sorted(m for m in GRADING_MODULES if importlib.util.find_spec(m) is None)
    settings["unavailable"] = sorted(set(missing) | {name.partition(".")[0] for name in failed})
    reply(proto, {"ready": True, "failed_imports": failed, "missing": missing, "python": sys.version})
    try:
        for line in sys.stdin:
            try:
                answer = run_request(json.loads(line), settings, proto.fileno())
            except Exception as e:  # a fault of the server itself: report it and keep serving
                traceback.print_exc()
                answer = {"status": "infra_error", "error_type": f"SandboxFault: {type(e).__name__}: {e}",
                          "stderr_tail": traceback.format_exc()[-2000:], "duration_s": 0.0}
            reply(proto, answer)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def preload(modules: list[str]) -> dict[str, str]:
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # a missing library shows up as `skipped`, not as a dead server
            failed[name] = f"{type(e).__name__}: {e}"
    return failed


def reply(proto, message: dict) -> None:
    proto.write(json.dumps(message) + "\n")
    proto.flush()


def run_request(request: dict, settings: dict, proto_fd: int) -> dict:
    timeout = float(request["timeout_s"])
    uid = settings.get("uid")
    workdir = tempfile.mkdtemp(prefix="ds1000-")
    if uid is not None:
        os.chown(workdir, uid, uid)
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        run_child(request["program"], workdir, write_fd, settings, timeout, proto_fd)
    os.close(write_fd)
    try:
        report, timed_out = wait_child(pid, read_fd, start + timeout)
        duration = time.monotonic() - start
        kill_leftovers(pid, uid)
        tail = read_tail(os.path.join(workdir, "output.txt"), int(settings.get("tail_chars", 2000)))
    finally:
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    if timed_out:
        report = {"status": "timeout", "error_type": "Timeout"}
    elif report is None:
        report = {"status": "failed", "error_type": "EarlyExit"}
    return {**report, "stderr_tail": tail, "duration_s": round(duration, 4)}


def wait_child(pid: int, read_fd: int, deadline: float) -> tuple[dict | None, bool]:
    """Collect the child's report until it exits or the deadline passes; (report, timed_out)."""
    pidfd = open_pidfd(pid)  # readable when the child exits: no polling delay
    watched = [read_fd] if pidfd is None else [read_fd, pidfd]
    data = b""
    try:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None, True
            ready, _, _ = select.select(watched, [], [], remaining if pidfd is not None else min(remaining, 0.05))
            if read_fd in ready:
                chunk = os.read(read_fd, 65536)
                data += chunk
                if not chunk:  # every writer closed it: wait for the exit alone
                    watched.remove(read_fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    data += drain(read_fd)
    try:
        return json.loads(data.decode()), False
    except ValueError:
        return None, False


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def kill_leftovers(pgid: int, uid: int | None) -> None:
    """Kill what the program left behind: its process group, and every process of its sandbox uid."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is None:
        return
    for _ in range(50):  # a fork bomb refills between sweeps; each sweep kills all that exist
        if not processes_of(uid):
            break
        reaper = os.fork()
        if reaper == 0:  # kill(-1) as the sandbox uid reaches exactly the processes of that uid
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(reaper, 0)
        reap_zombies()
        time.sleep(0.01)  # let the orphans' reaper (PID 1 of the sandbox) collect the killed


def processes_of(uid: int) -> list[int]:
    """Live processes of `uid` that this process can see (inside bwrap: only the sandbox's own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid and not is_zombie(entry):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def is_zombie(pid: str) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"


def reap_zombies() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def read_tail(path: str, chars: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4 * chars))
            return f.read().decode("utf-8", "replace")[-chars:]
    except OSError:
        return ""


def run_child(program: str, workdir: str, report_fd: int, settings: dict, timeout: float, proto_fd: int) -> None:
    """In the forked child: confine, run the program, report how it ended. Never returns."""
    try:
        os.setpgid(0, 0)
        os.close(proto_fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(workdir)
        os.environ.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=workdir)
        tempfile.tempdir = workdir
        limit_resources(settings, timeout)
        if settings.get("uid") is not None:
            os.setgroups([])
            os.setgid(settings["uid"])
            os.setuid(settings["uid"])
        out = os.open(os.path.join(workdir, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    except BaseException as e:
        report(report_fd, {"status": "infra_error", "error_type": f"SandboxSetup: {type(e).__name__}: {e}"})
        os._exit(1)
    try:
        exec(compile(program, "<ds1000-program>", "exec"), {})  # empty globals, as the official harness
        result = {"status": "passed", "error_type": None}
    except BaseException as e:  # SystemExit included: only a program that runs to its end passes
        traceback.print_exc()
        result = classify(e, frozenset(settings.get("unavailable", ())))
    sys.stdout.flush()
    sys.stderr.flush()
    report(report_fd, result)
    os._exit(0)


def limit_resources(settings: dict, timeout: float) -> None:
    cpu = int(timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    data = vm_data_bytes() + int(settings.get("memory_mb", 4096)) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    size = 2**30
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if settings.get("uid") is not None:
        procs = int(settings.get("max_procs", 512))
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))


def vm_data_bytes() -> int:
    """This process's data segment size now: the memory cap is counted on top of the warm imports."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def classify(e: BaseException, unavailable: frozenset[str] = frozenset()) -> dict:
    """`infra_error` when the environment failed the program (no network, a grading library that does not
    import); `failed` for everything the program did wrong itself, its own bad imports included."""
    chain, seen = [], e
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(x, NETWORK_ERRORS) or getattr(x, "errno", None) in NETWORK_ERRNOS for x in chain):
        return {"status": "infra_error", "error_type": f"Network: {type(e).__name__}"}
    broken = broken_library(e, unavailable) if isinstance(e, ImportError) else None
    if broken is not None:
        return {"status": "infra_error", "error_type": f"ImportError: {broken}"}
    return {"status": "failed", "error_type": type(e).__name__}


def broken_library(e: ImportError, unavailable: frozenset[str]) -> str | None:
    """The grading library whose own top-level import failed, if that is what `e` reports.

    A library is the environment's fault only when it cannot be imported at all: it is not installed or
    failed the server's preload (`unavailable`), or its import failed during this program (so it is not
    in sys.modules; the failure may name a dependency of it, hence the traceback's modules too). A
    missing name or submodule of a library that imports (`from numpy import nope`, `import sklearn.nope`)
    is the program's mistake.
    """
    involved = {(e.name or "").partition(".")[0]}
    tb = e.__traceback__
    while tb is not None:
        involved.add(str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0])
        tb = tb.tb_next
    for library in sorted(involved & GRADING_MODULES):
        if library in unavailable or library not in sys.modules:
            return library
    return None


def report(fd: int, result: dict) -> None:
    try:
        os.write(fd, json.dumps(result).encode())
    except OSError:
        pass  # the program closed its report pipe: the parent sees no report and fails it


if __name__ == "__main__":
    main()
