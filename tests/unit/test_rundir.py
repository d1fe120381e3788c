import json
import os

import pytest

from spark_eval.pipeline.rundir import RunDirectory, RunDirectoryError, result_identity
from spark_eval.records import Record
from spark_eval.records.summary import summarize
from tests.fakes.runs import record
from tests.conftest import compose_config


def line(key, status="passed", error=None, library="Numpy"):
    row = record(int(key.split("/")[0]), "m", "none", library=library)
    return {**row, "key": key, "exec": {**row["exec"], "status": status}, "error": error,
            "completion": {**row["completion"], "input_tokens": 2, "output_tokens": 3, "cost_usd": 0.5}}


def write(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def test_torn_last_line_is_cut_off_and_finished_records_kept(tmp_path):
    rd = RunDirectory(tmp_path, {"a": 1})
    rd.write_manifest(status="running")
    write(rd.records_path, [line("0/e0/r0"), line("1/e0/r0")], tail='{"key": "2/e0/r0", "libr')
    assert [r.key for r in rd.load_records()] == ["0/e0/r0", "1/e0/r0"]
    assert rd.records_path.read_text().endswith("}\n")


def test_damaged_line_in_the_middle_is_an_error_not_a_silent_loss(tmp_path):
    rd = RunDirectory(tmp_path, {"a": 1})
    rd.write_manifest(status="running")
    rd.records_path.write_text(json.dumps(line("0/e0/r0")) + "\n{oops\n" + json.dumps(line("1/e0/r0")) + "\n")
    with pytest.raises(RunDirectoryError, match="records.jsonl:2: damaged record"):
        rd.load_records()


def test_errored_records_are_dropped_for_retry(tmp_path):
    rd = RunDirectory(tmp_path, {"a": 1})
    write(rd.records_path, [])
    rd.write_manifest(status="running")
    write(rd.records_path, [line("0/e0/r0"), line("1/e0/r0", error="RateLimit")])
    kept = rd.drop_errored(rd.load_records())
    assert [r.key for r in kept] == ["0/e0/r0"]
    assert [r.key for r in rd.load_records()] == ["0/e0/r0"]


def test_changed_identity_is_refused_naming_the_keys(tmp_path):
    RunDirectory(tmp_path, {"dataset.limit": 14, "seed": 0}).write_manifest(status="finished")
    with pytest.raises(RunDirectoryError, match=r"dataset.limit: 14 -> 20"):
        RunDirectory(tmp_path, {"dataset.limit": 20, "seed": 0})
    RunDirectory(tmp_path, {"dataset.limit": 14, "seed": 0})


def test_records_without_a_manifest_are_not_overwritten(tmp_path):
    write(tmp_path / "records.jsonl", [line("0/e0/r0")])
    with pytest.raises(RunDirectoryError, match="without a manifest"):
        RunDirectory(tmp_path, {})


def test_identity_ignores_settings_that_do_not_change_results():
    base = result_identity(compose_config())
    assert base == result_identity(compose_config("execution.workers=7", "pipeline.concurrency=1"))
    moved = ("model=local", "paths.results=/elsewhere/results", "execution.seaborn_data=/elsewhere/seaborn")
    assert result_identity(compose_config("model=local")) == result_identity(compose_config(*moved))
    assert base != result_identity(compose_config("execution.timeout_s=5"))
    assert "dataset.limit" in base and "dataset.path" not in base and not any(k.startswith("paths.") for k in base)
    assert result_identity(compose_config(), dataset_hash="abc")["dataset_hash"] == "abc"


def test_summary_counts_pass_rates_per_group():
    rows = [line("0", "passed"), line("1", "failed"), line("2", "infra_error", library="Sklearn"),
            {**line("3", library="Sklearn"), "exec": None, "error": "boom"}]
    s = summarize([Record.from_json(r) for r in rows])
    assert (s["n"], s["passed"], s["pass_rate"], s["errors"]) == (4, 1, 0.25, 1)
    assert s["by_library"]["Numpy"] == {"n": 2, "passed": 1, "pass_rate": 0.5, "infra_error": 0}
    assert s["by_library"]["Sklearn"]["infra_error"] == 1
    assert s["statuses"]["none"] == 1
    assert s["ledger"]["coder"]["input_tokens"] == 8 and s["ledger"]["coder"]["cost_usd"] == 2.0


def test_one_writer_per_run_directory(tmp_path):
    first = RunDirectory(tmp_path, {"a": 1})
    with pytest.raises(RunDirectoryError, match=rf"in use by process {os.getpid()} \(a run\); wait for it"):
        RunDirectory(tmp_path, {"a": 1})
    first.close()
    RunDirectory(tmp_path, {"a": 1}).close()  # released: the next writer may go


def test_identity_holds_the_sandbox_and_the_store_but_not_how_models_are_called():
    base = result_identity(compose_config("model=local", "memory=spark", "judge=local"))
    assert base != result_identity(compose_config("model=local", "memory=spark", "judge=local",
                                                  "execution.isolation=process"))
    assert base != result_identity(compose_config("model=local", "memory=spark", "judge=local",
                                                  "memory.store=/elsewhere/store.sqlite"))
    calls = ("model.concurrency=9", "model.max_attempts=2", "model.timeout_s=5", "model.backoff_s=0.1",
             "agent.concurrency=3", "learner.timeout_s=7", "judge.models.quality.max_attempts=1",
             "judge.models.helpfulness.timeout_s=9")
    assert base == result_identity(compose_config("model=local", "memory=spark", "judge=local", *calls))
    assert base != result_identity(compose_config("model=local", "memory=spark", "judge=local", "model.n_ctx=4096"))
    # what the sandbox resolved `auto` to is what counts
    assert result_identity(compose_config(), execution={"isolation": "process"})["execution.isolation"] == "process"


def test_a_record_with_a_field_this_version_does_not_know_is_refused_not_dropped(tmp_path):
    rd = RunDirectory(tmp_path, {"a": 1})
    rd.write_manifest(status="running")
    write(rd.records_path, [line("0/e0/r0"), {**line("1/e0/r0"), "surprise": 1}])
    with pytest.raises(RunDirectoryError, match="record 2 is not a record this spark_eval reads .*'surprise'"):
        rd.load_records()
    assert "surprise" in rd.records_path.read_text()  # nothing rewritten


def test_a_record_survives_the_round_trip_through_its_type(tmp_path):
    from tests.fakes.runs import record as fake

    rows = [fake(3, "m", "spark", scores=[4.0, 3.5], band="GOOD", advice_error=None),
            fake(4, "m", "none", error="ModelCallError: gone"), line("5/e0/r0", "timeout")]
    def kept(given, full):  # everything given is in the typed record's JSON unchanged (defaults fill the rest)
        if isinstance(given, dict):
            return all(k in full and kept(v, full[k]) for k, v in given.items())
        if isinstance(given, list):
            return len(given) == len(full) and all(kept(g, f) for g, f in zip(given, full))
        return given == full

    for row in rows:
        full = json.loads(json.dumps(Record.from_json(json.loads(json.dumps(row))).to_json()))
        assert kept(json.loads(json.dumps(row)), full)
        assert json.loads(json.dumps(Record.from_json(full).to_json())) == full
    assert Record.from_json(rows[0]).family == "Pandas/3" and Record.from_json(rows[1]).status == "none"


def test_identity_keeps_new_settings_at_their_old_meaning_out_and_hides_a_store_password():
    plain = result_identity(compose_config("experiment=demo", "memory=spark_small"))
    assert not [k for k in plain if k.startswith("community") or k in ("pipeline.share", "memory.mask_contributors",
                                                                         "memory.poison.rate")]
    shared = result_identity(compose_config(
        "memory=spark_small", "memory.store=postgresql://spark:hunter2@db.example:5432/memory",
        "memory.mask_contributors=[a]", "pipeline.share=1/2"))
    assert shared["memory.store"] == "postgresql://spark:***@db.example:5432/memory"
    assert shared["memory.mask_contributors"] == ["a"] and shared["pipeline.share"] == "1/2"
