"""Fork server for DS-1000 test programs; runs in the grading interpreter and uses only the stdlib.

Started as `python forkserver.py '<settings json>'`. It imports the `preload` modules once, answers
`{"ready": ...}`, then for each request line `{"program", "timeout_s"}` on stdin forks one child in a
fresh temporary directory, enforces the timeout from here (killing the child's whole process group),
and answers one JSON line. With a `uid` (the harness runs as root) the child drops to it before the
program runs, under bubblewrap or not; its working folder is its own, inside a folder of ours that it
cannot list or rename, and its output is read back without following links. It never imports
spark_eval: the grading environment does not have it.
Strict mode is the same server started per program with nothing preloaded.

Sealed reports. The program runs inside the child that reports on it, so whatever the child can write
to its report pipe, the program can write too. Before each fork the server draws three random tokens,
one per status (passed, failed, infra_error), into a raw memory page that no Python object refers to;
the child's own code ends its one report with the token of its status, copied from that page straight
to the pipe by write(2), and the server accepts only pipe contents that end with a report sealed by the
token of the status it states. Anything else is `failed` (`EarlyExit` when the pipe is empty,
`UnsealedReport` when the program wrote to it).

What this guarantees: the tokens are in no Python object, descriptor, file or environment variable of
the child, so a program cannot pass by writing a report (in any format) to the descriptors it finds,
from its main thread, a thread or a process it forks, and then exiting by any means; scanning objects
(gc), frames, globals or /proc/self/fd finds no token; and the pass token is written only when `exec`
of the whole program, its DS-1000 tests included, returned without an exception, so relaying its own
harness's sealed `failed` report under another status does not verify either.

Limits: the program shares its process with its tests and with this code, so code written against
them can still forge a pass: calling this code's own sealing (`Seal.write`, reachable through the
frames or objects of the process, as every object of the child is), reading the page with ctypes or
/proc/self/mem, patching this module's functions in memory, jumping frames with a trace function, or,
more simply, rewriting DS-1000's own
test functions, which no in-process grader (the official one included) can prevent. Such a program
targets the grader deliberately and shows it in its source. `infra_error` is decided from the
exception a program ends with, so a program can also raise a network error itself to get one.
"""
from __future__ import annotations

import ctypes
import errno
import importlib
import importlib.util
import json
import mmap
import os
import resource
import select
import shutil
import signal
import socket
import stat
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
STATUSES = ("passed", "failed", "infra_error")  # a child's report states one of these, sealed by its token
TOKEN_BYTES = 32
PR_SET_CHILD_SUBREAPER = 36
ERROR_TYPE_CHARS = 100  # even escaped (12 bytes a character at most) a report fits its slot of the token page


def main() -> None:
    settings = json.loads(sys.argv[1])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from imports or programs must not corrupt the protocol
    home = tempfile.mkdtemp(prefix="ds1000-home-")
    os.environ.update(HOME=home, MPLCONFIGDIR=home)
    settings["scratch"] = tempfile.mkdtemp(prefix="ds1000-scratch-")
    os.chmod(settings["scratch"], 0o711)  # a sandbox uid may enter its own folder here, not list or swap it
    failed = preload(settings.get("preload", []))
    missing = sorted(m for m in GRADING_MODULES if importlib.util.find_spec(m) is None)
    settings["unavailable"] = sorted(set(missing) | {name.partition(".")[0] for name in failed})
    seal = Seal()
    adopt_orphans()
    reply(proto, {"ready": True, "failed_imports": failed, "missing": missing, "python": sys.version})
    try:
        for line in sys.stdin:
            try:
                answer = run_request(json.loads(line), settings, seal, proto.fileno())
            except Exception as e:  # a fault of the server itself: report it and keep serving
                traceback.print_exc()
                answer = {"status": "infra_error", "error_type": f"SandboxFault: {type(e).__name__}: {e}",
                          "stderr_tail": traceback.format_exc()[-2000:], "duration_s": 0.0}
            reply(proto, answer)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(settings["scratch"], ignore_errors=True)


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


def run_request(request: dict, settings: dict, seal: Seal, proto_fd: int) -> dict:
    timeout = float(request["timeout_s"])
    uid = settings.get("uid")
    workdir = tempfile.mkdtemp(prefix="ds1000-", dir=settings["scratch"])
    if uid is not None:
        os.chown(workdir, uid, uid)
    read_fd, write_fd = os.pipe()
    seal.renew()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        run_child(request["program"], workdir, write_fd, seal, settings, timeout, proto_fd)
    os.close(write_fd)
    tokens = seal.tokens()  # read here, after the fork: the child holds them only in the raw page
    try:
        data, timed_out = wait_child(pid, read_fd, start + timeout)
        duration = time.monotonic() - start
        kill_leftovers(pid, uid)
        tail = read_tail(os.path.join(workdir, "output.txt"), int(settings.get("tail_chars", 2000)), workdir)
    finally:
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    if timed_out:
        report = {"status": "timeout", "error_type": "Timeout"}
    else:
        unsealed = {"status": "failed", "error_type": "UnsealedReport" if data else "EarlyExit"}
        report = sealed_report(data, tokens) or unsealed
    return {**report, "stderr_tail": tail, "duration_s": round(duration, 4)}


def sealed_report(data: bytes, tokens: dict[bytes, str]) -> dict | None:
    """The child's own report, when the pipe ends with it and its token seals the status it states; else None."""
    status = tokens.get(data[-TOKEN_BYTES:])
    if status is None:  # nothing sealed, or the program wrote after its harness reported
        return None
    try:
        report = json.loads(data[:-TOKEN_BYTES].rpartition(b"\n")[2])
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("status") != status:
        return None
    return {"status": status, "error_type": report.get("error_type")}


def wait_child(pid: int, read_fd: int, deadline: float) -> tuple[bytes, bool]:
    """Collect what the child writes to its report pipe until it exits or the deadline passes; (data, timed_out)."""
    pidfd = open_pidfd(pid)  # readable when the child exits: no polling delay
    watched = [read_fd] if pidfd is None else [read_fd, pidfd]
    data = b""
    try:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return b"", True
            ready, _, _ = select.select(watched, [], [], remaining if pidfd is not None else min(remaining, 0.05))
            if read_fd in ready:
                chunk = os.read(read_fd, 65536)
                data += chunk
                if not chunk:  # every writer closed it: wait for the exit alone
                    watched.remove(read_fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return data + drain(read_fd), False


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
    if uid is not None:
        sweep(uid)
    reap_zombies()  # orphaned leftovers come back to this server (adopt_orphans): collect them


def sweep(uid: int) -> None:
    """Kill every process of `uid`: outside bwrap, machine-wide, so the harness gives each server a uid of its own."""
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
        time.sleep(0.01)  # let the killed die before looking again


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


def adopt_orphans() -> None:
    """Become the reaper of what programs leave behind (Linux: a child subreaper), so that they are collected here
    at once, whatever the machine's PID 1 does (outside bwrap, that is the host's init)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: orphans go to PID 1 as before
        pass


def reap_zombies() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


HARNESS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_tail(path: str, chars: int, workdir: str = "") -> str:
    """The last `chars` characters of a program's output, with the places that depend on where the project and
    the run lie written as names (`<workdir>`, `<grading-env>`, `<python>` for the installation the grading
    environment was made from, whose standard library a traceback may pass through, `<harness>`): a record, and
    what a learner is shown of it, read the same wherever the project is cloned and whatever Python it runs on."""
    places = [(workdir, "<workdir>"), (sys.prefix, "<grading-env>"), (sys.base_prefix, "<python>"),
              (HARNESS_ROOT, "<harness>")]
    try:  # the program may have put a link or a FIFO in its place: read a regular file only, never through a link
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with open(fd, "rb") as f:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            return ""
        f.seek(max(0, found.st_size - 8 * chars))
        text = f.read().decode("utf-8", "replace")
    for place, name in places:
        if len(place) > 1:
            text = text.replace(place, name)
    return text[-chars:]


def run_child(
    program: str, workdir: str, report_fd: int, seal: Seal, settings: dict, timeout: float, proto_fd: int
) -> None:
    """In the forked child: confine, run the program, report how it ended. Never returns."""
    try:
        try:
            confine(workdir, settings, timeout, proto_fd)
        except BaseException as e:
            report(report_fd, seal, "infra_error", f"SandboxSetup: {type(e).__name__}: {e}")
            return
        status, error_type = run_program(program, frozenset(settings.get("unavailable", ())))
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # the program replaced or closed it: its output is its own business
                pass
        report(report_fd, seal, status, error_type)
    finally:  # whatever happened or was left behind (threads, a broken stream), the child ends here
        os._exit(0)


def confine(workdir: str, settings: dict, timeout: float, proto_fd: int) -> None:
    """Own process group, default signals, a fresh working folder, resource limits, the sandbox uid, quiet stdio."""
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


def run_program(program: str, unavailable: frozenset[str]) -> tuple[str, str | None]:
    """Run the program as the official harness does; (status, error_type).

    `passed` comes only from the normal return of `exec`, never from a classification, so a program
    that patches `classify` can at most turn its failure into the `infra_error` it could raise anyway.
    """
    try:
        exec(compile(program, "<ds1000-program>", "exec"), {})  # empty globals, as the official harness
    except BaseException as e:  # SystemExit included: only a program that runs to its end passes
        try:
            traceback.print_exc()
        except Exception:  # its output is full (the disk cap) or gone: the verdict still stands
            pass
        verdict = classify(e, unavailable)
        return ("infra_error" if verdict["status"] == "infra_error" else "failed"), verdict["error_type"]
    return "passed", None


def limit_resources(settings: dict, timeout: float) -> None:
    cpu = int(timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    data = vm_data_bytes() + int(settings.get("memory_mb", 4096)) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    size = int(settings.get("disk_mb", 1024)) * 2**20  # past it a write fails with EFBIG (Python ignores SIGXFSZ)
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


def report(fd: int, seal: Seal, status: str, error_type: str | None) -> None:
    """Write the child's one report, sealed with the token of `status` (see the module docstring)."""
    if error_type is not None:
        error_type = error_type[:ERROR_TYPE_CHARS]
    record = b"\n" + json.dumps({"status": status, "error_type": error_type}).encode()
    seal.write(fd, status, record)  # a closed or replaced pipe: the server sees no sealed report and fails it


class Seal:
    """Per-program tokens, one per status, in a raw memory page that no Python object refers to.

    The server draws them before each fork (`renew`) and reads them after it (`tokens`); the child copies
    record and token from the page to its pipe with write(2) (`write`), so in the child the tokens never
    become bytes, a file or a descriptor's contents. Each status has its own slot: the record is placed
    right before the slot's token and both go out in one write, atomic on a pipe.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
        libc.getrandom.restype = ctypes.c_ssize_t
        libc.getrandom.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)
        libc.write.restype = ctypes.c_ssize_t
        libc.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
        self._libc = libc
        self._slot = min(mmap.PAGESIZE, select.PIPE_BUF) // len(STATUSES)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        self._page = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
        if self._page in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "cannot map the page for report tokens")

    def _token_at(self, index: int) -> int:
        return self._page + (index + 1) * self._slot - TOKEN_BYTES

    def renew(self) -> None:
        """New random tokens, written into the page by getrandom(2): never a Python object here either."""
        for index in range(len(STATUSES)):
            if self._libc.getrandom(self._token_at(index), TOKEN_BYTES, 0) != TOKEN_BYTES:
                raise OSError(ctypes.get_errno(), "getrandom failed for a report token")

    def tokens(self) -> dict[bytes, str]:
        """In the server, after the fork: each token and the status it seals."""
        return {ctypes.string_at(self._token_at(i), TOKEN_BYTES): status for i, status in enumerate(STATUSES)}

    def write(self, fd: int, status: str, record: bytes) -> bool:
        """In the child: `record` then the token of `status`, in one write(2)."""
        token = self._token_at(STATUSES.index(status))
        if len(record) > self._slot - TOKEN_BYTES:
            raise ValueError(f"a report of {len(record)} bytes does not fit its slot")
        ctypes.memmove(token - len(record), record, len(record))
        size = len(record) + TOKEN_BYTES
        return self._libc.write(fd, token - len(record), size) == size


if __name__ == "__main__":
    main()
