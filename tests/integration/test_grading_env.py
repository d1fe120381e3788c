"""Reference and wrong answers through the real executor in the pinned grading environment, hostile ones under
both isolations."""
import stat
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from spark_eval.config import PROJECT_ROOT
from spark_eval.data.ds1000 import build_program
from spark_eval.execution import ProcessSandbox
from spark_eval.types import LIBRARY_MODULES
from tests.conftest import DS1000, compose_config
from tests.unit.test_sandbox import FORGER, FORGERIES, ISOLATIONS, isolated_sandbox

ONE_PER_LIBRARY = [0, 291, 511, 666, 711, 817, 932]


@pytest.fixture(scope="module", params=ISOLATIONS)
def isolated_grading(request, grading_sandbox, grading_python):
    """The grading sandbox under each isolation (bubblewrap's is the session's, when `auto` chose it); process
    isolation is skipped with the reason where its uid cannot use the grading environment."""
    if request.param == grading_sandbox.isolation == "bwrap":
        yield grading_sandbox
        return
    cfg = compose_config(f"execution.python={grading_python}").execution
    with isolated_sandbox(request.param, [grading_python], mode="fork", workers=2, preload=list(cfg.preload),
                          seaborn_data=cfg.seaborn_data) as sandbox:
        yield sandbox


def grade(sandbox, problem, answer):
    return sandbox.run(build_program(problem.code_context, answer), (LIBRARY_MODULES[problem.library],))


def without_last_line(code):
    lines = [line for line in code.rstrip("\n").split("\n")]
    return "\n".join(lines[:-1]) + "\n"


def test_grading_environment_has_the_official_pins(grading_sandbox):
    freeze = set(grading_sandbox.environment.freeze)
    for pin in ("numpy==1.26.4", "pandas==1.5.3", "scipy==1.12.0", "scikit-learn==1.4.0", "matplotlib==3.8.4",
                "seaborn==0.13.2", "statsmodels==0.14.1", "xgboost==2.0.3", "gensim==4.3.2", "tensorflow-cpu==2.16.1"):
        assert pin in freeze
    assert any(line.startswith("torch==2.13.0") for line in freeze)


def test_grading_environment_is_the_locked_one(grading_sandbox):
    """Setup installs requirements/grading.lock's every pin (pip's own too): an environment made again has the same
    freeze, so the same grading_env hash, and the runs graded in the first resume in it."""
    lock = PROJECT_ROOT / "requirements" / "grading.lock"
    pins = {line for line in lock.read_text().splitlines() if line and not line.startswith("#")}
    assert set(grading_sandbox.environment.freeze) == pins


def test_the_manifest_names_the_grading_interpreter_from_the_project_root(grading_sandbox):
    python = grading_sandbox.environment.python
    shown = grading_sandbox.environment.to_json()["python"]
    if python.startswith(str(PROJECT_ROOT) + "/"):  # setup's environment: .venvs/grading
        assert shown == python[len(str(PROJECT_ROOT)) + 1:]
    else:  # an interpreter of the machine (execution.python=...) is named as it is
        assert shown == python


@pytest.mark.parametrize("problem_id", ONE_PER_LIBRARY)
def test_reference_passes_and_a_broken_answer_fails(isolated_grading, problems, problem_id):
    """Under either isolation: as a sandbox uid, the program imports whatever the server did not preload."""
    problem = problems[problem_id]
    with ThreadPoolExecutor(2) as pool:
        good, bad = pool.map(lambda a: grade(isolated_grading, problem, a),
                             [problem.reference_code, without_last_line(problem.reference_code)])
    assert good.status == "passed", (good.error_type, good.stderr_tail)
    assert bad.status == "failed", (bad.error_type, bad.stderr_tail)


@pytest.mark.parametrize(
    "problem_id, bad_import, error_type",
    [
        (291, "from numpy import no_such_api", "ImportError"),
        (0, "from pandas.nope import x", "ModuleNotFoundError"),
        (817, "import sklearn.nope", "ModuleNotFoundError"),
        (817, "from sklearn.externals import joblib", "ImportError"),
        (711, "from scipy.stats import no_such_test", "ImportError"),
        (666, "from tensorflow import no_such_api", "ImportError"),
        (932, "import torch.nope", "ModuleNotFoundError"),
        (511, "from matplotlib import nope", "ImportError"),
        (0, "import numpy_not_installed_anywhere", "ModuleNotFoundError"),
    ],
)
def test_a_bad_import_in_an_answer_is_the_answers_failure(grading_sandbox, problems, problem_id, bad_import,
                                                         error_type):
    problem = problems[problem_id]
    result = grade(grading_sandbox, problem, bad_import + "\n" + problem.reference_code)
    assert (result.status, result.error_type) == ("failed", error_type), result.stderr_tail


WARM_FORGERIES = ["every descriptor, then os._exit", "from a thread", "relaying its own harness's failing report",
                  "with the last token-sized value in gc and frames"]


@pytest.mark.parametrize("forgery", WARM_FORGERIES)
def test_a_forged_pass_fails_in_the_warm_server(isolated_grading, problems, forgery):
    """The forging programs of the unit tests, as answers, in a server with every grading library imported."""
    result = grade(isolated_grading, problems[291], FORGER + textwrap.dedent(FORGERIES[forgery]))
    assert result.status == "failed", (result.error_type, result.stderr_tail)


def test_the_dataset_is_not_visible_beside_the_seaborn_data(isolated_grading):
    """Under bubblewrap the reference solutions are not there; process isolation cannot hide a file other users
    may read, so there it is readable exactly when its description says the checkout is open."""
    folder = str(DS1000.parent)
    listed = f"import os\nassert os.listdir({folder!r}) == ['seaborn-data'], os.listdir({folder!r})\n"
    if isolated_grading.isolation == "bwrap":
        program, readable = listed, False
    else:
        described = " ".join(isolated_grading.describe()["exposes"])
        program, readable = "", "is open to them" in described and bool(DS1000.stat().st_mode & stat.S_IROTH)
    program += textwrap.dedent(f"""
    try:
        open({str(DS1000)!r}, 'rb')
        readable = True
    except OSError:
        readable = False
    assert readable == {readable}, readable
    """)
    result = isolated_grading.run(program)
    assert result.status == "passed", result.stderr_tail


def test_seaborn_dataset_problem_runs_offline(grading_sandbox, problems):
    result = grade(grading_sandbox, problems[519], problems[519].reference_code)
    assert result.status == "passed", result.stderr_tail


def test_network_problem_is_an_infra_error_not_a_failure(grading_sandbox, problems):
    result = grade(grading_sandbox, problems[819], problems[819].reference_code)
    assert result.status == "infra_error", result.stderr_tail


def test_strict_mode_agrees(grading_python, problems):
    with ProcessSandbox(grading_python, mode="strict", workers=1) as sandbox:
        assert grade(sandbox, problems[932], problems[932].reference_code).status == "passed"
        assert grade(sandbox, problems[291], "result = 0\n").status == "failed"
