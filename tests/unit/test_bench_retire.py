"""bench/bench_retire.py's replay: when each retirement rule would first retire an insight."""
from bench.bench_retire import replay
from spark_eval.records import Record
from tests.fakes.runs import record


def used(problem_id, passed, insight="ins:a"):
    r = record(problem_id, "m", "spark", passed=passed)
    r["recommendation"]["items"] = [{"id": insight, "kind": "insight", "score": 0.1, "cited": True}]
    return Record.from_json(r)


def test_paired_harm_counts_only_the_passes_turned_into_failures():
    """Five uses of ins:a: two destroy problems the coder solved alone (0, 1), two fail where it failed anyway,
    one passes where it passed anyway; the base-rate rule sees five failures out of five at a stream fail rate
    near 1 and retires nothing."""
    records = [used(p, passed=False) for p in range(4)] + [used(4, passed=True)]
    before = {("m", 0): True, ("m", 1): True, ("m", 2): False, ("m", 3): False, ("m", 4): True}
    uses, retired = replay(records, before)
    assert uses == {"ins:a": 5}
    assert retired[("paired", 1)] == {"ins:a": 1} and retired[("paired", 2)] == {"ins:a": 2}
    assert retired[("paired", 3)] == {}
    assert retired[("base_rate", 1)] == {}  # every use failed as the stream did: no excess
    assert ("paired", 1) not in replay(records, {})[1]  # without a baseline, only the base-rate rule
