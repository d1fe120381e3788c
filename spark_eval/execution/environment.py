"""The grading environment: its interpreter, its frozen packages, a scrubbed process environment, bwrap."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from spark_eval.errors import UserError


class GradingEnvError(UserError, RuntimeError):
    """The grading interpreter or the requested isolation is unusable; the message names the fix."""


# Only these variables pass from the harness into the sandbox: no keys, tokens or credentials.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
SANDBOX_VARS = {
    "MPLBACKEND": "Agg",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "-1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_OFFLINE": "1",
}


@dataclass(frozen=True)
class GradingEnvironment:
    """What the grading interpreter is: recorded in every run's manifest."""

    python: str
    version: str
    prefix: str
    base_prefix: str
    freeze: tuple[str, ...]

    @property
    def freeze_hash(self) -> str:
        return hashlib.sha256("\n".join(self.freeze).encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "python": self.python,
            "version": self.version,
            "freeze": list(self.freeze),
            "freeze_hash": self.freeze_hash,
        }


_PROBE = "import json, sys; print(json.dumps([sys.version.split()[0], sys.prefix, sys.base_prefix]))"


@functools.lru_cache(maxsize=8)
def probe_environment(python: str) -> GradingEnvironment:
    """Ask the grading interpreter who it is and what it has installed (`pip freeze`)."""
    # Resolve the folders (not the venv's own symlinked interpreter): the sandbox may not see symlinks.
    python = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(python))), os.path.basename(python))
    if not Path(python).exists():
        raise GradingEnvError(
            f"grading interpreter not found: {python}; run `make setup` or set execution.python=<path>"
        )
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
        freeze = subprocess.run(
            [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise GradingEnvError(f"grading interpreter {python} does not run ({e}); rebuild it with `make setup`")
    version, prefix, base_prefix = json.loads(out.stdout)
    lines = tuple(sorted(line for line in freeze.stdout.splitlines() if line.strip()))
    return GradingEnvironment(python, version, prefix, base_prefix, lines)


def sandbox_env(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment a sandboxed process sees: an allowlist, never the harness's secrets."""
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(SANDBOX_VARS)
    env.update(extra)
    return env


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """True when bubblewrap is installed and can create the namespaces the sandbox needs."""
    if not shutil.which("bwrap"):
        return False
    try:
        probe = subprocess.run(
            [*bwrap_prefix([]), "true"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def resolve_isolation(requested: str) -> str:
    """`bwrap` or `process`, from `execution.isolation` (auto | bwrap | process)."""
    if requested not in ("auto", "bwrap", "process"):
        raise GradingEnvError(f"execution.isolation={requested!r} is unknown; use auto, bwrap or process")
    if requested == "process":
        return "process"
    if bwrap_works():
        return "bwrap"
    if requested == "bwrap":
        raise GradingEnvError(
            "execution.isolation=bwrap but bubblewrap does not work here; install it (apt-get install bubblewrap)"
            " or set execution.isolation=auto"
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


def bwrap_prefix(readable: list[str]) -> list[str]:
    """bwrap arguments: an empty root with only what programs need, read-only; no network, own PID namespace.

    Nothing is visible unless bound here: the system paths above, and `readable` (the interpreter's prefix
    and base prefix, the fork server, the seaborn data), each bound by itself, so a venv inside the
    repository shows the venv and not the repository, its data, the results or the response cache.
    /tmp and /dev/shm are private tmpfs. No --die-with-parent: it ties the sandbox to the harness
    *thread* that started it, and worker threads come and go; a server whose harness is gone sees
    end-of-input and exits by itself.
    """
    made = {"/"}
    args = ["bwrap"]
    for path in SYSTEM_PATHS + SYSTEM_FILES:
        if os.path.exists(path):  # a dangling link (/etc/resolv.conf without its resolver) would stop bwrap
            args += _parents(path, made) + _system_bind(path)
    args += ["--dev", "/dev", "--proc", "/proc"]
    args += ["--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp"]
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


def sandbox_uid(worker: int, base: int = 61000) -> int | None:
    """A uid of its own per worker when we are root (so programs can neither write nor signal ours)."""
    return base + worker if os.geteuid() == 0 else None
