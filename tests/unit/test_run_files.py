"""records/run.py: the typed manifest reads older and newer manifests and rewrites them whole; RunFiles reads a run
directory without writing to it."""
import json

import pytest

from spark_eval.records import Completion, Record, RunDirectoryError, Usage
from spark_eval.records.run import FINAL, MANIFEST, Manifest, RunFiles, epoch_snapshot, holds_records
from tests.fakes.runs import record, write_run


def test_an_older_manifest_reads_with_defaults_and_a_newer_one_keeps_what_it_does_not_know():
    older = Manifest.from_json({"status": "finished", "identity": {"seed": 0}})
    assert (older.status, older.identity, older.ledger, older.problem_ids, older.spent_usd) == (
        "finished", {"seed": 0}, {}, [], None)
    newer = {"surprise": [1, 2], "status": "running", "budget_usd": None, "identity": {"seed": 0}}
    manifest = Manifest.from_json(newer)
    assert manifest.extra == {"surprise": [1, 2]} and manifest.budget_usd is None
    assert list(manifest.to_json().items()) == list(newer.items())  # nothing lost, nothing moved, nulls kept


def test_an_update_sets_keys_in_place_and_adds_new_ones_last():
    manifest = Manifest.from_json({"status": "running", "identity": {"a": 1}, "spent_usd": 0.5})
    updated = manifest.updated(status="finished", wall_s=2.0, spent_usd=0.75)
    assert list(updated.to_json()) == ["status", "identity", "spent_usd", "wall_s"]
    assert (updated.status, updated.wall_s, updated.spent_usd) == ("finished", 2.0, 0.75)
    assert manifest.status == "running"  # frozen: the update is a new manifest


@pytest.mark.parametrize("key,value,kind", [("identity", [1], "an object"), ("dataset_hash", 3, "a string")])
def test_a_field_the_readers_rely_on_of_another_kind_is_one_line(tmp_path, key, value, kind):
    (tmp_path / MANIFEST).write_text(json.dumps({"status": "finished", key: value}))
    with pytest.raises(RunDirectoryError, match=f"{MANIFEST}: its {key} is not {kind}; restore the file"):
        RunFiles(tmp_path).manifest


def test_run_files_read_a_run_and_write_nothing(tmp_path):
    run = tmp_path / "m__none__s0"
    rows = [record(p, "m", "none") for p in range(3)]
    write_run(run, [*rows[:2], {**rows[2], "error": "RateLimit"}])
    with (run / "records.jsonl").open("a") as f:
        f.write('{"key": "3/e0/r0", "co')  # a writer killed mid-line
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    files = RunFiles(run)
    assert holds_records(run) and not holds_records(tmp_path)
    assert [r.key for r in files.records] == [r["key"] for r in rows] and files.torn.line == 4
    assert files.finished_keys() == {rows[0]["key"], rows[1]["key"]} and files.written() == 3
    assert files.manifest.status == "finished" and files.health() == [] and files.snapshot(FINAL) == []
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert files.current_stamp() == files.stamp
    with (run / "records.jsonl").open("a") as f:
        f.write("\n")
    assert files.current_stamp() != files.stamp
    assert epoch_snapshot(2) == "epoch2"


def test_a_record_line_reads_and_writes_back_the_same_with_typed_items_and_usage():
    line = record(7, "m", "spark", scores=[4])
    line["recommendation"]["items"] = [
        {"id": "ins:1", "kind": "insight", "score": 0.1, "cited": True, "leak": False, "contributors": ["a"],
         "poison": True},
        {"id": "doc:pandas:x#overview", "kind": "doc", "score": 0.02, "leak": False, "contributors": []},
        {"id": "ins:2", "kind": "insight", "score": 1.0}]
    line["judgments"][0]["usage"] = {"calls": 0, "cached": 1, "capped": 0, "attempts": 1}  # a cache hit: no tokens
    rec = Record.from_json(json.loads(json.dumps(line)))
    assert [i.cited for i in rec.recommendation.items] == [True, None, None]
    assert rec.recommendation.items[0].contributors == ("a",) and rec.recommendation.items[0].poison
    assert rec.judgments[0].usage.input_tokens is None and rec.judgments[0].usage.cached == 1
    written = rec.to_json()  # unset fields stay absent, in the order written
    assert json.dumps(written["recommendation"]["items"]) == json.dumps(line["recommendation"]["items"])
    assert json.dumps(written["judgments"]) == json.dumps(line["judgments"])
    assert Record.from_json(json.loads(json.dumps(written))).to_json() == written
    with pytest.raises(ValueError, match="RetrievedItem has no field 'rank'"):
        Record.from_json({**line, "recommendation": {**line["recommendation"],
                                                      "items": [{**line["recommendation"]["items"][0], "rank": 1}]}})


def test_usage_accounts_add_up_counting_only_what_was_counted():
    spent = Usage.of(Completion("x", input_tokens=10, output_tokens=2, cost_usd=0.5, latency_s=1.0, attempts=2))
    hit = Usage.of(Completion("x", input_tokens=10, output_tokens=2, cached=True))
    assert hit.to_json() == {"calls": 0, "cached": 1, "capped": 0, "attempts": 1}
    assert (spent + hit).to_json() == {"calls": 1, "cached": 1, "capped": 0, "input_tokens": 10, "output_tokens": 2,
                                       "cost_usd": 0.5, "latency_s": 1.0, "attempts": 3}
    assert sum([spent, spent], Usage()) == spent + spent and Usage().to_json() == {}
