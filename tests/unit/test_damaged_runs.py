"""Damaged run files cost one line naming the file, its line and the fix: stage=report leaves a damaged run out by
name and reports the others (one line when none is left), stage=compare and a resume stop on it without changing a
byte, stage=index skips it and keeps its earlier rows; a torn last line, even one cut inside a character or whose
remains parse as something other than a record, is skipped by readers and cut off on resume."""
from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys

import pytest

from spark_eval.config import PROJECT_ROOT, compose_config
from spark_eval.errors import UserError
from spark_eval.pipeline import run
from spark_eval.pipeline.rundir import RunDirectory
from spark_eval.records import RunDirectoryError, read_records
from spark_eval.records.index import update_index
from spark_eval.stats import ResultsError, load_runs
from spark_eval.stats.versus import compare_stage
from tests.fakes.runs import record, write_run

RUNS = ("m__none__s0", "m__spark__s0", "other__none__s0")
DAMAGED = "m__spark__s0"


def _line(row):
    return json.dumps(row, ensure_ascii=False).encode() + b"\n"


def _big(row):
    return {**row, "completion": {**row["completion"], "input_tokens": 2**64}}


RECORD_DAMAGE = {  # kind: the second line of records.jsonl, what the error says of it
    "array": (b"[1, 2]\n", "a JSON array, not an object"),
    "string": (b'"x"\n', "a JSON string, not an object"),
    "number": (b"3\n", "a JSON number, not an object"),
    "invalid UTF-8": (_line(record(1, "m", "spark")).replace(b"result = 1", b"result = \xff"), "not UTF-8 at byte"),
    "string problem id": (_line({**record(1, "m", "spark"), "problem_id": "12"}),
                          "Record.problem_id is '12', not a 64-bit integer"),
    "integer past 64 bits": (_line(_big(record(1, "m", "spark"))),
                             "Completion.input_tokens is 18446744073709551616, an integer past 64 bits"),
}
MANIFEST_DAMAGE = {  # kind: manifest.json's bytes, what the error says of them
    "truncated manifest": (b'{"status": "fin', "is damaged (not valid JSON at line 1 column 12"),
    "manifest holding a list": (b'[{"status": "finished"}]\n', "holds a JSON array, not an object"),
    "manifest not UTF-8": (b'{"status": "\xff"}', "is damaged (not UTF-8 at byte 12)"),
}
KINDS = [*RECORD_DAMAGE, *MANIFEST_DAMAGE]
FIX = {"records": "repair or remove that line", "manifest": "restore it from a copy"}
TORN_TAILS = {  # what a kill mid-write can leave after the last full line
    "cut inside a character": '{"key": "2/e0/r0", "code": "é'.encode()[:-1],
    "cut after a character": '{"key": "2/e0/r0", "code": "é'.encode(),
    "remains that parse as a number": b"12",
    "remains that parse as an array": b'[{"key": "2/e0/r0"}]',
}


@pytest.fixture
def results(tmp_path):
    """One experiment of three runs, four records each (the identity {experiment_name: synthetic})."""
    root = tmp_path / "results" / "exp"
    for name in RUNS:
        model, memory, _ = name.split("__")
        write_run(root / name, [record(p, model, memory, scores=[4]) for p in range(4)])
    return root


def damage(path, kind):
    """Damage the run in `path` the way `kind` says: (where the error must point, what it must say, its fix)."""
    if kind in MANIFEST_DAMAGE:
        content, said = MANIFEST_DAMAGE[kind]
        (path / "manifest.json").write_bytes(content)
        return str(path / "manifest.json"), said, FIX["manifest"]
    content, said = RECORD_DAMAGE[kind]
    lines = (path / "records.jsonl").read_bytes().splitlines(keepends=True)
    (path / "records.jsonl").write_bytes(lines[0] + content + b"".join(lines[2:]))
    return f"{path / 'records.jsonl'}:2:", said, FIX["records"]


def assert_one_line(message, where, said, fix):
    assert "\n" not in message and where in message and said in message and fix in message, message


def warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def snapshot(path):
    return {name: (path / name).read_bytes() for name in ("records.jsonl", "manifest.json")}


# -- stage=report, stage=compare, stage=index and resume on each kind of damage ---------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_the_report_leaves_a_damaged_run_out_by_name_and_reads_the_others(results, kind, caplog):
    where, said, fix = damage(results / DAMAGED, kind)
    with caplog.at_level(logging.WARNING):
        runs = load_runs(str(results / "*"))
    assert sorted(run.path.name for run in runs) == ["m__none__s0", "other__none__s0"]
    assert all(len(run.records) == 4 for run in runs)
    (line,) = warnings(caplog)
    assert line.startswith("left out a damaged run: ")
    assert_one_line(line, where, said, fix)


@pytest.mark.parametrize("kind", KINDS)
def test_compare_with_a_damaged_run_stops_with_one_line(results, kind):
    where, said, fix = damage(results / DAMAGED, kind)
    cfg = compose_config("stage=compare", f"runs=[exp/m__none__s0,exp/{DAMAGED}]",
                         f"paths.results={results.parent}")
    with pytest.raises(UserError) as refused:
        compare_stage(cfg)
    assert_one_line(str(refused.value), where, said, fix)


@pytest.mark.parametrize("kind", KINDS)
def test_the_index_skips_a_damaged_run_keeps_its_rows_and_indexes_the_others(results, tmp_path, kind, caplog):
    index = tmp_path / "index.sqlite"
    update_index(results.parent, index)
    where, said, fix = damage(results / DAMAGED, kind)
    write_run(results.parent / "later" / "m__none__s0", [record(0, "m", "none")])
    with caplog.at_level(logging.WARNING, logger="spark_eval.records.index"):
        done = update_index(results.parent, index)
    assert done.skipped == [f"exp/{DAMAGED}"] and done.added == ["later/m__none__s0"]
    (line,) = warnings(caplog)
    assert_one_line(line, where, said, fix)
    with sqlite3.connect(index) as db:
        counts = dict(db.execute("SELECT run, COUNT(*) FROM records GROUP BY run").fetchall())
    assert counts == {f"exp/{name}": 4 for name in RUNS} | {"later/m__none__s0": 1}  # nothing indexed is lost


@pytest.mark.parametrize("kind", KINDS)
def test_a_resume_stops_on_a_damaged_run_with_one_line_and_changes_nothing(results, kind):
    where, said, fix = damage(results / DAMAGED, kind)
    before = snapshot(results / DAMAGED)
    with pytest.raises(RunDirectoryError) as refused:
        RunDirectory(results / DAMAGED, {"experiment_name": "synthetic"}).close()
    assert_one_line(str(refused.value), where, said, fix)
    assert snapshot(results / DAMAGED) == before


def test_when_every_run_is_damaged_the_report_stops_with_one_line(results, caplog):
    said = [damage(results / name, kind) for name, kind in zip(RUNS, ["array", "truncated manifest", "number"])]
    with caplog.at_level(logging.WARNING), pytest.raises(ResultsError) as refused:
        load_runs(str(results / "*"))
    assert len(warnings(caplog)) == 3
    assert_one_line(str(refused.value), *said[0])
    assert "3 damaged" in str(refused.value)


def test_an_integer_past_64_bits_in_a_manifest_is_indexed_not_an_abort(results, tmp_path):
    path = results / "m__none__s0" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "wall_s": 2**70, "git_sha": 2**64}))
    done = update_index(results.parent, tmp_path / "index.sqlite")
    assert sorted(done.added) == [f"exp/{name}" for name in RUNS] and not done.skipped
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        row = db.execute("SELECT wall_s, git_sha FROM runs WHERE run = 'exp/m__none__s0'").fetchone()
    assert row == (float(2**70), str(2**64))  # its digits, which a REAL column reads as a number


# -- a torn last line ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tail", list(TORN_TAILS))
def test_a_torn_last_line_is_skipped_by_readers_and_cut_off_on_resume(results, tmp_path, tail, caplog):
    path = results / DAMAGED / "records.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + TORN_TAILS[tail])
    torn = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        assert [len(run.records) for run in load_runs(str(results / "*"))] == [4, 4, 4]
        assert update_index(results.parent, tmp_path / "index.sqlite").skipped == []
    assert not warnings(caplog) and path.read_bytes() == torn  # readers beside a writer leave its file alone
    with caplog.at_level(logging.WARNING):
        rundir = RunDirectory(results / DAMAGED, {"experiment_name": "synthetic"})
    rundir.close()
    assert [r.key for r in rundir.records] == [f"{p}/e0/r0" for p in range(4)]
    assert path.read_bytes() == whole
    (line,) = warnings(caplog)
    assert line.startswith(f"cutting a torn last line off {path} (line 5: ")


def test_a_last_line_that_is_an_object_but_not_a_record_is_refused_not_cut(results):
    """What is left of a torn line never parses as an object; one that does may be a newer version's record."""
    path = results / DAMAGED / "records.jsonl"
    path.write_bytes(path.read_bytes() + _line({**record(4, "m", "spark"), "surprise": 1}))
    before = path.read_bytes()
    with pytest.raises(RunDirectoryError, match=r"records.jsonl:5: not a record .*'surprise'"):
        read_records(path)
    assert path.read_bytes() == before


# -- through the real command and the real runner ---------------------------------------------------------------

def _command(*args):
    result = subprocess.run([sys.executable, "-m", "spark_eval", *args], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=300)
    return result, (result.stdout + result.stderr).splitlines()


def test_stage_report_through_the_command_line_reports_the_good_runs_and_names_the_damaged(results, tmp_path):
    where, said, fix = damage(results / DAMAGED, "invalid UTF-8")
    result, lines = _command("stage=report", f"results={results}/*", f"report.out={tmp_path / 'out'}",
                             "report.bootstrap=50")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any("Traceback" in line for line in lines)
    (warning,) = [line for line in lines if "left out a damaged run" in line]
    assert "WARNING" in warning
    assert_one_line(warning, where, said, fix)
    table = (tmp_path / "out" / "conditions.md").read_text()
    assert "| m | without Spark |" in table and "| other | without Spark |" in table
    assert "with Spark" not in table


def test_stage_report_and_compare_through_the_command_line_stop_with_one_line_on_damaged_runs(results, tmp_path):
    said = [damage(results / name, kind) for name, kind in zip(RUNS, ["string problem id", "manifest holding a list",
                                                                      "integer past 64 bits"])]
    result, lines = _command("stage=report", f"results={results}/*", f"report.out={tmp_path / 'out'}")
    errors = [line for line in lines if "ERROR" in line]
    assert result.returncode == 2 and len(errors) == 1 and not any("Traceback" in line for line in lines)
    assert_one_line(errors[0], *said[0])
    assert not (tmp_path / "out" / "report.html").exists()
    result, lines = _command("stage=compare", f"runs=[{results / RUNS[0]},{results / RUNS[1]}]")
    errors = [line for line in lines if "ERROR" in line]
    assert result.returncode == 2 and len(errors) == 1 and not any("Traceback" in line for line in lines)
    assert_one_line(errors[0], *said[0])


@pytest.mark.grading_env
def test_a_resumed_run_cuts_a_torn_tail_off_and_stops_on_a_damaged_line(tmp_path, grading_python):
    cfg = compose_config("experiment=reference", "dataset.ids=[291,292]", f"execution.python={grading_python}",
                         "execution.preload=[numpy]", "execution.workers=1", "pipeline.progress=false")
    run(cfg, run_dir=tmp_path / "run")
    path, manifest = tmp_path / "run" / "records.jsonl", tmp_path / "run" / "manifest.json"
    whole, killed = path.read_bytes(), {**json.loads(manifest.read_text()), "status": "running"}
    for tail in TORN_TAILS.values():
        path.write_bytes(whole + tail)  # a kill mid-write: the run had not finished
        manifest.write_text(json.dumps(killed))
        assert run(cfg, run_dir=tmp_path / "run")["n"] == 2
        assert path.read_bytes() == whole
    shutil.copytree(tmp_path / "run", tmp_path / "damaged")
    where, said, fix = damage(tmp_path / "damaged", "string problem id")
    before = snapshot(tmp_path / "damaged")
    with pytest.raises(RunDirectoryError) as refused:
        run(cfg, run_dir=tmp_path / "damaged")
    assert_one_line(str(refused.value), where, said, fix)
    assert snapshot(tmp_path / "damaged") == before
