"""How programs are kept from the harness: bubblewrap, a uid of their own, a harness that cannot be read, and
what each isolation still leaves open (in the manifest and the log, never silently)."""
from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

from spark_eval.execution.environment import GradingEnvError

ISOLATIONS = ("auto", "bwrap", "process")
BWRAP_UID_BASE = 61000  # one per worker; bwrap's own PID namespace keeps each sandbox's cleanup to itself
PROCESS_UID_BASE = 62000  # claimed machine-wide (claim_uid): process isolation's cleanup reaches the whole machine
PROCESS_UIDS = 1000
CHECKOUT = Path(__file__).resolve().parents[2]
PR_SET_DUMPABLE = 4


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox programs here, in a few words; None when it can."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed"
    try:
        probe = subprocess.run([*bwrap_prefix([]), "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap does not run: {e}"
    if probe.returncode != 0:
        said = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return f"bwrap cannot make its namespaces: {said[0][:200]}"
    return None


def bwrap_works() -> bool:
    """True when bubblewrap is installed and can create the namespaces the sandbox needs."""
    return bwrap_problem() is None


@functools.lru_cache(maxsize=1)
def bwrap_sizes_tmpfs() -> bool:
    """Whether this bwrap takes `--size` (0.7 and later), which caps a tmpfs."""
    try:
        return "--size" in subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def resolve_isolation(requested: str) -> str:
    """`bwrap` or `process`, from `execution.isolation` (auto | bwrap | process)."""
    if requested not in ISOLATIONS:
        raise GradingEnvError(f"execution.isolation={requested!r} is unknown; use auto, bwrap or process")
    if requested == "process":
        return "process"
    if bwrap_works():
        return "bwrap"
    if requested == "bwrap":
        raise GradingEnvError(
            f"execution.isolation=bwrap but {bwrap_problem()}; install bubblewrap (apt-get install bubblewrap) where"
            " user namespaces are allowed, or set execution.isolation=auto"
        )
    return "process"


# What a program may read besides its interpreter: the system's programs and libraries, and the few /etc and
# /sys entries that Python and the grading libraries consult (found by tracing every reference solution):
# the dynamic linker's cache, fonts, the time zone, name lookup, certificates, user names, CPU topology.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.preload", "/etc/localtime",
    "/etc/timezone", "/etc/fonts", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates",
    "/etc/alternatives", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/hosts", "/etc/resolv.conf",
    "/etc/passwd", "/etc/group", "/etc/os-release", "/etc/mime.types", "/var/cache/fontconfig",
    "/sys/devices/system/cpu",
)


def bwrap_prefix(readable: list[str], disk_mb: int | None = None) -> list[str]:
    """bwrap arguments: an empty root with only what programs need, read-only; no network, own PID namespace.

    Nothing is visible unless bound here: the system paths above, and `readable` (the interpreter's prefix
    and base prefix, the fork server, the seaborn data), each bound by itself, so a venv inside the
    repository shows the venv and not the repository, its data, the results or the response cache.
    /tmp and /dev/shm are private tmpfs, each capped at `disk_mb` where bwrap takes `--size`. No
    --die-with-parent: it ties the sandbox to the harness *thread* that started it, and worker threads come
    and go; a server whose harness is gone sees end-of-input and exits by itself.
    """
    made = {"/"}
    args = ["bwrap"]
    for path in SYSTEM_PATHS + SYSTEM_FILES:
        if os.path.exists(path):  # a dangling link (/etc/resolv.conf without its resolver) would stop bwrap
            args += _parents(path, made) + _system_bind(path)
    args += ["--dev", "/dev", "--proc", "/proc"]
    size = ["--size", str(disk_mb * 2**20)] if disk_mb and bwrap_sizes_tmpfs() else []
    args += ["--perms", "1777", *size, "--tmpfs", "/dev/shm", "--perms", "1777", *size, "--tmpfs", "/tmp"]
    made.add("/tmp")
    for path in _outermost({os.path.realpath(p) for p in readable if os.path.exists(p)}):
        if not _under(path, _system_roots()):
            args += _parents(path, made) + ["--ro-bind", path, path]
    return args + ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--"]


def _parents(path: str, made: set[str]) -> list[str]:
    """Create the missing folders above `path` as 0755: bwrap would make them 0700, closed to the sandbox uid."""
    args = []
    for parent in map(str, reversed(Path(path).parents)):
        if parent not in made:
            args += ["--perms", "0755", "--dir", parent]
            made.add(parent)
    return args


def _system_bind(path: str) -> list[str]:
    """A system symlink stays a symlink when it points inside the system paths (/bin -> usr/bin); else bound."""
    if os.path.islink(path) and _under(os.path.realpath(path), _system_roots()):
        return ["--symlink", os.readlink(path), path]
    return ["--ro-bind", path, path]


@functools.lru_cache(maxsize=1)
def _system_roots() -> tuple[str, ...]:
    return tuple(sorted({os.path.realpath(p) for p in SYSTEM_PATHS if os.path.exists(p)}))


def _under(path: str, roots: tuple[str, ...] | set[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _outermost(paths: set[str]) -> list[str]:
    """The paths not inside another one of them, sorted (binding a folder already binds what it holds)."""
    return sorted(p for p in paths if not _under(p, paths - {p}))


def sandbox_uid(worker: int, base: int = BWRAP_UID_BASE) -> int | None:
    """A uid of its own per worker when we are root (so programs can neither write nor signal ours)."""
    return base + worker if os.geteuid() == 0 else None


def claim_uid() -> tuple[int, socket.socket]:
    """A uid for process isolation that no account and no other live sandbox on this machine holds, and the
    claim that holds it: an abstract socket named after it, which the kernel drops when this process ends.

    Claimed, not counted from a base: the fork server's cleanup kills every process of the uid machine-wide,
    so two runs sharing one would kill each other's programs."""
    for uid in range(PROCESS_UID_BASE, PROCESS_UID_BASE + PROCESS_UIDS):
        if _has_account(uid):
            continue
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0spark-eval-sandbox-uid-{uid}")
            return uid, claim
        except OSError as e:
            claim.close()
            if e.errno != errno.EADDRINUSE:
                raise GradingEnvError(f"cannot claim a sandbox uid ({e}); set execution.isolation=bwrap") from e
    raise GradingEnvError(f"every sandbox uid from {PROCESS_UID_BASE} to {PROCESS_UID_BASE + PROCESS_UIDS - 1} is "
                          "held by another run's sandbox; wait for some to finish or lower execution.workers")


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


_REACH = ("import json, os, sys, sysconfig\n"
          "paths = {sysconfig.get_path(k) for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')}\n"
          "paths |= set(json.loads(sys.argv[1]))\n"
          "print(json.dumps(sorted(p for p in paths if not os.access(p, os.R_OK | (os.X_OK * os.path.isdir(p))))))")


def check_reachable(python: str, uid: int, readable: list[str], env: dict[str, str]) -> None:
    """Stop unless `uid` can run the grading interpreter and read its libraries and `readable`: a program
    that cannot import what the server has not preloaded would fail for the sandbox's sake, silently."""
    try:
        probe = subprocess.run([python, "-c", _REACH, json.dumps(readable)], user=uid, group=uid, extra_groups=[],
                               env=env, cwd="/", capture_output=True, text=True, timeout=120)
        closed = json.loads(probe.stdout) if probe.returncode == 0 else [os.path.realpath(python)]
    except (OSError, subprocess.SubprocessError, ValueError):
        closed = [os.path.realpath(python)]
    if closed:
        raise GradingEnvError(
            f"process isolation runs programs as uid {uid}, which cannot use {closed[0]}; open the folders above it "
            "to other users (chmod o+rx), use a grading interpreter outside a private folder, or run where "
            "bubblewrap works")


def make_undumpable() -> bool:
    """Make this process non-dumpable, so that its /proc/<pid>/environ (the keys), mem and fd are closed to a
    program running as the same user (process isolation without root). Linux only; False where it is not done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exposure(isolation: str, uid: int | None, disk_mb: int, undumpable: bool) -> list[str]:
    """What programs can still reach, in words for the manifest and the warning; [] under a capped bubblewrap."""
    if isolation == "bwrap":
        return [] if bwrap_sizes_tmpfs() else [f"a /tmp without a size cap (this bwrap has no --size; each file is "
                                               f"capped at {disk_mb} MB)"]
    reach = ["the network, this machine's own services included",
             f"world-writable folders such as /tmp, {disk_mb} MB per file and no cap on their total"]
    if uid is not None:
        checkout = "open" if open_to_others(CHECKOUT) else "closed"
        return [*reach, f"every file other users may read (the checkout, with the benchmark's reference solutions "
                        f"and any results inside it, is {checkout} to them here)", "the machine's process list"]
    harness = "except the harness's own (non-dumpable)" if undumpable else "the harness's own included"
    return [*reach, "every file of the harness's user, to read and write: the benchmark's reference solutions, "
                    "results/ and the response cache among them",
            f"that user's other processes, to signal them and read their environments, {harness}"]


def open_to_others(path: Path) -> bool:
    """Whether a user who is neither owner nor in the group may list `path`: search on every folder above it."""
    try:
        modes = [p.stat().st_mode for p in (path, *path.parents)]
    except OSError:
        return False
    return all(mode & stat.S_IXOTH for mode in modes) and bool(modes[0] & stat.S_IROTH)
