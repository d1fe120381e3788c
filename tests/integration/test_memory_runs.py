"""Memory conditions through the real runner, with scripted agent/learner models and a bag-of-words embedder:
rounds, learning, family exclusion, snapshots, health, resume, the leaky synthetic protocol."""
import json

import pytest
from omegaconf import OmegaConf, open_dict

from spark_eval.models.base import ModelCallError
from spark_eval.pipeline import run
from tests.conftest import compose_config
from tests.fakes.ports import free_port
from tests.fakes.scripted import ScriptedModel

IDS = [291, 292, 293, 294]  # round 0: families Numpy/0, Numpy/1; round 1: Numpy/1 twice
AGENT_REPLY = json.dumps({"intent": "shape of an array", "library": "Numpy", "queries": ["array shape", "nan"],
                          "avoid": "", "advice": "Use the array's attributes.", "cited": [1]})
LEARNER_REPLY = json.dumps({"insights": [{"library": "Numpy", "api": ["numpy.isnan"], "title": "NaN handling",
                                          "content": "np.isnan gives a mask of NaNs.", "applies_when": "arrays with NaN"}]})


def memory_cfg(grading_python, *overrides, agent=AGENT_REPLY, learner=LEARNER_REPLY):
    cfg = compose_config(
        "experiment=reference", f"dataset.ids=[{','.join(map(str, IDS))}]", f"execution.python={grading_python}",
        "execution.preload=[numpy]", "pipeline.progress=false", "pipeline.round_size=2", "memory=experience_only",
        *overrides,
    )
    with open_dict(cfg):
        cfg.memory.embedder = OmegaConf.create({"_target_": "tests.fakes.embedder.HashEmbedder"})
        cfg.memory.agent_model = OmegaConf.create(
            {"_target_": "tests.fakes.scripted.ScriptedModel", "name": "agent", "replies": [agent]})
        cfg.memory.learner_model = OmegaConf.create(
            {"_target_": "tests.fakes.scripted.ScriptedModel", "name": "learner", "replies": [learner]})
    return cfg


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_online_learning_over_rounds_and_epochs(tmp_path, grading_python):
    cfg = memory_cfg(grading_python, "pipeline.epochs=2")
    learner_calls = tmp_path.parent / f"{tmp_path.name}-learner-calls"
    with open_dict(cfg):
        cfg.memory.learner_model.calls_log = str(learner_calls)
    summary = run(cfg, run_dir=tmp_path)
    assert summary["n"] == 8 and summary["passed"] == 8
    records = {r["key"]: r for r in lines(tmp_path / "records.jsonl")}
    first, second = records["291/e0/r0"], records["293/e0/r0"]
    assert first["recommendation"]["text"] == "Use the array's attributes." and first["memory"] == "experience_only"
    assert first["memory_hash"] != second["memory_hash"]  # round 1 saw what round 0 taught
    assert first["versions"]["agent"] == "agent-9" and first["versions"]["learner"] == "learner-4"
    # the insight came from 291 and 292 (families Numpy/0 and Numpy/1): 293 and 294 (Numpy/1) never see it,
    # 291 (Numpy/0) does not either; nothing else is there to retrieve
    assert all(not r["recommendation"]["items"] for r in records.values())
    health = lines(tmp_path / "memory" / "health.jsonl")
    assert [(h["epoch"], h["round"]) for h in health] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert health[0]["ops"] == {"ADD": 1} and health[1]["ops"] == {"MERGE": 1} and health[1]["insights"] == 1
    insight = lines(tmp_path / "memory" / "final" / "insights.jsonl")[0]
    assert sorted({p["family"] for p in insight["provenance"]}) == ["Numpy/0", "Numpy/1"]
    assert insight["endorsements"] == 4
    for epoch in (0, 1):
        assert (tmp_path / "memory" / f"epoch{epoch}" / "state.json").is_file()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["memory"]["insights"] == 1 and manifest["memory"]["duplicate_rate"] == 0.75
    assert manifest["ledger"]["agent"]["calls"] == 16 and manifest["ledger"]["learner"]["calls"] == 4
    assert manifest["leaky"] is False and summary["leak_flag_rate"] == 0.0

    again = run(cfg, run_dir=tmp_path)  # resume: nothing new is answered or learned
    assert again["n"] == 8 and len(lines(tmp_path / "memory" / "health.jsonl")) == 4
    assert len(lines(tmp_path / "memory" / "final" / "ops.jsonl")) == 4
    assert len(learner_calls.read_text().splitlines()) == 4  # the resumed run did not ask the learner again


def test_without_family_exclusion_the_insight_is_retrieved(tmp_path, grading_python):
    run(memory_cfg(grading_python, "memory.exclude_family=false"), run_dir=tmp_path)
    records = {r["key"]: r for r in lines(tmp_path / "records.jsonl")}
    assert [i["kind"] for i in records["293/e0/r0"]["recommendation"]["items"]] == ["insight"]
    assert records["291/e0/r0"]["recommendation"]["items"] == []


def test_paper_synthetic_is_leaky_and_flags_overlap_with_the_reference(tmp_path, grading_python, problems):
    hint = json.dumps({"insights": [{"title": "Drop NaNs", "content": "x = x[~np.isnan(x)]", "tags": [],
                                     "applies_when": "", "library": "Numpy"}]})
    cfg = memory_cfg(grading_python, "memory.experience=paper_synthetic", "memory._target_=spark_eval.memory.spark.PlaybookMemory",
                     "memory.exclude_family=false", learner=hint)
    summary = run(cfg, run_dir=tmp_path)
    records = {r["problem_id"]: r for r in lines(tmp_path / "records.jsonl")}
    assert all(r["leaky"] for r in records.values()) and summary["leaky"] is True
    assert records[292]["recommendation"]["leak_flag"] is True  # 292's reference is exactly that line
    assert records[291]["recommendation"]["leak_flag"] is False
    assert summary["leak_flag_rate"] == 0.25
    assert json.loads((tmp_path / "manifest.json").read_text())["leaky"] is True
    health = lines(tmp_path / "memory" / "health.jsonl")
    assert health[0]["round"] == -1 and health[0]["ops"] == {"ADD": 1, "MERGE": 3}


def test_an_unusable_agent_reply_leaves_the_problem_without_advice(tmp_path, grading_python):
    run(memory_cfg(grading_python, agent="no json here"), run_dir=tmp_path)
    record = lines(tmp_path / "records.jsonl")[0]
    assert record["error"] is None and record["exec"]["status"] == "passed"
    assert record["recommendation"]["text"] == ""
    assert record["recommendation"]["error"].startswith("search plan unusable: the reply holds no JSON object")


def outage_cfg(grading_python, tmp_path, role):
    """The memory config with `role` (agent_model or learner_model) down until the returned file is removed."""
    outage = tmp_path.parent / f"{tmp_path.name}-{role}-down"
    outage.write_text("down")
    cfg = memory_cfg(grading_python)
    with open_dict(cfg):
        cfg.memory[role].fail_while = str(outage)
    return cfg, outage


def test_an_agent_outage_is_a_record_error_retried_on_resume(tmp_path, grading_python):
    cfg, outage = outage_cfg(grading_python, tmp_path, "agent_model")
    summary = run(cfg, run_dir=tmp_path)
    records = lines(tmp_path / "records.jsonl")
    assert summary["errors"] == 4 and all(r["error"].startswith("ModelCallError: scripted outage") for r in records)
    assert all(r["recommendation"] is None for r in records)  # not counted as "Spark without advice"
    outage.unlink()
    summary = run(cfg, run_dir=tmp_path)
    records = lines(tmp_path / "records.jsonl")
    assert summary["errors"] == 0 and len(records) == 4
    assert all(r["recommendation"]["text"] == "Use the array's attributes." for r in records)


def test_a_learner_outage_stops_the_run_and_the_resume_learns_before_going_on(tmp_path, grading_python):
    cfg, outage = outage_cfg(grading_python, tmp_path, "learner_model")
    with pytest.raises(ModelCallError, match="scripted outage"):
        run(cfg, run_dir=tmp_path)
    assert len(lines(tmp_path / "records.jsonl")) == 2  # round 0 is on disk; round 1 never ran on a memory without it
    health = lines(tmp_path / "memory" / "health.jsonl")
    assert [h["learner_failed"].startswith("scripted outage") for h in health] == [True]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["memory"]["learner_failures"] == 1
    outage.unlink()
    summary = run(cfg, run_dir=tmp_path)
    health = lines(tmp_path / "memory" / "health.jsonl")
    assert [(h["round"], h.get("ops")) for h in health[1:]] == [(0, {"ADD": 1}), (1, {"MERGE": 1})]
    records = {r["problem_id"]: r for r in lines(tmp_path / "records.jsonl")}
    assert summary["n"] == 4 and records[293]["memory_hash"] != records[291]["memory_hash"]  # round 1 saw round 0's


def test_a_redone_record_counts_its_outcome_once_and_records_the_state_it_saw(
        tmp_path, grading_python, problems, monkeypatch):
    """Round 1 (293, 294) retrieves round 0's insight; 294's answer fails the first time (a record error). The
    resume redoes 294 only: the insight's counters move once per record, as in a run without the error."""
    from spark_eval.models.replay import AnswersFile

    answers = tmp_path.parent / f"{tmp_path.name}-answers.jsonl"
    answers.write_text("".join(json.dumps({"id": i, "code": problems[i].reference_code}) + "\n" for i in IDS))
    cfg = memory_cfg(grading_python, "model=answers", f"model.path={answers}", "memory.exclude_family=false")
    answer = AnswersFile.answer

    async def fails_on_294(self, problem, recommendation, repeat=0):
        if problem.problem_id == 294:
            raise ConnectionError("the answer could not be read this time")
        return await answer(self, problem, recommendation, repeat)

    monkeypatch.setattr(AnswersFile, "answer", fails_on_294)
    first = run(cfg, run_dir=tmp_path)
    assert first["errors"] == 1
    state_after_first = json.loads((tmp_path / "manifest.json").read_text())["memory"]["state_hash"]
    monkeypatch.setattr(AnswersFile, "answer", answer)  # the same file, the same identity: the resume may go on
    assert run(cfg, run_dir=tmp_path)["errors"] == 0
    records = {r["problem_id"]: r for r in lines(tmp_path / "records.jsonl")}
    assert [i["kind"] for i in records[294]["recommendation"]["items"]] == ["insight"]
    insight = lines(tmp_path / "memory" / "final" / "insights.jsonl")[0]
    assert (insight["helpful"], insight["harmful"]) == (2, 0)  # 293 and 294 passed with it, each counted once
    assert records[294]["memory_hash"] == state_after_first != records[293]["memory_hash"]


def test_a_frozen_memory_learned_on_ds1000_is_copied_read_and_never_written_on_another_benchmark(
        tmp_path, grading_python):
    learned = tmp_path / "learn"
    run(memory_cfg(grading_python), run_dir=learned)
    source = learned / "memory" / "store.sqlite"
    before = source.read_bytes()
    cfg = memory_cfg(grading_python, "benchmark=pandas_numpy_eval", "dataset.ids=[0,101,102]",
                     "memory.experience=frozen", f"memory.frozen_store={source}", "memory.exclude_family=false")
    summary = run(cfg, run_dir=tmp_path / "frozen")
    assert summary["n"] == 3
    records = lines(tmp_path / "frozen" / "records.jsonl")
    assert len({r["memory_hash"] for r in records}) == 1  # one state for every round: nothing was learned
    assert any(i["kind"] == "insight" for r in records for i in r["recommendation"]["items"])
    assert not (tmp_path / "frozen" / "memory" / "health.jsonl").exists()
    assert source.read_bytes() == before  # the learning run's store is untouched
    manifest = json.loads((tmp_path / "frozen" / "manifest.json").read_text())
    assert manifest["memory"]["frozen_store"] == str(source) and manifest["memory"]["insights"] == 1
    assert manifest["memory"]["ops"] == {"ADD": 1, "MERGE": 1}  # the copy's log, not new operations


def test_a_frozen_memory_without_its_store_stops_before_the_first_problem(tmp_path, grading_python):
    from spark_eval.memory.store.base import MemoryStoreError

    cfg = memory_cfg(grading_python, "memory.experience=frozen", f"memory.frozen_store={tmp_path / 'none.sqlite'}")
    with pytest.raises(MemoryStoreError, match="none.sqlite does not exist; run the experiment that learns it first"):
        run(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "records.jsonl").exists()


class ServerStoppingModel(ScriptedModel):
    """A learner that stops the tests' PostgreSQL server while it is asked (SERVER is set by the test): the
    store is lost in the middle of a run, and stays away."""

    SERVER = None

    async def complete(self, messages, params):
        if ServerStoppingModel.SERVER is not None:
            ServerStoppingModel.SERVER.stop()
        return await super().complete(messages, params)


def test_two_members_learn_into_one_postgres_store_and_name_their_contributions(tmp_path, grading_python,
                                                                                postgres_db):
    """Member `one` learns an insight; member `two` is shown it (contributor `one`), then proposes it again (a merge:
    contributors `one` and `two`). In a frozen copy, masking `one` keeps it (`two` stands behind it too); masking
    both hides it."""
    runs = {}
    for name, ids in (("one", "[291,292]"), ("two", "[293,294]")):
        cfg = memory_cfg(grading_python, f"memory.store={postgres_db}", "memory.exclude_family=false",
                         f"dataset.ids={ids}")
        with open_dict(cfg):
            cfg.model.name = name  # the reference answers, under two member names
        run(cfg, run_dir=tmp_path / name)
        runs[name] = {r["problem_id"]: r for r in lines(tmp_path / name / "records.jsonl")}
    seen = runs["two"][293]["recommendation"]["items"]
    assert [(i["kind"], i["contributors"]) for i in seen] == [("insight", ["one"])]
    store = json.loads((tmp_path / "two" / "manifest.json").read_text())["memory"]
    assert store["store"].startswith("postgresql://") and store["insights"] == 1

    insight = lines(tmp_path / "two" / "memory" / "final" / "insights.jsonl")[0]
    assert sorted({p["model"] for p in insight["provenance"]}) == ["one", "two"]
    for masked, expected in (("[]", 1), ("[one]", 1), ("[one,two]", 0)):
        cfg = memory_cfg(grading_python, "memory.experience=frozen", f"memory.frozen_store={postgres_db}",
                         "memory.exclude_family=false", f"memory.mask_contributors={masked}", "dataset.ids=[293]")
        out = tmp_path / f"frozen{masked}"
        run(cfg, run_dir=out)
        items = lines(out / "records.jsonl")[0]["recommendation"]["items"]
        assert len(items) == expected


def test_a_postgres_store_that_cannot_be_reached_stops_before_the_first_problem(tmp_path, grading_python):
    from spark_eval.memory.store.base import MemoryStoreError

    port = free_port()
    cfg = memory_cfg(grading_python, f"memory.store=postgresql://spark:hunter2@127.0.0.1:{port}/spark")
    with pytest.raises(Exception) as error:
        run(cfg, run_dir=tmp_path / "run")
    cause = error.value.__cause__ or error.value  # Hydra's instantiate wraps what a memory raises when built
    assert isinstance(cause, MemoryStoreError) and "hunter2" not in str(cause) and "\n" not in str(cause)
    assert str(cause).startswith(f"memory store postgresql://spark:***@127.0.0.1:{port}/spark cannot be reached")
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_a_postgres_store_lost_for_good_stops_the_run_and_keeps_every_record(tmp_path, grading_python,
                                                                             postgres_server, postgres_db):
    from spark_eval.memory.store.base import MemoryStoreError

    cfg = memory_cfg(grading_python, f"memory.store={postgres_db}")
    with open_dict(cfg):
        cfg.memory.learner_model._target_ = "tests.integration.test_memory_runs.ServerStoppingModel"
    ServerStoppingModel.SERVER = postgres_server
    try:
        with pytest.raises(MemoryStoreError, match="cannot be reached .*finished records are kept"):
            run(cfg, run_dir=tmp_path)
    finally:
        ServerStoppingModel.SERVER = None
        postgres_server.start()
    assert len(lines(tmp_path / "records.jsonl")) == 2  # round 0, written before the store was needed
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "cannot be reached" in manifest["memory"]["error"]
    summary = run(cfg, run_dir=tmp_path)  # the server is back: the resume learns round 0, then goes on
    assert summary["n"] == 4
    health = lines(tmp_path / "memory" / "health.jsonl")
    assert [(h["round"], h.get("ops")) for h in health] == [(0, {"ADD": 1}), (1, {"MERGE": 1})]


def control_cfg(grading_python, memory, *overrides):
    cfg = compose_config(
        "experiment=reference", f"dataset.ids=[{','.join(map(str, IDS))}]", f"execution.python={grading_python}",
        "execution.preload=[numpy]", "pipeline.progress=false", f"memory={memory}", *overrides,
    )
    with open_dict(cfg):
        cfg.memory.embedder = OmegaConf.create({"_target_": "tests.fakes.embedder.HashEmbedder"})
    return cfg


def test_the_oracle_advises_the_references_apis_and_the_placebo_shows_them_to_another_problem(tmp_path,
                                                                                                grading_python):
    oracle_dir, placebo_dir = tmp_path / "oracle", tmp_path / "placebo"
    run(control_cfg(grading_python, "oracle"), run_dir=oracle_dir)
    oracle = {r["problem_id"]: r for r in lines(oracle_dir / "records.jsonl")}
    assert json.loads((oracle_dir / "manifest.json").read_text())["leaky"] is True
    for record in oracle.values():
        advice = record["recommendation"]
        assert record["leaky"] and advice["api_labels"] and advice["api_hits"] == advice["api_labels"]
        assert all(f"`{label}`" in advice["text"] for label in advice["api_labels"])
    run(control_cfg(grading_python, "placebo", f"memory.placebo.source={oracle_dir}"), run_dir=placebo_dir)
    placebo = {r["problem_id"]: r for r in lines(placebo_dir / "records.jsonl")}
    for pid, record in placebo.items():
        donor = record["recommendation"]["trace"]["placebo_of"]
        assert donor != pid and record["recommendation"]["text"] == oracle[donor]["recommendation"]["text"]
        assert not record["leaky"] and record["recommendation"]["api_labels"] == oracle[pid]["recommendation"]["api_labels"]
    assert sorted(r["recommendation"]["trace"]["placebo_of"] for r in placebo.values()) == sorted(placebo)


def test_a_placebo_source_without_records_is_refused_in_one_line(tmp_path, grading_python):
    with pytest.raises(Exception, match="memory.placebo.source=.* holds no records.jsonl"):
        run(control_cfg(grading_python, "placebo", f"memory.placebo.source={tmp_path / 'nowhere'}"),
            run_dir=tmp_path / "run")


def test_a_drafted_memory_shows_the_documents_of_the_drafts_apis_first(tmp_path, grading_python):
    """memory=spark_drafted: the coder drafts without memory (here the reference answers, so the draft's APIs are
    the reference's labels), the documents of the APIs the draft uses come from the library's walk (the KB's cap
    leaves most of them out) and lead the items the agent is shown."""
    cfg = memory_cfg(grading_python, "memory=spark_drafted", "memory.kb.libraries=[Numpy]", "memory.kb.max_chunks=20",
                     f"memory.kb.cache_dir={tmp_path / 'kb'}", "memory.experience=none")
    run(cfg, run_dir=tmp_path / "run")
    records = lines(tmp_path / "run" / "records.jsonl")
    assert len(records) == 4 and all(r["versions"]["draft"] == "draft-1" for r in records)
    drafted = [r for r in records if r["recommendation"]["trace"].get("draft_documents")]
    assert drafted, "no draft named a documented API"
    for record in drafted:
        rec = record["recommendation"]
        documents = rec["trace"]["draft_documents"]
        assert {d.split(":")[2].split("#")[0] for d in documents} <= set(rec["api_labels"])  # the draft is the reference
        assert [i["id"] for i in rec["items"][: len(documents)]] == documents[:3]
    with pytest.raises(Exception, match="draft_apis is read by the retrieval agent"):
        run(control_cfg(grading_python, "raw_rag", "memory.retrieval.draft_apis=true"), run_dir=tmp_path / "rag")
