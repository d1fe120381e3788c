"""stage=index: the SQLite file over every run directory, updated incrementally, damaged runs left out by name."""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3

import pandas as pd
import pytest

from spark_eval.records import read_records, write_json
from spark_eval.records.index import IndexFileError, update_index
from spark_eval.records.index_schema import TABLES, columns, describe
from spark_eval.stats.summary import summarize
from tests.fakes.runs import record, synthetic_experiment, write_run

N = 9


@pytest.fixture
def results(tmp_path):
    """Two experiments: `exp1` (m none and spark, the reference) and `exp2` (m none), with a summary.json in one run
    and a response cache that holds no runs."""
    root = tmp_path / "results"
    synthetic_experiment(root / "exp1", ["m"], n=N, experiment="exp1")
    synthetic_experiment(root / "exp2", ["m"], n=N, seed=1, memories=("none",), reference=False, experiment="exp2")
    spark = root / "exp1" / "m__spark__s0"
    write_json(spark / "summary.json", summarize(read_records(spark / "records.jsonl")))
    write_run(root / ".cache" / "not_a_run", [record(0, "m", "none")])
    return root


def rows(index, table, run=None):
    with sqlite3.connect(index) as db:
        where, args = ("WHERE run = ?", (run,)) if run else ("", ())
        return db.execute(f"SELECT COUNT(*) FROM {table} {where}", args).fetchone()[0]


def test_the_index_holds_every_run_in_one_table_per_kind(results):
    index = results / "index.sqlite"
    done = update_index(results, index)
    runs = ["exp1/m__none__s0", "exp1/m__spark__s0", "exp1/reference__none__s0", "exp2/m__none__s0"]
    assert done.added == runs and not (done.updated or done.unchanged or done.removed or done.skipped)
    spark = "exp1/m__spark__s0"
    assert (rows(index, "runs"), rows(index, "records"), rows(index, "records", spark)) == (4, 4 * N, N)
    assert rows(index, "verdicts", spark) == 2 * N  # a quality and a helpfulness verdict per record
    assert rows(index, "verdicts", "exp1/m__none__s0") == N
    assert rows(index, "items", spark) == 2 * N and rows(index, "items", "exp1/m__none__s0") == 0
    assert (rows(index, "summaries"), rows(index, "summaries", spark)) == (1, 1)
    assert rows(index, "ledger", spark) == 3 and rows(index, "ledger", "exp2/m__none__s0") == 2
    with sqlite3.connect(index) as db:
        for table in TABLES:
            assert [r[1] for r in db.execute(f"PRAGMA table_info({table})")] == columns(table)
        run = pd.read_sql("SELECT * FROM runs WHERE run = ?", db, params=(spark,)).iloc[0]
        by_sql = pd.read_sql("SELECT run, AVG(passed) AS pass_rate, COUNT(DISTINCT problem_id) AS problems "
                             "FROM records GROUP BY run ORDER BY run", db)
        summary = pd.read_sql("SELECT pass_rate, json_extract(quality_mean, '$.\"quality/fake-judge\"') AS q "
                              "FROM summaries", db).iloc[0]
        agent = db.execute("SELECT calls, input_tokens FROM ledger WHERE run = ? AND component = 'agent'",
                           (spark,)).fetchone()
        item = db.execute("SELECT key, rank, item_id, cited, leak FROM items WHERE run = ? ORDER BY key, rank",
                          (spark,)).fetchone()
        verdict = db.execute("SELECT key, repeat, judge, kind, score FROM verdicts WHERE run = ? AND kind = 'quality' "
                             "AND problem_id = 0", (spark,)).fetchone()
    records = read_records(results / spark / "records.jsonl")
    assert (run["experiment"], run["model"], run["memory"], run["seed"], run["status"]) == (
        "exp1", "m", "spark", 0, "finished")
    assert run["records"] == N and run["passed"] == sum(r.passed for r in records) and run["problems"] == N
    assert json.loads(run["manifest"])["identity"]["experiment_name"] == "exp1"
    assert by_sql.set_index("run").loc[spark, "pass_rate"] == pytest.approx(run["passed"] / N)
    assert summary["pass_rate"] == pytest.approx(run["passed"] / N)
    assert summary["q"] == pytest.approx(sum(r.judgments[0].score for r in records) / N)
    assert agent == (N, 500 * N)
    assert item == ("0/e0/r0", 1, "doc:pandas:pandas.DataFrame.pivot#overview", 1, None)
    assert verdict == (records[0].key, 0, "quality/fake-judge", "quality", records[0].judgments[0].score)


def test_a_second_update_skips_unchanged_runs_replaces_changed_ones_and_drops_removed_ones(results):
    index = results / "index.sqlite"
    update_index(results, index)
    assert len(update_index(results, index).unchanged) == 4
    grown, touched = results / "exp1" / "m__none__s0", results / "exp2" / "m__none__s0"
    with (grown / "records.jsonl").open("a") as f:
        f.write(json.dumps(record(N, "m", "none", passed=False, scores=[1])) + "\n")
    before = (touched / "manifest.json").read_text()  # the same size, another content: seen by its mtime
    (touched / "manifest.json").write_text(before.replace('"finished"', '"stopped!"'))
    stat = (touched / "manifest.json").stat()
    os.utime(touched / "manifest.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    shutil.rmtree(results / "exp1" / "reference__none__s0")
    done = update_index(results, index)
    assert done.updated == ["exp1/m__none__s0", "exp2/m__none__s0"]
    assert done.unchanged == ["exp1/m__spark__s0"] and done.removed == ["exp1/reference__none__s0"]
    assert rows(index, "records", "exp1/m__none__s0") == N + 1 and rows(index, "verdicts", "exp1/m__none__s0") == N + 1
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT status FROM runs WHERE run = 'exp2/m__none__s0'").fetchone() == ("stopped!",)
        assert db.execute("SELECT records FROM runs WHERE run = 'exp1/m__none__s0'").fetchone() == (N + 1,)
    for table in TABLES:
        assert rows(index, table, "exp1/reference__none__s0") == 0
    assert rows(index, "runs") == 3 and rows(index, "records") == 3 * N + 1


def test_a_damaged_run_is_left_out_by_name_in_one_line_and_nothing_else_is_lost(results, caplog):
    index = results / "index.sqlite"
    update_index(results, index)
    spark = results / "exp1" / "m__spark__s0"
    lines = (spark / "records.jsonl").read_text().splitlines(keepends=True)
    (spark / "records.jsonl").write_text("".join(lines[:3] + ['{"key": "3/e0/r0", "probl\n'] + lines[3:]))
    (results / "exp2" / "m__none__s0" / "manifest.json").write_text('{"status": "fin')
    write_run(results / "exp3" / "m__none__s0", [record(0, "m", "none")])
    (results / "exp3" / "m__none__s0" / "manifest.json").unlink()
    write_run(results / "exp3" / "m__spark__s0", [record(0, "m", "spark"), record(1, "m", "spark")])
    with (results / "exp3" / "m__spark__s0" / "records.jsonl").open("a") as f:  # a run killed mid-write
        f.write(json.dumps(record(2, "m", "spark"))[:50])
    torn = (results / "exp3" / "m__spark__s0" / "records.jsonl").read_bytes()
    with caplog.at_level(logging.INFO, logger="spark_eval.records.index"):
        done = update_index(results, index)
    assert done.skipped == ["exp1/m__spark__s0", "exp2/m__none__s0", "exp3/m__none__s0"]
    assert done.added == ["exp3/m__spark__s0"] and done.unchanged == ["exp1/m__none__s0", "exp1/reference__none__s0"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("\n" not in w for w in warnings)
    assert f"{spark / 'records.jsonl'}:4: damaged record" in warnings[0]
    assert "manifest.json is damaged (not valid JSON" in warnings[1] and "manifest.json does not exist" in warnings[2]
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][-1]
    assert "1 runs added, 0 updated, 2 unchanged, 0 removed, 3 skipped as damaged (exp1/m__spark__s0," in summary
    # the damaged runs keep the rows they had; the torn last line is left out and left in the file
    assert rows(index, "records", "exp1/m__spark__s0") == N and rows(index, "records", "exp2/m__none__s0") == N
    assert rows(index, "runs", "exp3/m__none__s0") == 0 and rows(index, "records", "exp3/m__spark__s0") == 2
    assert (results / "exp3" / "m__spark__s0" / "records.jsonl").read_bytes() == torn
    (spark / "records.jsonl").write_text("".join(lines))  # repaired: indexed again
    assert update_index(results, index).updated == ["exp1/m__spark__s0"]


def test_an_index_of_another_version_is_rebuilt_and_a_foreign_file_refused(results, tmp_path):
    index = tmp_path / "elsewhere" / "index.sqlite"
    update_index(results, index)
    with sqlite3.connect(index) as db:
        db.execute("PRAGMA user_version = 0")
    assert len(update_index(results, index).added) == 4
    (tmp_path / "notes.sqlite").write_text("not a database " * 100)
    with pytest.raises(IndexFileError, match="delete it or set index=<another file>"):
        update_index(results, tmp_path / "notes.sqlite")
    with pytest.raises(IndexFileError, match="is not a folder"):
        update_index(tmp_path / "missing", index)


def test_every_table_is_described():
    text = describe()
    for table, (_, cols) in TABLES.items():
        assert f"`{table}`" in text and all(len(doc) > 5 for _, _, doc in cols)
