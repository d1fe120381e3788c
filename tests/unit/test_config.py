import importlib.util
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate

from spark_eval.data import build_benchmark
from spark_eval.judge.panel import build_panel
from spark_eval.models.pool import ModelPool
from spark_eval.memory import build_memory
from spark_eval.models.base import ModelConfigError

from spark_eval.config import PROJECT_ROOT, experiment_sweep
from tests.conftest import CONF_DIR, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, tmp_path, monkeypatch):
    """Every run of every experiment (each point of its sweep) builds its models, memory and judges
    without calling a model; the keys only have to be set, not valid."""
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(key, "not-a-real-key")
    runs = experiment_sweep(experiment)
    for overrides in runs:
        cfg = compose_config(f"experiment={experiment}", f"paths.results={tmp_path}", *overrides)
        assert cfg.experiment_name.startswith(experiment)  # transfer_learn: the transfer experiment's learning run
        pool = ModelPool()
        try:
            assert pool.get(cfg.model).name == cfg.model.name
        except InstantiationException as e:  # open-weight models need vLLM and a GPU, which this machine may lack
            assert isinstance(e.__cause__, ModelConfigError) and "pip install vllm" in str(e.__cause__)
            assert importlib.util.find_spec("vllm") is None
        memory = build_memory(cfg.memory, pool, tmp_path / "run", build_benchmark(cfg.dataset))
        assert memory.name == cfg.memory.name and isinstance(memory.versions, dict)
        assert build_panel(cfg.judge, pool) is not None
    lines = (CONF_DIR / "experiment" / f"{experiment}.yaml").read_text().splitlines()
    assert lines[1] == f"# python -m spark_eval experiment={experiment}"


def test_paper_experiments_sweep_the_papers_conditions():
    main = {" ".join(o) for o in experiment_sweep("paper_main")}
    assert len(main) == 7 and "condition=reference" in main
    memories = {compose_config("experiment=paper_main", *o).memory.name for o in experiment_sweep("paper_main")}
    assert memories == {"none", "spark"}
    leaky = compose_config("experiment=paper_main", "condition=claude_haiku_4_5__spark_paper").memory
    assert (leaky.experience, leaky.exclude_family, leaky.agent_model.name) == ("paper_synthetic", False, "gpt-4o")
    ablations = [o[0] for o in experiment_sweep("paper_ablations")]
    assert set(ablations) == {f"memory={m}" for m in ("none", "spark", "placebo", "oracle", "docs_only",
                                                        "experience_only", "raw_rag", "full_playbook")}
    assert ablations.index("memory=spark") < ablations.index("memory=placebo")  # its advice is the placebo's
    placebo = compose_config("experiment=paper_ablations", "memory=placebo").memory
    assert placebo.placebo.source.endswith("/paper_ablations/qwen3-coder-30b__spark__s0")
    online = compose_config("experiment=online_learning")
    assert (online.pipeline.epochs, online.pipeline.shuffle, online.memory.experience) == (3, True, "online")
    assert len(experiment_sweep("online_learning")) == 3


def test_experiment_file_starts_with_global_package():
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        assert path.read_text().startswith("# @package _global_\n"), path


@pytest.mark.parametrize(
    "override, message",
    [
        ("dataset.limt=3", "Key 'limt' not in 'DatasetConfig'"),
        ("execution.timeot_s=3", "Key 'timeot_s' not in 'ExecutionConfig'"),
        ("dataset.limit=many", "Value 'many' of type 'str' could not be converted to Integer"),
        ("model=gpt9", "Could not find 'model/gpt9'"),
        ("seeed=1", "Key 'seeed' not in 'Config'"),
    ],
)
def test_config_mistakes_fail_at_compose_time_naming_the_key(override, message):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(override)
    assert message in str(err.value) + str(err.value.__cause__)


MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_with_a_name_and_a_target(model):
    cfg = compose_config(f"model={model}")
    assert cfg.model.name and cfg.model._target_.startswith("spark_eval.models.")


def test_api_models_stop_before_any_call_when_their_key_is_missing(monkeypatch, tmp_path):
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    for model, variable in (("gpt5_codex", "OPENAI_API_KEY"), ("claude_haiku_4_5", "ANTHROPIC_API_KEY"),
                            ("claude_3_7_sonnet", "ANTHROPIC_API_KEY"), ("gemini_2_5_pro", "GEMINI_API_KEY")):
        with pytest.raises(Exception, match=f"set the environment variable {variable}"):
            instantiate(compose_config(f"model={model}", f"paths.results={tmp_path}").model)


def test_answers_model_needs_a_path():
    cfg = compose_config("model=answers")
    with pytest.raises(Exception, match="path"):
        instantiate(cfg.model)


def test_run_directory_is_named_after_experiment_model_memory_and_seed():
    cfg = compose_config("experiment=reference", "seed=3")
    assert cfg.experiment_name == "reference"
    assert (cfg.model.name, cfg.memory.name, cfg.seed) == ("reference", "none", 3)
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = compose(config_name="config", overrides=["experiment=reference", "seed=3"], return_hydra_config=True)
    assert full.hydra.run.dir.endswith("results/reference/reference__none__s3")


def test_the_paired_poison_experiment_weighs_uses_against_its_own_baseline_runs():
    """experiment=community_poison_paired: its learning jobs judge harm against the no-memory runs its sweep makes
    first, for both members (the run directories the baseline jobs write)."""
    runs = experiment_sweep("community_poison_paired")
    conditions = [dict(o.split("=", 1) for o in overrides)["condition"] for overrides in runs]
    assert conditions == ["community_none"] * 2 + ["community_poison_paired"] * 2
    made = set()
    for overrides in runs:
        cfg = compose_config("experiment=community_poison_paired", *overrides)
        if cfg.memory.name == "none":
            made.add(f"{cfg.paths.results}/community_poison_paired/{cfg.model.name}__none__s{cfg.seed}")
        else:
            assert (cfg.memory.learning.harm, cfg.memory.kb.max_chunks, cfg.memory.poison.rate > 0) == (
                "paired", 600, cfg.model.name == cfg.community.poisoner)
            assert cfg.memory.poison.past_screen is True  # its poison reaches the store; the screen is not tested
            baseline = set(cfg.memory.learning.baseline)
    assert made == baseline


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "spark_eval", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=timeout)


def test_help_lists_the_config_groups():
    out = run_cli("--help").stdout
    for group in ("benchmark", "model", "memory", "judge", "execution", "pipeline", "experiment", "paths"):
        assert f"\n{group}: " in out


def test_bad_input_stops_with_one_line_naming_the_fix(tmp_path):
    result = run_cli("dataset.path=/nonexistent/ds.jsonl.gz", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "set dataset.path=" in errors[0]
    assert not (tmp_path / "records.jsonl").exists()
    result = run_cli("execution.python=/nonexistent/bin/python", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "run `make setup` or set execution.python=" in result.stderr + result.stdout
    result = run_cli("stage=nonsense", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "stage=nonsense is unknown" in result.stderr + result.stdout


def test_judge_panels_compose_and_the_paper_panel_needs_its_keys(monkeypatch, tmp_path):
    from spark_eval.judge.panel import build_panel

    for name, models in (("local", {"qwen2.5-coder-1.5b"}), ("local_small", {"qwen2.5-coder-0.5b"}),
                         ("paper", {"gemini-2.5-pro", "claude-3.7-sonnet"})):
        cfg = compose_config(f"judge={name}", f"paths.results={tmp_path}")
        assert {m.name for m in cfg.judge.models.values()} == models
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(Exception, match="set the environment variable GEMINI_API_KEY"):
        build_panel(compose_config("judge=paper", f"paths.results={tmp_path}").judge)
    panel = build_panel(compose_config("judge=local", f"paths.results={tmp_path}").judge)
    assert [j.kind for j in panel] == ["quality", "helpfulness"] and panel[0].model is panel[1].model


def test_memory_configs_that_cannot_work_are_refused_when_built(tmp_path):
    from spark_eval.memory.base import MemoryConfigError

    cfg = compose_config("memory=spark_small", "memory.experience=frozen", f"paths.results={tmp_path}")
    with pytest.raises(InstantiationException) as caught:
        build_memory(cfg.memory, ModelPool(), tmp_path / "run", build_benchmark(cfg.dataset))
    assert isinstance(caught.value.__cause__, MemoryConfigError) and "memory.frozen_store=" in str(caught.value.__cause__)
    cfg = compose_config("memory=spark_small", "memory._target_=spark_eval.memory.spark.SparkMemory")
    with pytest.raises(InstantiationException, match="gives no advice; use spark_eval.memory.spark.AgentMemory"):
        build_memory(cfg.memory, ModelPool(), tmp_path / "run", build_benchmark(cfg.dataset))
    cfg = compose_config("memory=spark_small", "memory.mask_contributors=[qwen2.5-coder-0.5b]")
    with pytest.raises(InstantiationException, match="mask_contributors hides insights of a frozen memory"):
        build_memory(cfg.memory, ModelPool(), tmp_path / "run", build_benchmark(cfg.dataset))
    cfg = compose_config("memory=spark_small", "memory.poison.rate=1.5")
    with pytest.raises(InstantiationException, match=r"memory.poison.rate=1.5 is not a share"):
        build_memory(cfg.memory, ModelPool(), tmp_path / "run", build_benchmark(cfg.dataset))


def test_submitit_slurm_launcher_composes_for_a_cluster_community():
    """`hydra/launcher=submitit_slurm` on the community experiment: Slurm jobs that the experiment's timeout and
    the sweeper's phases apply to (the cluster command in docs/memory.md)."""
    from hydra import compose, initialize_config_dir

    overrides = ["experiment=community", "condition=community_learn", "model=local", "hydra/launcher=submitit_slurm",
                 "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1", "hydra.launcher.max_num_timeout=3"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    launcher = full.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.timeout_min, launcher.max_num_timeout, full.hydra.sweeper.max_batch_size) == (720, 3, 2)
    assert full.pipeline.share == "0/2" and full.memory.store.endswith("results/community/store.sqlite")


def test_postgres_store_url_that_cannot_be_reached_is_one_line_at_the_command_line(tmp_path):
    result = run_cli("memory=spark_small", "memory.store=postgresql://spark:hunter2@127.0.0.1:1/spark",
                     f"hydra.run.dir={tmp_path}")
    errors = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if "ERROR" in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "memory store postgresql://spark:***@127.0.0.1:1/spark cannot be reached" in errors[0]
    assert "hunter2" not in result.stderr + result.stdout and not (tmp_path / "records.jsonl").exists()
