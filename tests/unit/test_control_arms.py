"""The control arms' parts that need no model: the placebo's derangement and the oracle's summaries."""
from collections import Counter

from spark_eval.memory.spark import derangement, summary_of
from spark_eval.types import Problem


def problem(pid: int, library: str, origin: int) -> Problem:
    return Problem(pid, library, "Origin", (library, origin), f"prompt {pid}", "result = 1", "", 1)


def test_the_placebo_shows_each_problem_another_problems_advice_of_its_library_and_family():
    problems = [problem(i, "Pandas", i // 3) for i in range(12)] + [problem(20 + i, "Numpy", i) for i in range(5)]
    problems.append(problem(40, "Scipy", 0))  # alone in its library: no donor
    donors = derangement(problems, seed=0)
    by_id = {p.problem_id: p for p in problems}
    assert 40 not in donors and len(donors) == 17
    assert all(donor != pid and by_id[donor].library == by_id[pid].library for pid, donor in donors.items())
    assert all(by_id[donor].origin_family != by_id[pid].origin_family for pid, donor in donors.items())
    assert Counter(donors.values()).most_common(1)[0][1] == 1  # a permutation: every problem a donor once
    assert derangement(problems, seed=0) == donors and derangement(problems, seed=1) != donors


def test_one_family_alone_still_gets_another_problem():
    problems = [problem(i, "Numpy", 0) for i in range(3)]  # every donor is of the same family: the fewest possible
    donors = derangement(problems, seed=3)
    assert sorted(donors) == [0, 1, 2] and all(donor != pid for pid, donor in donors.items())


def test_the_oracle_takes_the_first_sentence_of_an_overview():
    overview = "numpy.argsort(a, axis=-1)\n\nReturns the indices that would sort an array. Perform an\nindirect sort.\n\nMore."
    assert summary_of(overview) == "Returns the indices that would sort an array."
    assert summary_of("numpy.thing()") == ""
    assert summary_of("f()\n\n" + "word " * 100, cap=20).endswith("…")
