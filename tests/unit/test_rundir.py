import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spark_eval.pipeline.rundir import RunDirectory, RunDirectoryError, identity_changes, result_identity
from spark_eval.records import Record
from spark_eval.records.run import RunFiles
from spark_eval.stats.summary import summarize
from tests.fakes.runs import record
from tests.conftest import compose_config


def line(key, status="passed", error=None, library="Numpy"):
    row = record(int(key.split("/")[0]), "m", "none", library=library)
    return {**row, "key": key, "exec": {**row["exec"], "status": status}, "error": error,
            "completion": {**row["completion"], "input_tokens": 2, "output_tokens": 3, "cost_usd": 0.5}}


def write(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def started(path, rows, tail=""):
    """A run directory an earlier attempt left: a manifest `running` of the identity {a: 1}, and `rows`."""
    RunDirectory(path, {"a": 1}).write_manifest(status="running")
    write(path / "records.jsonl", rows, tail)
    return path


def test_torn_last_line_is_cut_off_and_finished_records_kept(tmp_path):
    started(tmp_path, [line("0/e0/r0"), line("1/e0/r0")], tail='{"key": "2/e0/r0", "libr')
    files = RunFiles(tmp_path)
    assert [r.key for r in files.records] == ["0/e0/r0", "1/e0/r0"] and files.torn.line == 3
    assert (tmp_path / "records.jsonl").read_text().endswith("libr")  # a reader leaves it to the writer
    rd = RunDirectory(tmp_path, {"a": 1}, files)
    assert [r.key for r in rd.records] == ["0/e0/r0", "1/e0/r0"]
    assert rd.records_path.read_text().endswith("}\n")


def test_damaged_line_in_the_middle_is_an_error_not_a_silent_loss(tmp_path):
    started(tmp_path, [])
    (tmp_path / "records.jsonl").write_text(json.dumps(line("0/e0/r0")) + "\n{oops\n" + json.dumps(line("1/e0/r0")) + "\n")
    with pytest.raises(RunDirectoryError, match="records.jsonl:2: damaged record"):
        RunDirectory(tmp_path, {"a": 1})


def test_errored_records_are_dropped_for_retry(tmp_path):
    started(tmp_path, [line("0/e0/r0"), line("1/e0/r0", error="RateLimit")])
    rd = RunDirectory(tmp_path, {"a": 1})
    kept = rd.drop_errored()
    assert [r.key for r in kept] == [r.key for r in rd.records] == ["0/e0/r0"]
    assert [r.key for r in RunFiles(tmp_path).records] == ["0/e0/r0"]


def test_the_directory_is_read_once_unless_it_changed_since(tmp_path):
    started(tmp_path, [line("0/e0/r0")])
    files = RunFiles(tmp_path)
    assert [r.key for r in files.records] == ["0/e0/r0"]
    rd = RunDirectory(tmp_path, {"a": 1}, files)
    assert rd.files is files  # nothing changed: what was read before the lock is used
    rd.append(Record.from_json(line("1/e0/r0")))
    rd.write_manifest(status="finished")
    assert [r.key for r in rd.records] == [r.key for r in RunFiles(tmp_path).records] == ["0/e0/r0", "1/e0/r0"]
    assert rd.manifest == RunFiles(tmp_path).manifest
    rd.close()
    write(tmp_path / "records.jsonl", [line("0/e0/r0"), line("1/e0/r0"), line("2/e0/r0")])  # changed since read
    rd = RunDirectory(tmp_path, {"a": 1}, files)
    assert rd.files is not files and [r.key for r in rd.records] == ["0/e0/r0", "1/e0/r0", "2/e0/r0"]


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
    started(tmp_path, [line("0/e0/r0"), {**line("1/e0/r0"), "surprise": 1}])
    with pytest.raises(RunDirectoryError, match="records.jsonl:2: not a record this spark_eval reads .*'surprise'"):
        RunDirectory(tmp_path, {"a": 1})
    assert "surprise" in (tmp_path / "records.jsonl").read_text()  # nothing rewritten


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


def test_identity_is_content_not_places(tmp_path):
    """A run copied to another clone resumes (locations and prices are not identity, in a judge panel neither);
    what changes results counts, an answers file by its content."""
    local = ("model=local", "memory=spark", "judge=local")
    base = result_identity(compose_config(*local))
    moved = result_identity(compose_config(*local, f"paths.root={tmp_path / 'clone'}", "model.price.input=3"))
    assert identity_changes(base, moved) == {} and not any("price" in k for k in base)
    assert "execution.output_tail_chars" not in base  # at its old meaning: runs made before it still resume
    assert identity_changes(base, result_identity(compose_config(*local, "execution.output_tail_chars=500"))) == {
        "execution.output_tail_chars": "None -> 500"}
    first, second, other = tmp_path / "a.jsonl", tmp_path / "elsewhere" / "b.jsonl", tmp_path / "c.jsonl"
    second.parent.mkdir()
    for path, code in ((first, "result = 1"), (second, "result = 1"), (other, "result = 2")):
        path.write_text(json.dumps({"id": 291, "code": code}) + "\n")
    answers = [result_identity(compose_config("model=answers", f"model.path={p}")) for p in (first, second, other)]
    assert answers[0] == answers[1] and "model.path" not in answers[0]
    assert list(identity_changes(answers[0], answers[2])) == ["model.sha256"]


def test_stores_and_baseline_runs_inside_the_project_count_by_their_place_in_it(tmp_path):
    """A community's shared store file and a paired memory's baseline runs, inside the project folder, are written
    relative to it (no machine's folder in a manifest; a clone elsewhere resumes); outside it, as given."""
    from spark_eval.config import PROJECT_ROOT

    inside = [str(PROJECT_ROOT / "results" / "x" / f"m{i}__none__s0") for i in range(2)]
    identity = result_identity(compose_config(
        "memory=spark_paired", f"memory.store={PROJECT_ROOT / 'results' / 'x' / 'store.sqlite'}",
        f"memory.learning.baseline=[{','.join(inside)}]"))
    assert identity["memory.store"] == "results/x/store.sqlite"
    assert identity["memory.learning.baseline"] == ["results/x/m0__none__s0", "results/x/m1__none__s0"]
    outside = result_identity(compose_config("memory=spark", f"memory.store={tmp_path / 'store.sqlite'}"))
    assert outside["memory.store"] == str(tmp_path / "store.sqlite")


def test_an_identity_written_before_reads_under_todays_rules():
    """A manifest's identity from before: a panel holding its models' cache and weights folders, prices, and the
    weights' download details; none of it blocks a resume, their content (the sha256) still does."""
    cfg = compose_config("model=local", "memory=spark", "judge=local")
    now = result_identity(cfg)
    old = dict(_flat_before(OmegaConf.to_container(cfg, resolve=True)))  # with every location, price and setting
    assert any(k.startswith("model.price") for k in old) and "model.weights.filename" in old
    assert "cache_path" in json.dumps(old["judge.panel"])  # the 5,971-character refusal
    assert identity_changes(old, now) == {}
    changed = {**old, "model.weights.sha256": "0" * 64}
    assert list(identity_changes(changed, now)) == ["model.weights.sha256"]


def _flat_before(node, prefix=""):
    """A config flattened as identities were before: lists (a judge panel) kept whole."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flat_before(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def test_the_committed_local_study_runs_still_resume():
    """The identity of each committed local_study run equals the one this version computes for its condition
    (its dataset hash, versions and grading environment taken from the manifest: they are measured, not
    configured)."""
    from spark_eval.config import PROJECT_ROOT

    manifests = sorted((PROJECT_ROOT / "results" / "local_study").glob("*/manifest.json"))
    if not manifests:
        pytest.skip("no local_study runs in this checkout")
    for manifest in manifests:
        before = json.loads(manifest.read_text())["identity"]
        memory = manifest.parent.name.split("__")[1]
        cfg = compose_config("experiment=local_study", f"condition=local_study_{memory}")
        measured = {"dataset_hash": before["dataset_hash"], "grading_env": before["grading_env"],
                    "versions": {k.split(".", 1)[1]: v for k, v in before.items() if k.startswith("versions.")},
                    "execution": {"isolation": before["execution.isolation"]}}
        assert identity_changes(before, result_identity(cfg, **measured)) == {}, manifest.parent.name


def test_a_refusal_is_one_short_line_and_changes_nothing_in_the_run(tmp_path):
    RunDirectory(tmp_path, {"memory.agent": "x" * 300, "seed": 0}).write_manifest(status="finished")
    kept = (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(RunDirectoryError) as refused:
        RunDirectory(tmp_path, {"memory.agent": "y" * 300, "seed": 1})
    message = str(refused.value)
    assert len(message) < 400 and "differs in memory.agent, seed; each value in " in message
    spilled = Path(message.split("each value in ")[1].split(")")[0])
    assert spilled.read_text() == f"memory.agent: {'x' * 300!r} -> {'y' * 300!r}\nseed: 0 -> 1\n"
    assert not spilled.is_relative_to(tmp_path) and (tmp_path / "manifest.json").read_bytes() == kept
    spilled.unlink()
    with pytest.raises(RunDirectoryError, match=r"\(seed: 0 -> 1\); undo the change"):
        RunDirectory(tmp_path, {"memory.agent": "x" * 300, "seed": 1})


def test_a_file_system_without_locks_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(RunDirectoryError, match=r"cannot lock files \(No locks available\); .* paths.results="):
        RunDirectory(tmp_path, {"a": 1})


def test_the_documented_interpreter_counts_by_its_packages_when_it_is_not_the_graders(harness_python):
    from spark_eval.errors import UserError
    from spark_eval.pipeline.runner import documented_environment

    assert documented_environment(compose_config("memory=spark"), "grading") == {}  # the grader's: grading_env
    other = documented_environment(compose_config("memory=spark", f"memory.kb.python={harness_python}"), "grading")
    assert list(other) == ["kb_env"] and len(other["kb_env"]) == 64
    with pytest.raises(UserError, match="memory.kb.python=/nowhere/python does not exist"):
        documented_environment(compose_config("memory=spark", "memory.kb.python=/nowhere/python"), "grading")
