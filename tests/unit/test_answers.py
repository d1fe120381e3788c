import json

import pytest

from spark_eval.data.ds1000 import postprocess
from spark_eval.models.replay import AnswersError, read_answers


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("result = df.sum()\n</code>\nEND SOLUTION", "result = df.sum()\n"),
        ("```python\nresult = 1\n```\nThis works because...", "\nresult = 1\n"),
        ("<code>\nresult = 2\n</code>", "\nresult = 2\n"),
        ("result = 3\nEND SOLUTION\nmore text", "result = 3"),
        ("    result = df.where(df > 0)\n    return result\n", "    result = df.where(df > 0)\n    return result\n"),
        (["result = 4\n</code>", "ignored"], "result = 4\n"),
        ("```\nplain fence\n```", ""),
        ("plt.plot(x, y)\n# SOLUTION END\n", "plt.plot(x, y)\n# SOLUTION END\n"),
    ],
)
def test_postprocess_follows_the_official_steps(answer, expected):
    assert postprocess(answer) == expected


def test_function_body_references_keep_their_indentation(problems):
    bodies = [p for p in problems if p.prompt.rstrip().endswith("### BEGIN SOLUTION")]
    assert len(bodies) == 71
    for p in bodies:
        assert postprocess(p.reference_code) == p.reference_code


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answers_file_with_ids_and_in_problem_order(tmp_path):
    keyed = read_answers(write_lines(tmp_path / "a.jsonl", [{"id": 5, "code": "x=1"}, {"id": 2, "code": "y"}]))
    assert keyed == {5: "x=1", 2: "y"}
    ordered = read_answers(write_lines(tmp_path / "b.jsonl", [{"code": "a"}, {"code": ["b", "c"]}]))
    assert ordered == {0: "a", 1: ["b", "c"]}


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": 1, "code": "a"}, {"code": "b"}], r"c.jsonl:2: mixes lines"),
        ([{"id": 1, "code": "a"}, {"id": 1, "code": "b"}], r"c.jsonl:2: a second answer for problem 1"),
        ([{"id": 1, "answer": "a"}], r"c.jsonl:1: each line needs \"code\""),
    ],
)
def test_bad_answers_files_name_the_line(tmp_path, rows, message):
    with pytest.raises(AnswersError, match=message):
        read_answers(write_lines(tmp_path / "c.jsonl", rows))


def test_answers_file_that_is_not_json(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"code": "a"}\nnot json\n')
    with pytest.raises(AnswersError, match="d.jsonl:2: not valid JSON"):
        read_answers(path)
