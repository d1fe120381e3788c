"""PandasEval/NumpyEval as a benchmark: loading, ids and families, the hash check, and joining answers to prompts."""
import gzip
import shutil

import pytest
from omegaconf import OmegaConf

from spark_eval.data import DatasetError, build_benchmark
from spark_eval.data.humaneval import continued, fenced_code
from spark_eval.records import Recommendation
from tests.conftest import compose_config

FUNCTION = "import pandas as pd\n\ndef first_rows(df, n):\n    # return the first n rows\n    return "
FUNCTION_OPEN = "import pandas as pd\n\ndef first_rows(df, n):\n    # return the first n rows\n"
FRAGMENT = "import numpy as np\n\na = np.arange(4)\n# the sum of a\nresult ="


def pne(**overrides):
    cfg = compose_config("benchmark=pandas_numpy_eval").dataset
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return build_benchmark(cfg)


def test_both_files_load_as_202_problems_with_their_task_ids_and_own_families():
    benchmark = pne()
    problems = benchmark.problems()
    assert len(problems) == 202 and [p.problem_id for p in problems] == list(range(202))
    assert problems[0].task_id == "PandasEval/0" and problems[101].task_id == "NumpyEval/0"
    assert {p.library for p in problems[:101]} == {"Pandas"} and {p.library for p in problems[101:]} == {"Numpy"}
    assert len({p.origin_family for p in problems}) == 202 and {p.perturbation_type for p in problems} == {"Origin"}
    assert problems[2].code_context.rstrip().endswith("check()")  # a fragment: check() takes no argument
    assert problems[0].code_context.rstrip().endswith("check(drop_rows_col_nan)")
    assert benchmark.libraries == ("Pandas", "Numpy") and benchmark.data_hash() == pne().data_hash()


def test_selection_uses_the_same_keys_as_ds1000():
    chosen = pne(**{"limit": 6}).select()
    assert [p.library for p in chosen].count("Pandas") == 3 and len(chosen) == 6
    assert [p.task_id for p in pne(ids=[101, 3]).select()] == ["PandasEval/3", "NumpyEval/0"]
    with pytest.raises(DatasetError, match="unknown names .'Scipy'.*choose from .'Pandas', 'Numpy'"):
        pne(libraries=["Scipy"]).select()


def test_an_edited_data_file_is_refused_by_its_sha256sums(tmp_path):
    folder = tmp_path / "pne"
    shutil.copytree(compose_config().paths.data + "/pandas_numpy_eval", folder)
    rows = gzip.decompress((folder / "NumpyEval.jsonl.gz").read_bytes()).replace(b"numpy", b"numpz", 1)
    (folder / "NumpyEval.jsonl.gz").write_bytes(gzip.compress(rows))
    with pytest.raises(DatasetError, match="NumpyEval.jsonl.gz has sha256 .* SHA256SUMS pins; restore it"):
        pne(path=str(folder)).problems()
    with pytest.raises(DatasetError, match="benchmark folder not found: .*set dataset.path="):
        pne(path=str(tmp_path / "nowhere")).problems()


@pytest.mark.parametrize("prompt, answer, expected_tail", [
    (FUNCTION, "df.head(n)", "    return df.head(n)"),  # a true continuation
    (FUNCTION, "return df.head(n)", "    return df.head(n)"),  # restates the line it completes
    (FUNCTION_OPEN, "return df.head(n)", "    return df.head(n)"),  # a body written from column 0
    (FUNCTION_OPEN, "\nx = df.head(n)\nreturn x", "    x = df.head(n)\n    return x"),  # a blank first line
    (FUNCTION, "def first_rows(df, n):\n    return df.head(n)", "def first_rows(df, n):\n    return df.head(n)"),
    (FRAGMENT, " a.sum()", "result = a.sum()"),
    (FRAGMENT, "result = a.sum()", "result =result = a.sum()"),  # chained assignment: the same value
    (FRAGMENT, "import numpy as np\na = np.arange(4)\nresult = a.sum()", "result = a.sum()"),
])
def test_an_answer_is_joined_to_its_prompt_by_the_first_way_that_compiles(prompt, answer, expected_tail):
    program = continued(prompt, answer, "first_rows" if "def" in prompt else None)
    compile(program, "<p>", "exec")
    assert program.rstrip().endswith(expected_tail)
    assert program.startswith("import ")
    assert program.count("def first_rows") <= 1


def test_an_answer_that_never_compiles_is_kept_as_the_plain_continuation():
    assert continued(FRAGMENT, " a.sum(", None) == FRAGMENT + " a.sum("


def test_fenced_code_and_the_coder_conversation():
    assert fenced_code("Here:\n```python\nx = 1\n```\nDone.") == "x = 1\n"
    assert fenced_code("```\nx = 2") == "x = 2" and fenced_code("x = 3") == "x = 3"
    assert fenced_code("df.head(n)\n```") == "df.head(n)\n"  # a stray closing fence keeps the code before it
    assert fenced_code("Here it is:\n```python\nx = 4") == "x = 4"  # an unclosed opening fence
    benchmark = pne()
    problem = benchmark.problems()[0]
    messages = benchmark.coder_messages(problem, Recommendation(text="use dropna"))
    assert problem.prompt.rstrip() in messages[1]["content"] and "use dropna" in messages[1]["content"]
    code, program = benchmark.program(problem, "```python\ndf.dropna(subset=[col_name])\n```")
    assert code == "df.dropna(subset=[col_name])\n" and program.rstrip().endswith("check(drop_rows_col_nan)")
    assert set(benchmark.versions()) == {"postprocess", "program", "coder"}
