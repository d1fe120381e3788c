"""Isolation never opens quietly: what `auto` fell back to and what programs can reach is logged and described,
process isolation as root runs programs under a claimed uid of their own (or refuses), the harness cannot be read
by a program of its own user, the disk cap holds, and the report flags runs graded without bubblewrap."""
import ctypes
import json
import logging
import os
import socket
import stat
import subprocess

import pytest

from spark_eval.config import PROJECT_ROOT, ReportConfig
from spark_eval.execution import ProcessSandbox, isolation, sandbox as sandbox_module
from spark_eval.execution.environment import GradingEnvError
from spark_eval.execution.isolation import PROCESS_UID_BASE, open_to_others
from spark_eval.report import write_report
from spark_eval.stats import load_runs
from tests.conftest import DS1000
from tests.fakes.runs import record, write_run
from tests.unit.test_sandbox import ISOLATIONS, isolated, isolated_sandbox, run, stand_ins  # noqa: F401

PR_GET_DUMPABLE = 3
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="programs get a uid of their own only when the harness runs as root")


def test_auto_without_bubblewrap_says_loudly_what_it_fell_back_to(monkeypatch, caplog, harness_python):
    """A machine where bubblewrap cannot make its namespaces: `auto` becomes process isolation, with a warning
    and a manifest description that name the reason and what programs can reach."""
    reason = "bwrap cannot make its namespaces: No permissions to create new namespace"
    monkeypatch.setattr(isolation, "bwrap_problem", lambda: reason)
    monkeypatch.setattr(sandbox_module, "bwrap_problem", lambda: reason)
    with caplog.at_level(logging.WARNING, logger="spark_eval.execution.sandbox"):
        with isolated_sandbox("auto", stand_ins(harness_python), workers=1) as sandbox:
            described = sandbox.describe()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"execution.isolation=auto fell back to process isolation ({reason})" in warning
    assert "the network" in warning and "every file" in warning
    assert (described["isolation"], described["requested"], described["fallback"]) == ("process", "auto", reason)
    assert any(e.startswith("the network") for e in described["exposes"])
    if ROOT:
        assert described["uids"][0] >= PROCESS_UID_BASE and f"as uid {described['uids'][0]}" in warning
    else:
        assert described["uids"] == [None] and "as the harness's own user" in warning


def test_bubblewrap_leaves_nothing_open_to_say(harness_python):
    with isolated_sandbox("bwrap", [harness_python], workers=1) as sandbox:
        described = sandbox.describe()
    assert (described["exposes"], described["fallback"], described["disk_mb"]) == ([], None, 1024)


def test_what_a_program_reaches_is_what_the_sandbox_says(isolated):
    """Under bubblewrap neither the benchmark's reference solutions nor the network; under process isolation both,
    as far as the description says (the data file as far as its modes let other users read it)."""
    described = " ".join(isolated.describe()["exposes"])
    network = "the network" in described
    data = "is open to them" in described and bool(DS1000.stat().st_mode & stat.S_IROTH)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    program = f"""
    import socket
    try:
        open({str(DS1000)!r}, 'rb').read(1)
        data = True
    except OSError:
        data = False
    try:
        socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2).close()
        network = True
    except OSError:
        network = False
    assert (data, network) == ({data}, {network}), (data, network)
    """
    try:
        result = run(isolated, program)
    finally:
        listener.close()
    assert result.status == "passed", result.stderr_tail
    assert (data, network) == ((False, False) if isolated.isolation == "bwrap" else (data, True))


def test_a_sandbox_makes_the_harness_non_dumpable(isolated):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


HARNESS_STAND_IN = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from spark_eval.execution.isolation import make_undumpable
if sys.argv[2] == "undumpable":
    assert make_undumpable()
reader = ("import sys\\ntry:\\n    print(open(sys.argv[1], 'rb').read().count(b'sk-planted'))\\n"
          "except OSError as e:\\n    print(type(e).__name__)")
print(subprocess.run([sys.executable, "-c", reader, f"/proc/{os.getpid()}/environ"], capture_output=True,
                     text=True).stdout.strip())
"""


@pytest.mark.parametrize("state, read", [("undumpable", "PermissionError"), ("dumpable", "1")])
def test_a_program_of_the_harness_user_cannot_read_its_environment(state, read, harness_python):
    """A harness with a key in its environment and a program of the same user reading /proc/<harness>/environ:
    refused once the harness is non-dumpable, read otherwise (which shows the test can fail). As root, both run as
    `nobody`, since root may read any process."""
    python, user = harness_python, None
    if ROOT:
        python, user = stand_ins(harness_python)[-1], 65534
        if python == harness_python or not open_to_others(PROJECT_ROOT):
            pytest.skip("needs a python3 and a checkout that `nobody` may use")
    env = {"PATH": os.defpath, "PLANTED_API_KEY": "sk-planted"}
    done = subprocess.run([python, "-c", HARNESS_STAND_IN, str(PROJECT_ROOT), state], capture_output=True, text=True,
                          env=env, cwd="/", user=user, group=user, extra_groups=[] if user else None, timeout=60)
    assert done.stdout.strip() == read, done.stderr


@needs_root
def test_process_isolation_refuses_an_interpreter_its_uid_cannot_use(tmp_path, harness_python):
    """Programs that could not import what the server did not preload would fail for the sandbox's sake: refused,
    with the fix, and never run as root instead."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python").symlink_to(os.path.realpath(harness_python))
    with pytest.raises(GradingEnvError, match=r"runs programs as uid \d+, which cannot use .*; open the folders"):
        ProcessSandbox(str(private / "python"), isolation="process", workers=1)


@needs_root
def test_each_process_sandbox_claims_uids_no_other_holds(harness_python):
    """Its cleanup kills every process of its uid machine-wide, so two runs must never share one."""
    with isolated_sandbox("process", stand_ins(harness_python), workers=2) as first:
        with isolated_sandbox("process", stand_ins(harness_python), workers=1) as second:
            uids = first.describe()["uids"] + second.describe()["uids"]
    assert len(set(uids)) == 3 and min(uids) >= PROCESS_UID_BASE
    with isolated_sandbox("process", stand_ins(harness_python), workers=1) as again:  # released on close
        assert again.describe()["uids"][0] in uids


@pytest.mark.parametrize("isolation_kind", ISOLATIONS)
def test_a_program_writing_past_the_disk_cap_fails_cleanly(isolation_kind, harness_python):
    """`disk_mb` caps each file in both isolations (EFBIG, an OSError); under bubblewrap also /tmp, where the
    working folder lies (ENOSPC). Process isolation does not cap the total, and says so."""
    with isolated_sandbox(isolation_kind, stand_ins(harness_python), workers=1, timeout_s=20, disk_mb=8) as sandbox:
        one_file = run(sandbox, "open('big', 'wb').write(b'x' * 9 * 2**20)\n")
        parts = run(sandbox, "for i in range(3):\n    open(f'part{i}', 'wb').write(b'x' * 4 * 2**20)\n")
        after = run(sandbox, "open('small', 'wb').write(b'x' * 2**20)\n")
        exposes = " ".join(sandbox.describe()["exposes"])
    assert (one_file.status, one_file.error_type) == ("failed", "OSError")
    if isolation_kind == "bwrap":  # the full /tmp may leave no room for the traceback; the verdict stands
        assert (parts.status, parts.error_type) == ("failed", "OSError"), parts.stderr_tail
    else:
        assert "File too large" in one_file.stderr_tail
        assert parts.status == "passed" and "8 MB per file and no cap on their total" in exposes
    assert after.status == "passed", after.stderr_tail  # the space comes back with the working folder


def test_the_report_shows_each_runs_isolation_and_flags_those_without_bubblewrap(tmp_path):
    executions = {"a": {"isolation": "bwrap", "uids": [61000]},
                  "b": {"isolation": "process", "uids": [62000], "exposes": ["the network"]},
                  "c": {"isolation": "process", "uids": [None]}, "d": None}
    for model, execution in executions.items():
        path = write_run(tmp_path / "runs" / f"{model}__none__s0", [record(0, model, "none", scores=[4])])
        if execution is not None:
            manifest = json.loads((path / "manifest.json").read_text())
            (path / "manifest.json").write_text(json.dumps({**manifest, "execution": execution}))
    write_report(load_runs(str(tmp_path / "runs" / "*")), ReportConfig(), tmp_path / "out", {})
    html = (tmp_path / "out" / "report.html").read_text()
    runs_table = html.split("<h2>Runs</h2>")[1].split("</table>")[0]
    cells = {model: runs_table.split(f"<td class='l'>{model}__none__s0</td>")[1].split("</tr>")[0]
             for model in executions}
    assert cells["a"].endswith("<td class='l'>bwrap</td>")
    assert cells["b"].endswith("<td class='l'>process as uid 62000 (not bwrap)</td>")
    assert cells["c"].endswith("<td class='l'>process as the harness&#x27;s user (not bwrap)</td>")
    assert cells["d"].endswith("<td class='l'>-</td>")
    note = html.split("</table>", 1)[1].split("<h2>")[0]
    assert "Graded without bubblewrap: b__none__s0, c__none__s0." in note and "a__none__s0" not in note


def test_the_bwrap_arguments_cap_both_tmpfs_where_bwrap_takes_a_size(monkeypatch):
    monkeypatch.setattr(isolation, "bwrap_sizes_tmpfs", lambda: True)
    args = isolation.bwrap_prefix([], disk_mb=8)
    size = ["--size", str(8 * 2**20)]
    assert args[args.index("/dev/shm") - 3:args.index("/dev/shm") + 1] == [*size, "--tmpfs", "/dev/shm"]
    assert args[args.index("/tmp") - 3:args.index("/tmp") + 1] == [*size, "--tmpfs", "/tmp"]
    monkeypatch.setattr(isolation, "bwrap_sizes_tmpfs", lambda: False)
    assert "--size" not in isolation.bwrap_prefix([], disk_mb=8)
