import pytest

from spark_eval.execution import ProcessSandbox
from tests.conftest import compose_config


@pytest.fixture(scope="session")
def grading_sandbox(grading_python):
    """The default fork-mode sandbox in the pinned grading environment, as `experiment=reference` builds it."""
    cfg = compose_config(f"execution.python={grading_python}").execution
    with ProcessSandbox(
        python=cfg.python, mode="fork", workers=2, preload=list(cfg.preload), seaborn_data=cfg.seaborn_data
    ) as sandbox:
        yield sandbox
