"""The dry run's plan against a run's real calls: scripted coder, agent, learner and judges through the real runner;
the calls each role made, read from the records (and the learner's from the manifest's ledger), are the plan's."""
import json

import pytest
from omegaconf import OmegaConf, open_dict

from spark_eval.pipeline import run
from spark_eval.pipeline.plan import plan_run
from tests.conftest import compose_config

IDS = [291, 292, 293, 294]
CODER_REPLY = "result = a.shape"
AGENT_REPLY = json.dumps({"intent": "shape of an array", "library": "Numpy", "queries": ["array shape", "nan"],
                          "avoid": "", "advice": "Use the array's attributes.", "cited": [1]})
LEARNER_REPLY = json.dumps({"insights": [{"library": "Numpy", "api": ["numpy.isnan"], "title": "NaN handling",
                                          "content": "np.isnan gives a mask of NaNs.", "applies_when": "arrays with NaN"}]})
QUALITY_REPLY = json.dumps({"flaw": "none", "score": 4})
HELPFULNESS_REPLY = json.dumps({"check": "names the right attribute", "band": "GOOD",
                                "criteria": dict.fromkeys(["completeness", "effectiveness", "generalization",
                                                           "relevance", "explainability"], 4)})


def scripted(name, reply):
    return OmegaConf.create({"_target_": "tests.fakes.scripted.ScriptedModel", "name": name, "replies": [reply]})


def config(tmp_path, grading_python, memory):
    """Rounds of 3 and 1 problems, so the learner's calls (4 traces a call) are not one per problem."""
    kb = ("memory.kb.libraries=[Numpy]", "memory.kb.max_chunks=30", f"memory.kb.cache_dir={tmp_path / 'kb'}")
    cfg = compose_config(
        f"memory={memory}", "judge=local", f"dataset.ids=[{','.join(map(str, IDS))}]", "pipeline.round_size=3",
        f"execution.python={grading_python}", "execution.preload=[numpy]", "pipeline.progress=false",
        f"run_dir={tmp_path / 'run'}", f"paths.results={tmp_path / 'results'}", *(kb if memory != "none" else ()))
    with open_dict(cfg):
        cfg.model = scripted("coder", CODER_REPLY)
        cfg.judge.models.quality = scripted("quality", QUALITY_REPLY)
        cfg.judge.models.helpfulness = scripted("helpfulness", HELPFULNESS_REPLY)
        if memory != "none":
            cfg.memory.embedder = OmegaConf.create({"_target_": "tests.fakes.embedder.HashEmbedder"})
            cfg.memory.agent_model = scripted("agent", AGENT_REPLY)
            cfg.memory.learner_model = scripted("learner", LEARNER_REPLY)
    return cfg


def calls_made(run_dir):
    """Per role, the model calls the run made (answered by the cache or not), from its records and manifest."""
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert records and not any(r["error"] for r in records)

    def made(usage):
        return (usage or {}).get("calls", 0) + (usage or {}).get("cached", 0)

    learner = json.loads((run_dir / "manifest.json").read_text())["ledger"].get("learner")
    return {"coder": sum(1 for r in records if r["completion"]),
            "agent": sum(made(r["recommendation"]["trace"].get("usage")) for r in records if r["recommendation"]),
            "learner": made(learner),
            "judge": sum(made(j["usage"]) for r in records for j in r["judgments"])}


@pytest.mark.parametrize("memory", ["none", "spark"])
def test_the_plan_counts_the_calls_a_run_makes_per_role(tmp_path, grading_python, memory):
    cfg = config(tmp_path, grading_python, memory)
    plan = plan_run(cfg)
    planned = {role: tally.calls for role, tally in plan.components.items()}
    run(cfg, run_dir=tmp_path / "run")
    assert planned == calls_made(tmp_path / "run")
    if memory == "spark":  # each role called, the learner once per round (3 traces, then 1), not once per problem
        assert planned == {"coder": 4, "agent": 8, "learner": 2, "judge": 8}
    else:
        assert planned == {"coder": 4, "agent": 0, "learner": 0, "judge": 4}
