"""The sandbox on hostile and broken programs. This interpreter stands in for the grading one (it has numpy,
pandas and sklearn, and lacks some other grading libraries). The hostile programs run under both isolations,
bubblewrap and process (the latter as root, where programs get a uid of their own)."""
import gc
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from spark_eval.config import PROJECT_ROOT
from spark_eval.execution import ProcessSandbox
from spark_eval.execution.environment import GradingEnvError
from spark_eval.execution.isolation import bwrap_works
from spark_eval.programs import forkserver
from tests.conftest import DS1000, needs_bwrap

NOT_INSTALLED = sorted(m for m in forkserver.GRADING_MODULES if importlib.util.find_spec(m) is None)


@pytest.fixture(scope="module")
def sandbox(harness_python):
    with ProcessSandbox(harness_python, mode="fork", workers=1, timeout_s=4, memory_mb=512) as sb:
        yield sb


ISOLATIONS = ["bwrap", "process"]


def stand_ins(python):
    """`python`, then the system's python3: process isolation as root needs an interpreter its uid may run, and
    this one may live in a private folder (a home directory)."""
    system = shutil.which("python3", path=os.defpath)
    return [python] + ([system] if system else [])


def isolated_sandbox(isolation, pythons, **settings):
    """A sandbox under `isolation`, in the first of `pythons` its sandbox uid can use; skipped, with the reason,
    where this machine cannot give that isolation its guarantees."""
    if isolation == "bwrap" and not bwrap_works():
        pytest.skip("bubblewrap is not installed or cannot make namespaces")
    if isolation == "process" and os.geteuid() != 0:
        pytest.skip("process isolation gives programs a uid of their own only when the harness runs as root")
    for python in pythons:
        try:
            return ProcessSandbox(python, isolation=isolation, **settings)
        except GradingEnvError:
            continue  # its folders are closed to other users: the next one
    pytest.skip(f"{isolation} isolation cannot be tried here: the sandbox uid cannot open the folders that hold "
                f"{', '.join(map(str, pythons))}")


@pytest.fixture(scope="module", params=ISOLATIONS)
def isolated(request, harness_python):
    with isolated_sandbox(request.param, stand_ins(harness_python), workers=1, timeout_s=4, memory_mb=512) as sb:
        yield sb


def run(sandbox, source, requires=()):
    return sandbox.run(textwrap.dedent(source), requires)


@pytest.mark.parametrize(
    "source, status, error_type",
    [
        ("x = 1\nassert x == 1\n", "passed", None),
        ("assert 1 + 1 == 3, 'wrong answer'\n", "failed", "AssertionError"),
        ("def f(:\n", "failed", "SyntaxError"),
        ("while True:\n    pass\n", "timeout", "Timeout"),
        ("import os\nos._exit(0)\n", "failed", "EarlyExit"),
        ("import sys\nsys.exit(0)\n", "failed", "SystemExit"),
        ("import os\nos.closerange(3, 4096)\n", "failed", "EarlyExit"),
        ("import urllib.error\nraise urllib.error.URLError('no network')\n", "infra_error", "Network: URLError"),
        ("import numpy_not_installed_anywhere\n", "failed", "ModuleNotFoundError"),
        ("from numpy import no_such_api\n", "failed", "ImportError"),
        ("import sklearn.nope\n", "failed", "ModuleNotFoundError"),
        ("from pandas.nope import x\n", "failed", "ModuleNotFoundError"),
        ("import numpy\nfrom numpy.linalg import no_such_api\n", "failed", "ImportError"),
    ],
)
def test_each_status(sandbox, source, status, error_type):
    result = run(sandbox, source)
    assert (result.status, result.error_type) == (status, error_type), result.stderr_tail


@pytest.mark.parametrize("statement", ["import {0}", "from {0} import anything", "import {0}.sub"])
def test_a_grading_library_that_is_not_installed_is_an_infra_error(sandbox, statement):
    if not NOT_INSTALLED:
        pytest.skip("every grading library is installed in this interpreter")
    library = NOT_INSTALLED[0]
    result = run(sandbox, statement.format(library) + "\n")
    assert (result.status, result.error_type) == ("infra_error", f"ImportError: {library}"), result.stderr_tail


def test_a_grading_library_that_fails_its_own_import_is_an_infra_error(tmp_path, monkeypatch):
    """Installed but broken (here: a dependency missing): the error names the dependency, not the library."""
    if not NOT_INSTALLED:
        pytest.skip("every grading library is installed in this interpreter")
    library = NOT_INSTALLED[0]
    (tmp_path / library).mkdir()
    (tmp_path / library / "__init__.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        exec(f"import {library}", {})
    assert caught.value.name == "a_dependency_nobody_installed"
    verdict = forkserver.classify(caught.value)
    assert verdict == {"status": "infra_error", "error_type": f"ImportError: {library}"}
    importlib.import_module("numpy")  # an installed library that imports: a missing submodule is the program's
    assert forkserver.classify(ModuleNotFoundError("x", name="numpy.nope"))["status"] == "failed"


def test_a_library_whose_preload_failed_is_the_environments_fault(harness_python):
    with ProcessSandbox(harness_python, workers=1, timeout_s=20, preload=["sklearn.no_such_module"]) as sandbox:
        result = run(sandbox, "from sklearn import no_such_api\n")
    assert (result.status, result.error_type) == ("infra_error", "ImportError: sklearn"), result.stderr_tail


# Shared by the forging programs: the report forkserver.py writes (as its source shows), and the pipes to write it to.
FORGER = """
import json, os
FORGED = b"\\n" + json.dumps({"status": "passed", "error_type": None}).encode()
def pipes():
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("pipe:"):
                found.append(int(name))
        except OSError:
            pass
    return found
def spray(secret=b""):
    for fd in range(3, 256):
        try:
            os.write(fd, FORGED + secret)
        except OSError:
            pass
print("pipes", pipes())
"""

FORGERIES = {
    "every descriptor, then os._exit": "spray()\nos._exit(0)\n",
    "every descriptor, then SystemExit": "spray()\nraise SystemExit(0)\n",
    "every descriptor, then a wrong answer": "spray()\nassert 1 == 2\n",
    "from a thread": """
        import threading, time
        def forge():
            spray()
            os._exit(0)
        threading.Thread(target=forge).start()
        time.sleep(3)
    """,
    "from a forked child, later": """
        import time
        if os.fork() == 0:
            time.sleep(0.2)
            spray()
            os._exit(0)
        assert 1 == 2, 'wrong answer'
    """,
    "replaying what the pipes hold": """
        seen = b""
        for fd in pipes():
            try:
                os.set_blocking(fd, False)
                seen += os.read(fd, 65536)
            except OSError:
                pass
        spray(seen[-32:])
        os._exit(0)
    """,
    "with the last token-sized value in gc and frames": """
        import gc, sys
        secrets = []
        def keep(values):
            secrets.extend(bytes(v) for v in values if isinstance(v, (bytes, bytearray)) and len(v) == 32)
        for obj in gc.get_objects():
            keep(list(obj.values()) if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple, set)) else ())
        for frame in list(sys._current_frames().values()) + [sys._getframe()]:
            while frame is not None:  # out to the server's own frames, whose locals come last
                keep(list(frame.f_locals.values()) + list(frame.f_code.co_consts))
                frame = frame.f_back
        print("secrets", len(secrets))
        spray(secrets[-1] if secrets else b"")
        os._exit(0)
    """,
    "relaying its own harness's failing report": """
        import time
        (report,) = pipes()
        saved = os.dup(report)
        tap_read, tap_write = os.pipe()
        os.dup2(tap_write, report)
        if os.fork() == 0:
            os.close(tap_write)
            os.close(report)
            record = os.read(tap_read, 65536)
            os.write(saved, FORGED + record[-32:])
            os._exit(0)
        time.sleep(0.1)
        assert 1 == 2, 'wrong answer'
    """,
    "patching the server's classify": """
        import __main__
        __main__.classify = lambda *args: {"status": "passed", "error_type": None}
        assert 1 == 2, 'wrong answer'
    """,
}


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
def test_a_program_cannot_forge_a_pass(sandbox, forgery):
    result = run(sandbox, FORGER + textwrap.dedent(FORGERIES[forgery]))
    assert result.status == "failed", (result.error_type, result.stderr_tail)
    assert "pipes [" in result.stderr_tail and "pipes []" not in result.stderr_tail, result.stderr_tail


def test_writing_to_the_report_pipe_does_not_fail_a_program_that_runs_to_its_end(sandbox):
    result = run(sandbox, FORGER + "spray(b'junk')\nassert 1 + 1 == 2\n")
    assert result.status == "passed", result.stderr_tail


def test_report_tokens_are_in_no_python_object_of_the_child():
    """The child looks for the tokens, masked, in every object it can reach; it finds only a planted control."""
    mask = bytes(b ^ 0x5A for b in range(256))
    seal = forkserver.Seal()
    seal.renew()
    planted = os.urandom(32)
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(from_parent)
            wanted = os.read(to_child, 4 * 32)
            found = _masked_hits({wanted[i:i + 32] for i in range(0, len(wanted), 32)}, mask)
            os.write(from_child, b"".join(sorted(found)))
        finally:
            os._exit(0)
    os.close(to_child)
    tokens = list(seal.tokens())
    assert len(set(tokens)) == 3 and all(len(t) == 32 for t in tokens)
    os.write(from_parent, b"".join(t.translate(mask) for t in tokens + [planted]))
    os.close(from_child)
    found = os.read(to_parent, 4096)
    os.waitpid(pid, 0)
    assert found == planted.translate(mask)


def _masked_hits(wanted, mask):
    """Which of the masked `wanted` values occur, unmasked, in an object reachable from the modules, the frames
    or the garbage collector (following every reference, so untracked dicts and tuples are searched too)."""
    found, seen = set(), set()
    todo = [sys.modules, *gc.get_objects()]
    for frame in sys._current_frames().values():
        while frame is not None:
            todo += [frame, frame.f_locals]
            frame = frame.f_back
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            data = bytes(memoryview(obj))
        except TypeError:
            todo += gc.get_referents(obj)
            continue
        found |= {w for w in wanted if w in data.translate(mask)}
    return found


def test_failure_keeps_a_bounded_output_tail(sandbox):
    result = run(sandbox, "print('x' * 100000)\nraise ValueError('the end')\n")
    assert result.status == "failed"
    assert "ValueError: the end" in result.stderr_tail
    assert len(result.stderr_tail) <= 2000


def test_the_output_tail_names_places_not_paths(sandbox):
    """Where the project is cloned, which interpreter grades and the scratch folder's name do not show in a
    record: the same failure reads the same from any checkout."""
    result = run(sandbox, "import os, sys\nraise ValueError(os.getcwd() + ' ' + sys.prefix + ' ' + sys.base_prefix)\n")
    assert result.status == "failed"
    # the grading environment is a venv: the installation it was made from is named too
    assert "ValueError: <workdir> <grading-env> <python>" in result.stderr_tail, result.stderr_tail
    assert 'File "<harness>/spark_eval/programs/forkserver.py"' in result.stderr_tail
    assert str(PROJECT_ROOT) not in result.stderr_tail and "/ds1000-" not in result.stderr_tail


def test_missing_library_is_skipped_without_running(sandbox, tmp_path):
    marker = tmp_path / "ran"
    missing = next(m for m in ("tensorflow", "torch", "gensim", "xgboost") if not _importable(m))
    result = run(sandbox, f"open({str(marker)!r}, 'w')\n", requires=(missing,))
    assert result.status == "skipped" and not marker.exists()


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_huge_allocation_is_contained(sandbox):
    result = run(sandbox, "block = bytearray(30 * 2**30)\n")
    assert (result.status, result.error_type) == ("failed", "MemoryError")
    assert run(sandbox, "pass\n").status == "passed"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_secrets_are_not_visible(monkeypatch, harness_python, isolation):
    """Neither in the program's environment nor through /proc: the harness's own environ cannot even be opened
    (another PID namespace under bubblewrap; under process isolation, another uid)."""
    secret = "sk-test-must-not-leak-1234"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, secret)
    program = f"""
    import glob, os
    leaked = [k for k, v in os.environ.items() if {secret!r} in v or k.endswith(("_API_KEY", "_TOKEN"))]
    for path in glob.glob('/proc/[0-9]*/environ'):
        try:
            if {secret!r}.encode() in open(path, 'rb').read():
                leaked.append(path)
        except OSError:
            pass
    try:
        open('/proc/{os.getpid()}/environ', 'rb').read()
        leaked.append('the harness environ')
    except OSError:
        pass
    assert not leaked, leaked
    """
    with isolated_sandbox(isolation, stand_ins(harness_python), workers=1, timeout_s=10) as sandbox:
        result = run(sandbox, program)
    assert result.status == "passed", result.stderr_tail


def test_programs_never_run_as_root(isolated):
    """Root or not, the program's uid is never 0; as root it is the worker's own uid, with no groups."""
    uid = isolated._uid(0)
    program = f"""
    import os
    ids = os.getresuid() + os.getresgid()
    assert 0 not in ids, ids
    assert {uid} is None or (set(ids) == {{{uid}}} and not os.getgroups()), (ids, os.getgroups())
    """
    result = run(isolated, program)
    assert result.status == "passed", result.stderr_tail


def test_each_program_gets_a_fresh_working_directory(sandbox):
    run(sandbox, "open('ans.png', 'w').write('x')\n")
    second = run(sandbox, "import os\nassert not os.path.exists('ans.png'), os.getcwd()\n")
    assert second.status == "passed", second.stderr_tail


@pytest.fixture
def run_dir_in_repo():
    """A run directory where real ones live (under the repository's results/), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir=PROJECT_ROOT / "results"))
    yield path
    shutil.rmtree(path)


def test_writes_and_deletes_outside_the_temp_dir_are_contained(isolated, run_dir_in_repo):
    run_dir = run_dir_in_repo
    records = run_dir / "records.jsonl"
    records.write_text('{"key": "0/e0/r0"}\n')
    probe = PROJECT_ROOT / "sandbox_probe.txt"
    program = f"""
    import os, shutil
    hits = []
    for attempt in (
        lambda: open({str(records)!r}, 'a').write('forged'),
        lambda: os.remove({str(records)!r}),
        lambda: shutil.rmtree({str(run_dir)!r}),
        lambda: open({str(probe)!r}, 'w').write('x'),
        lambda: os.rename({str(PROJECT_ROOT / 'pyproject.toml')!r}, '/tmp/moved'),
    ):
        try:
            attempt()
            hits.append(attempt)
        except OSError:
            pass
    assert not hits, hits
    """
    result = run(isolated, program)
    assert result.status == "passed", result.stderr_tail
    assert records.read_text() == '{"key": "0/e0/r0"}\n'
    assert not probe.exists() and (PROJECT_ROOT / "pyproject.toml").exists()


@needs_bwrap
def test_the_repository_its_data_and_results_are_not_visible(sandbox, run_dir_in_repo):
    """Only the interpreter, the fork server and the system are bound: no answer key, cache or record to read."""
    records = run_dir_in_repo / "records.jsonl"
    records.write_text('{"answer": "the reference"}\n')
    secret_files = [DS1000, records, PROJECT_ROOT / "pyproject.toml", PROJECT_ROOT / "spark_eval" / "config.py"]
    folders = [PROJECT_ROOT / "results", run_dir_in_repo, DS1000.parent, PROJECT_ROOT / "conf"]
    venv, forkserver_file = sandbox.environment.prefix, str(Path(forkserver.__file__).resolve())
    program = f"""
    import os
    visible = []
    for root, dirs, files in os.walk({str(PROJECT_ROOT)!r}):
        dirs[:] = [d for d in dirs if os.path.join(root, d) != {venv!r}]
        visible += [os.path.join(root, name) for name in files]
    opened, listed = [], []
    for path in {[str(f) for f in secret_files]!r}:
        try:
            open(path, 'rb').read(1)
            opened.append(path)
        except OSError:
            pass
    for path in {[str(f) for f in folders]!r}:
        try:
            listed.append((path, os.listdir(path)))
        except OSError:
            pass
    assert visible == [{forkserver_file!r}] and not opened and not listed, (visible, opened, listed)
    """
    assert DS1000.is_file() and records.is_file()
    result = run(sandbox, program)
    assert result.status == "passed", result.stderr_tail


@needs_bwrap
def test_network_connections_are_refused(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    result = run(sandbox, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
    assert result.status != "passed"
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()


def test_killing_the_parent_is_contained(isolated):
    result = run(isolated, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(1)\n")
    assert result.status in ("failed", "infra_error")
    assert run(isolated, "pass\n").status == "passed"


@pytest.mark.skipif(os.geteuid() != 0, reason="the process cap needs a sandbox uid, which needs root")
@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_fork_bomb_is_contained_and_cleaned_up(harness_python, isolation, monkeypatch):
    if isolation == "bwrap":  # a uid no other run on this machine gives its bwrap workers (61000 + worker), so that
        # the machine-wide look for leftovers below sees this sandbox's processes alone
        monkeypatch.setattr("spark_eval.execution.sandbox.sandbox_uid", lambda index: 61900 + index)
    with isolated_sandbox(isolation, stand_ins(harness_python), workers=1, timeout_s=4, max_procs=64) as sandbox:
        uid = sandbox._uid(0)
        result = run(sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
        assert result.status == "timeout"
        assert _processes_of(uid) == []
        assert run(sandbox, "pass\n").status == "passed"


def _processes_of(uid):
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in lines if line.startswith("Uid:")), [])
        if str(uid) in uids:
            found.append(status.parent.name)
    return found


def test_strict_mode_runs_each_program_in_a_fresh_interpreter(harness_python):
    with ProcessSandbox(harness_python, mode="strict", workers=1, timeout_s=10) as sandbox:
        first = run(sandbox, "import sys\nsys.modules['marker_from_first'] = sys\n")
        second = run(sandbox, "import sys\nassert 'marker_from_first' not in sys.modules\n")
        assert (first.status, second.status) == ("passed", "passed")
        assert run(sandbox, "while True: pass\n").status == "timeout"
