"""experiment=community's analysis: the leave-one-contributor-out transfer table, the per-contributor table, and the
poisoning arm's table and figure."""
import json

import pandas as pd

from spark_eval.config import ReportConfig
from spark_eval.plots.community import poison_curve
from spark_eval.stats.community import poison_curves
from spark_eval.report.build import write_report
from spark_eval.stats import analyse, load_runs
from tests.fakes.runs import record, write_run

OPTIONS = ReportConfig(bootstrap=200)
FROZEN = {"memory.experience": "frozen", "memory.frozen_store": "results/community/store.sqlite"}
LIBS = ("Pandas", "Numpy", "Scipy", "Sklearn", "Pytorch")


def insight(ident, models, helpful=0, harmful=0, status="active", poison=False):
    provenance = [{"problem_id": i, "family": f"Pandas/{i}", "record_key": f"{i}/e0/r0", "epoch": 0, "round": 0,
                   "model": m, **({"poison": True} if poison else {})} for i, m in enumerate(models)]
    return {"id": ident, "kind": "insight", "library": "Pandas", "title": "t", "content": "c", "tags": [],
            "meta": {}, "provenance": provenance, "helpful": helpful, "harmful": harmful, "endorsements": 1,
            "status": status, "created_round": 0}


def advised(problem_id, model, memory, passed, items):
    """A record whose advice showed `items`: (insight id, contributors, cited)."""
    r = record(problem_id, model, memory, passed=passed, library=LIBS[problem_id % 5], origin=problem_id)
    r["recommendation"]["items"] = [{"id": i, "kind": "insight", "score": 0.1, "cited": cited, "contributors": c}
                                    for i, c, cited in items]
    return r


def community(tmp_path):
    """Member `small` benefits from `big`'s insights on 4 of its 10 problems (they fail once masked); `big` is
    not helped by `small`'s (nothing changes when they are masked)."""
    shown = [("ins:b", ["big"], True), ("ins:s", ["small"], False)]
    runs = {
        "small__community_frozen": [advised(p, "small", "community_frozen", True, shown) for p in range(10)],
        "small__community_without_big": [advised(p, "small", "community_without_big", p >= 4, shown[1:])
                                         for p in range(10)],
        "big__community_frozen": [advised(p, "big", "community_frozen", p % 2 == 0, shown) for p in range(10, 20)],
        "big__community_without_small": [advised(p, "big", "community_without_small", p % 2 == 0, shown[:1])
                                          for p in range(10, 20)],
    }
    insights = [insight("ins:b", ["big"], helpful=5, harmful=1), insight("ins:s", ["small", "big"], harmful=2),
                insight("ins:p", ["small"], harmful=4, status="retired", poison=True)]
    for name, records in runs.items():
        masked = name.split("_without_")[1:]
        write_run(tmp_path / f"{name}__s0", records, experiment="community",
                  identity={**FROZEN, "memory.mask_contributors": masked},
                  insights=insights if name.endswith("frozen") else ())
    return load_runs(str(tmp_path / "*"))


def test_the_transfer_table_pairs_each_masked_run_with_the_whole_memory(tmp_path):
    transfer = analyse(community(tmp_path), OPTIONS).transfer
    rows = {(r.beneficiary, r.contributor): r for r in transfer.itertuples()}
    assert sorted(rows) == [("big", "small"), ("small", "big")]
    helped = rows[("small", "big")]
    assert (helped.metric, helped.n, helped.families) == ("pass", 10, 10)
    assert (helped.with_mean, helped.without_mean, helped.mean_diff) == (1.0, 0.6, 0.4)
    assert helped.ci_low > 0 and helped.p_value < 0.2 and helped.without_memory == "community_without_big"
    unchanged = rows[("big", "small")]
    assert unchanged.mean_diff == 0 and unchanged.p_value == 1.0


def test_the_contributor_table_counts_insights_outcomes_and_citations(tmp_path):
    contributors = analyse(community(tmp_path), OPTIONS).contributors.set_index("contributor")
    assert contributors.loc["big"].to_dict() == {"insights": 2, "retired": 0, "poison": 0, "helpful": 5, "harmful": 3,
                                                 "shown": 30, "cited": 30, "cited_by_others": 10}
    assert contributors.loc["small"].to_dict() == {"insights": 1, "retired": 1, "poison": 1, "helpful": 0,
                                                   "harmful": 6, "shown": 30, "cited": 0, "cited_by_others": 0}


def test_the_report_writes_transfer_and_contributors_only_for_a_community(tmp_path):
    out = tmp_path / "report"
    write_report(community(tmp_path / "runs"), OPTIONS, out, {})
    transfer = pd.read_csv(out / "transfer.csv")
    assert list(transfer.columns[:8]) == ["beneficiary", "contributor", "n", "metric", "mean_diff", "ci_low",
                                          "ci_high", "p_value"]
    assert (out / "contributors.csv").is_file() and "who helped whom" in (out / "report.html").read_text()
    plain = tmp_path / "plain"
    write_run(tmp_path / "solo" / "a__none__s0", [record(p, "a", "none") for p in range(3)])
    write_report(load_runs(str(tmp_path / "solo" / "*")), OPTIONS, plain, {})
    assert not (plain / "transfer.csv").exists() and not (plain / "contributors.csv").exists()


def test_the_poison_table_and_curve_follow_poison_through_the_store(tmp_path):
    """Rate 0.5: the bad member's insight ins:p (added round 0, retired round 2) was cited once by the honest member;
    the honest store beside it has none."""
    for rate, bad in ((0.0, False), (0.5, True)):
        store = f"results/poison/store{rate}.sqlite"
        insights = [insight("ins:h", ["honest"], helpful=2)]
        ops = [{"seq": 1, "op": "ADD", "item_id": "ins:h", "round": 0, "epoch": 0, "detail": {}, "time": 0.0}]
        if bad:
            insights.append(insight("ins:p", ["bad"], harmful=4, status="retired", poison=True))
            ops += [{"seq": 2, "op": "ADD", "item_id": "ins:p", "round": 0, "epoch": 0, "detail": {}, "time": 0.0},
                    {"seq": 3, "op": "RETIRE", "item_id": "ins:p", "round": 2, "epoch": 0, "detail": {}, "time": 0.0}]
        for model in ("honest", "bad"):
            records = [advised(p, model, f"poison{rate}", p % 2 == 0,
                               [("ins:p", ["bad"], p == 1)] if bad and model == "honest" and p < 2 else [])
                       for p in range(4)]
            for r in records:
                for item in r["recommendation"]["items"]:
                    item["poison"] = True
            identity = {"memory.store": store, "memory.experience": "online", "pipeline.round_size": 2,
                        "memory.poison.rate": rate if model == "bad" else 0.0}
            path = write_run(tmp_path / f"{model}__poison{rate}__s0", records, identity=identity, insights=insights)
            (path / "memory" / "final" / "ops.jsonl").write_text("".join(json.dumps(o) + "\n" for o in ops))
    runs = load_runs(str(tmp_path / "*"))
    table = analyse(runs, OPTIONS).poison.set_index("poison_rate")
    assert table.loc[0.5, ["poisoner", "poison", "poison_active", "poison_retired", "rounds_to_retire", "shown",
                           "cited", "cited_by_honest", "honest_pass", "honest_n"]].tolist() == [
        "bad", 1, 0, 1, 2.0, 2, 1, 1, 0.5, 4]
    assert table.loc[0.5, ["uses_to_retire", "uses_to_retire_min", "uses_to_retire_max", "poison_uses",
                           "rounds_to_retire_min", "rounds_to_retire_max", "honest_insights",
                           "honest_retired"]].tolist() == [2.0, 2.0, 2.0, 2, 2.0, 2.0, 1, 0]
    assert table.loc[0.0, ["poison", "shown", "honest_pass", "honest_insights", "honest_retired"]].tolist() == [
        0, 0, 0.5, 1, 0]
    assert pd.isna(table.loc[0.0, "uses_to_retire"])
    curve = poison_curves(runs)[(0.5, "poison0.5")]
    assert curve["round"].tolist() == [0, 1, 2] and curve["poison_share"].tolist() == [0.5, 0.5, 0.0]
    assert curve["honest_pass"].tolist() == [0.5, 0.5, 0.5]
    assert "poison_curve" in poison_curve(analyse(runs, OPTIONS))
