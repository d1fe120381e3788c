"""The grading environment: its interpreter, its frozen packages, a scrubbed process environment."""
from __future__ import annotations

import functools
import hashlib
import json
import os
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
            "python": shown_path(self.python),
            "version": self.version,
            "freeze": list(self.freeze),
            "freeze_hash": self.freeze_hash,
        }


def shown_path(path: str) -> str:
    """`path` as a manifest shows it: from the project's root when it lies inside the project (the same from any
    clone, and no machine's folder in a committed run), else as it is."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


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
