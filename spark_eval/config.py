"""Typed schemas for every config group, registered in Hydra's ConfigStore so typos fail at compose time."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DatasetConfig:
    """The benchmark (`benchmark=<name>` picks its file in conf/benchmark/, which fills this node)."""

    _target_: str = "spark_eval.data.ds1000.DS1000"  # the Benchmark class
    name: str = "ds1000"
    source: str = "file"  # file | hub
    path: str = MISSING
    sha256: Optional[str] = None  # the file's content hash, checked before reading (None: not checked)
    hub_id: str = "xlangai/DS-1000"
    hub_revision: str = "4416080ac5cb80bdf7576aefb8f9a0b4d5426a44"
    libraries: list[str] = field(default_factory=list)
    perturbations: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    limit: Optional[int] = None
    subset_seed: int = 0
    files: dict[str, str] = field(default_factory=dict)  # HumanEval layout: {library: file in `path`}


@dataclass
class ModelConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class ReferenceModelConfig(ModelConfig):
    _target_: str = "spark_eval.models.replay.ReferenceAnswers"
    name: str = "reference"


@dataclass
class AnswersModelConfig(ModelConfig):
    _target_: str = "spark_eval.models.replay.AnswersFile"
    name: str = "answers"
    path: str = MISSING


@dataclass
class ParamsConfig:
    temperature: Optional[float] = 0.0
    max_tokens: int = 1024
    reasoning_effort: Optional[str] = None


@dataclass
class PriceConfig:
    """USD per million tokens of each part a provider bills apart (models/ledger.py: `price_usd`)."""

    input: float = 0.0  # prompt tokens
    cached_input: Optional[float] = None  # prompt tokens read from the provider's prompt cache (None: at `input`)
    cache_write: Optional[float] = None  # prompt tokens written to it (Anthropic's 5-minute writes; None: at `input`)
    output: float = 0.0  # output tokens, thinking included


@dataclass
class ChatModelConfig(ModelConfig):
    _convert_: str = "all"
    model: str = MISSING
    params: ParamsConfig = field(default_factory=ParamsConfig)
    price: PriceConfig = field(default_factory=PriceConfig)
    concurrency: int = 4
    max_attempts: int = 3  # a remote call's attempts, the first included (models/retry.py)
    backoff_s: float = 1.0
    timeout_s: float = 300.0
    cache_path: Optional[str] = "${paths.cache}/responses.sqlite"
    reasoning: Optional[bool] = None  # thinks before it answers, unasked (None: as its provider); what dry_run counts


@dataclass
class OpenAIModelConfig(ChatModelConfig):
    _target_: str = "spark_eval.models.openai.OpenAIModel"
    api: str = "chat"
    base_url: Optional[str] = None
    api_key_env: Optional[str] = "OPENAI_API_KEY"
    max_tokens_field: str = "max_tokens"
    json_mode: str = "json_schema"


@dataclass
class AnthropicModelConfig(ChatModelConfig):
    _target_: str = "spark_eval.models.anthropic.AnthropicModel"
    base_url: Optional[str] = None
    api_key_env: str = "ANTHROPIC_API_KEY"


@dataclass
class WeightsConfig:
    filename: str = MISSING
    sha256: Optional[str] = MISSING  # null with `path`: the file's own hash is used (and keys its replies)
    size: int = MISSING
    parts: list[str] = field(default_factory=list)
    packages: str = ""
    hub_repo: Optional[str] = None
    path: Optional[str] = None


@dataclass
class VLLMModelConfig(ChatModelConfig):
    _target_: str = "spark_eval.models.vllm.VLLMModel"
    tensor_parallel_size: int = 1
    max_model_len: Optional[int] = None
    gpu_memory_utilization: float = 0.9
    batch_window_s: float = 0.05
    max_batch: int = 1024  # DS-1000 whole: a round (or a stream without memory) goes as one batch
    seed: int = 0
    concurrency: int = 1024  # no fewer than max_batch, or batches hold only this many
    timeout_s: float = 3600.0  # a request waits for its whole batch (and any batch before it)
    # GGUF weights the engine loads, converted once to a Hugging Face folder in hf_dir (None: `model` is loaded)
    weights: Optional[WeightsConfig] = None
    weights_dir: str = "${paths.cache}/models"
    hf_dir: str = "~/.cache/spark_eval/hf"  # per machine, like the llama.cpp build
    engine_args: dict[str, Any] = field(default_factory=dict)  # further keyword arguments of vLLM's LLM
    device: str = "gpu"  # gpu | cpu: which vLLM build it needs (the dry run and a missing vLLM say so)


@dataclass
class ModelSpeedConfig:
    """How fast an in-process model computes on this kind of machine: what `dry_run=true` counts its hours with.
    Measured by bench/bench_local_model.py (its last line); result-neutral."""

    prompt_tok_s: float = MISSING
    output_tok_s: float = MISSING


@dataclass
class LocalModelConfig(ChatModelConfig):
    _target_: str = "spark_eval.models.local.LocalModel"
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    weights_dir: str = "${paths.cache}/models"
    n_ctx: int = 8192
    n_threads: int = 2
    flash_attn: bool = True  # llama.cpp's fused attention: about 15% faster prompt processing on 2 cores
    # requests taken at once; they generate one at a time (one lock for every in-process model), but the runner keeps
    # as many problems in flight, so retrieval and the sandbox run while the model generates (the demo's Spark run:
    # 401 s at 4 in flight, 459 s at 2)
    concurrency: int = 4
    timeout_s: float = 1800.0
    speed: Optional[ModelSpeedConfig] = None  # None: the dry run counts no compute time for it


@dataclass
class MemoryConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class KnowledgeBaseConfig:
    python: str = "${execution.python}"  # the grading interpreter: the KB documents the versions graded against
    libraries: list[str] = field(
        default_factory=lambda: ["Numpy", "Pandas", "Matplotlib", "Scipy", "Sklearn", "Pytorch", "Tensorflow"])
    cache_dir: str = "${paths.cache}/kb"
    max_chunks: Optional[int] = None  # per library (None: all); small values are for tests
    # qualified-name globs left out: TensorFlow's 4,470 generated op wrappers and 2,940 chunks of its v1 API did not
    # help retrieval (bench/bench_recall.py), nor did 2,361 bare signatures of undocumented objects
    exclude: list[str] = field(default_factory=lambda: ["tensorflow.raw_ops.*", "tensorflow.compat.v1.*"])
    signature_only: bool = False  # keep overviews of objects without a docstring (only a name and a signature)
    dense: str = "overviews"  # which chunks get a vector: overviews (name + summary) | all (BM25 covers every chunk)
    rrf_k: int = "${memory.retrieval.rrf_k}"  # type: ignore[assignment]
    candidates: int = "${memory.retrieval.candidates}"  # type: ignore[assignment]
    dense_weight: float = "${memory.retrieval.dense_weight}"  # type: ignore[assignment]


@dataclass
class RetrievalConfig:
    k: int = 6  # items pasted by raw_rag
    per_query: int = 4  # hits kept per agent query
    max_items: int = 6  # items shown to the agent for its recommendation
    item_chars: int = 450
    max_tokens: int = 384  # room for each agent reply (its fields are bounded well below it)
    rrf_k: int = 60
    candidates: int = 200  # top of each ranked list that reciprocal-rank fusion sees
    dense_weight: float = 2.0  # the dense list's weight in the fusion (BM25's is 1); bench/bench_recall.py --sweep
    # the agent also reads the documentation of the APIs the coder's own draft without memory uses (memory/agent.py:
    # the draft's documents are shown first); the pipeline then drafts before it advises (memory=spark_drafted)
    draft_apis: bool = False


@dataclass
class LearningConfig:
    traces_per_call: int = 4
    max_new: int = 2  # insights asked for per learner call
    max_tokens: int = 640  # room for the reply (its fields are bounded below it)
    screen: bool = True  # reject insights that name no documented API or echo a prompt, rubric or problem
    duplicate_threshold: float = 0.9  # cosine at or above which a new insight merges into an old one
    retire_margin: float = 3.0  # retire when failures beyond the base fail rate's prediction reach this
    # how harm is judged: base_rate (failures against the stream's fail rate) or paired (against the same coder's
    # outcome on the same problem without memory, read from `baseline`: a use that turns a pass into a failure is
    # harm, one that turns a failure into a pass is help; retire when harm - help reaches retire_margin)
    harm: str = "base_rate"
    baseline: list[str] = field(default_factory=list)  # harm=paired: finished memory=none run directories
    max_insights: int = 500


@dataclass
class LeakageConfig:
    n: int = 6  # code-token n-grams
    threshold: float = 0.5  # share of the reference's n-grams that flags a text


@dataclass
class CommunityConfig:
    # the coder models (model.name) that learn into one shared memory, each taking its share of one stream
    # (pipeline.share=${spark_share:${model.name},${community.members}}); experiment=community sets them
    members: list[str] = field(default_factory=list)
    # the poisoning arm: this member's learned insights are replaced by wrong ones at poison_rate
    # (memory.poison.rate=${spark_poison:${model.name},${community.poisoner},${community.poison_rate}})
    poisoner: Optional[str] = None
    poison_rate: float = 0.0
    poison_past_screen: bool = False  # its lessons skip the insight screen (memory.poison.past_screen)


@dataclass
class PoisonConfig:
    # the share of this run's learned insights replaced by plausible but wrong ones (memory/learning/poison.py)
    rate: float = 0.0
    # its lessons skip the insight screen: an adversary who writes them to pass it (what outcomes alone must catch)
    past_screen: bool = False


@dataclass
class PlaceboConfig:
    source: Optional[str] = None  # memory=placebo: a finished run whose advice is shown (None: the agent writes it)
    seed: int = 0  # the derangement: which other problem's advice each problem is shown


@dataclass
class GateConfig:
    signal: str = "draft_min_logprob"  # memory/gate.py: SIGNALS
    threshold: float = -1.16553  # the memory stays silent when the coder's draft scores at or above it


@dataclass
class SparkMemoryConfig(MemoryConfig):
    _target_: str = "spark_eval.memory.spark.AgentMemory"  # | RawRagMemory | PlaybookMemory: how it advises
    _recursive_: bool = False
    sources: list[str] = field(default_factory=lambda: ["docs", "insights"])
    experience: str = "online"  # online | paper_synthetic | frozen | none
    exclude_family: bool = True
    store: Optional[str] = None  # None: <run dir>/memory/store.sqlite
    frozen_store: Optional[str] = None  # experience=frozen: the learned store copied in when the run starts
    lock_wait_s: float = 120.0  # a writer waiting longer for the store's write lock stops, naming its holder
    mask_contributors: list[str] = field(default_factory=list)  # hide insights only these models contributed
    poison: PoisonConfig = field(default_factory=PoisonConfig)
    placebo: PlaceboConfig = field(default_factory=PlaceboConfig)
    gate: Optional[GateConfig] = None  # memory=spark_gated: stay silent when the coder is sure of its own draft
    playbook_chars: int = 6000
    kb: KnowledgeBaseConfig = field(default_factory=KnowledgeBaseConfig)
    embedder: Any = MISSING
    agent_model: Any = MISSING
    learner_model: Any = MISSING
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    leakage: LeakageConfig = field(default_factory=LeakageConfig)


@dataclass
class JudgeConfig:
    name: str = MISSING
    repeats: int = 1  # >1 judges the same item again (agreement between repeats)
    show_reference: bool = False  # the quality judge also sees DS-1000's reference solution
    scoring: str = "auto"  # expected (probability-weighted, models that expose logits) | sampled | auto
    models: dict[str, Any] = field(default_factory=dict)  # model configs the panel refers to
    panel: list[Any] = field(default_factory=list)


@dataclass
class ExecutionConfig:
    _target_: str = "spark_eval.execution.ProcessSandbox"
    mode: str = "fork"  # fork (warm fork server) | strict (fresh interpreter per program)
    python: str = MISSING  # the grading environment's interpreter
    workers: Optional[int] = None  # None: one per core
    timeout_s: float = 120.0
    memory_mb: int = 4096
    max_procs: int = 512
    disk_mb: int = 1024  # what a program may write: each file, and bubblewrap's /tmp and /dev/shm each
    isolation: str = "auto"  # auto | bwrap | process
    preload: list[str] = field(default_factory=list)
    seaborn_data: Optional[str] = None
    output_tail_chars: int = 2000


@dataclass
class PipelineConfig:
    epochs: int = 1
    samples: int = 1  # answers drawn per problem, each its own record (pass@k); > 1 needs model temperature > 0
    round_size: int = 16
    concurrency: Optional[int] = None  # problems in flight; None: what the coder's provider takes (see runner)
    progress: bool = True
    shuffle: bool = False  # stream order: the dataset's, or a shuffle set by `seed`
    share: Optional[str] = None  # "i/n": this run takes problems i, i+n, i+2n, ... of the stream (community members)


@dataclass
class BudgetConfig:
    usd: Optional[float] = None  # stop starting problems before the spend would pass this many USD (None: no cap)
    scope: str = "run"  # run: this run's spend | sweep: every run of the experiment folder together


@dataclass
class PlanConfig:
    """dry_run=true: the MDE each comparison's design will reach on pass@1 (stats/power.py: planned_mde)."""

    pilot: Optional[str] = None  # a glob of finished runs: measure discordance and rho from their paired records
    discordance: float = 0.30  # share of problems whose pass/fail differs between the arms, without a pilot
    rho: float = 0.5  # correlation of two problems' differences within one origin family, without a pilot


@dataclass
class PathsConfig:
    root: str = MISSING
    results: str = MISSING
    cache: str = MISSING
    data: str = MISSING


@dataclass
class ReportConfig:
    out: str = ""  # the folder stage=report writes into (required)
    baseline: str = "none"  # the memory every other condition of a model is compared with
    bootstrap: int = 2000  # resamples of origin families for every confidence interval
    seed: int = 0  # of the bootstrap
    tost_margin: float = 0.1  # equivalence margin (quality points) for "matches" claims
    quality_judge: str = ""  # which quality judge to report when the runs hold several
    helpfulness_judge: str = ""  # which helpfulness judge to report when the runs hold several
    window: int = 50  # records in the learning curves' rolling mean


@dataclass
class Config:
    dataset: DatasetConfig = MISSING
    model: Any = MISSING
    memory: Any = MISSING
    agent: Any = MISSING  # the retrieval agent's model config
    learner: Any = MISSING  # the learner's model config
    judge: JudgeConfig = MISSING
    execution: ExecutionConfig = MISSING
    pipeline: PipelineConfig = MISSING
    paths: PathsConfig = MISSING
    report: ReportConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0
    stage: str = "run"
    community: CommunityConfig = field(default_factory=CommunityConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    run_dir: Optional[str] = None
    results: Any = None  # stage=report: a glob of run directories, or a list of globs
    index: str = "${paths.results}/index.sqlite"  # stage=index: the SQLite file over every run under paths.results
    runs: list[str] = field(default_factory=list)  # stage=compare: two run directories (paths, or under paths.results)
    dry_run: bool = False  # stage=run: print what the run (each job of a sweep) would do; call and write nothing


def register_configs() -> None:
    """Register the schemas (idempotent) and the `spark_root` resolver."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="benchmark", name="base_dataset", node=DatasetConfig, package="dataset")
    cs.store(group="model", name="base_reference", node=ReferenceModelConfig)
    cs.store(group="model", name="base_answers", node=AnswersModelConfig)
    cs.store(group="model", name="base_openai", node=OpenAIModelConfig)
    cs.store(group="model", name="base_anthropic", node=AnthropicModelConfig)
    cs.store(group="model", name="base_vllm", node=VLLMModelConfig)
    cs.store(group="model", name="base_local", node=LocalModelConfig)
    cs.store(group="memory", name="base_memory", node=MemoryConfig)
    cs.store(group="memory", name="base_spark", node=SparkMemoryConfig)
    cs.store(group="judge", name="base_judge", node=JudgeConfig)
    cs.store(group="execution", name="base_execution", node=ExecutionConfig)
    cs.store(group="pipeline", name="base_pipeline", node=PipelineConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    cs.store(group="report", name="base_report", node=ReportConfig)
    resolvers = {
        "spark_root": lambda: str(PROJECT_ROOT),
        # `a if a is set else b`: later stages write into the run directory they are given
        "spark_or": lambda given, default: given if given not in (None, "") else default,
        # where Hydra writes its copy of the command's config: nowhere for the stages that lock a run directory
        # (they write it themselves once they hold the lock: pipeline/rundir.py keep_hydra_copy)
        "spark_hydra_subdir": lambda stage: None if stage in LOCKING_STAGES else hydra_subdir(stage),
        # the folder a later stage writes into: stage=judge the run it judges, stage=report its report folder
        # (without one, Hydra's log goes to the temp folder and the stage stops asking for report.out);
        # stage=index and stage=compare make no folder in results/: Hydra's log goes to the temp folder
        "spark_stage_dir": lambda stage, run_dir, report_out: (
            report_out or str(Path(tempfile.gettempdir()) / "spark_eval-report")) if stage == "report" else (
            str(Path(tempfile.gettempdir()) / f"spark_eval-{stage}")) if stage in ("index", "compare") else run_dir,
        # dry_run=true: Hydra's folders (its config copy and log) go to the temp folder, nothing into results/
        "spark_dry": lambda dry, path: str(Path(tempfile.gettempdir()) / "spark_eval-dry-run") if dry else path,
        # dry_run=true: no log file (a `hydra.run.dir` given on the command line is the real run's folder)
        "spark_log": lambda dry, path: os.devnull if dry else path,
    }
    resolvers["spark_share"] = _member_share
    resolvers["spark_poison"] = lambda model, poisoner, rate: float(rate) if model == poisoner else 0.0
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def hydra_subdir(stage: str) -> str:
    """The folder of Hydra's copy of a stage's config: `.hydra` for a run, `.hydra-<stage>` for a later stage, so
    stage=judge keeps the run's own copy."""
    return ".hydra" if stage == "run" else f".hydra-{stage}"


LOCKING_STAGES = ("run", "judge")
"""Stages that write into a run directory under its lock."""


def _member_share(model: str, members: Any) -> str:
    """`i/n`: the share of the stream of the community's i-th member (of n)."""
    members = [str(m) for m in members]
    if model not in members:
        raise ValueError(f"model {model} is not a member of community.members={members}; add it or pick a member")
    return f"{members.index(model)}/{len(members)}"


def experiment_sweep(experiment: str) -> list[list[str]]:
    """The override sets of an experiment's own sweep (`hydra.sweeper.params`), one per run; [[]] for a single run."""
    import itertools

    path = PROJECT_ROOT / "conf" / "experiment" / f"{experiment}.yaml"
    params = (OmegaConf.load(path).get("hydra") or {}).get("sweeper", {}).get("params") or {}
    keys = list(params)
    return [[f"{k}={v}" for k, v in zip(keys, values)]
            for values in itertools.product(*(str(params[k]).split(",") for k in keys))]


def compose_config(*overrides: str) -> Any:
    """The real config tree with `overrides`, as `python -m spark_eval` composes it (for scripts and tests)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


# Config keys that do not change results: they may differ between a run and its resume.
# The dataset's location, source, files and reading class are neutral because its content hash is part of the
# identity (and the benchmark's post-processing, program and coder versions are).
RESULT_NEUTRAL_KEYS = (
    "dataset._target_",
    "dataset.files",
    "dataset.path",
    "dataset.sha256",
    "dataset.source",
    "execution.workers",
    "execution.python",
    "pipeline.concurrency",
    "pipeline.progress",
    "paths",
    "run_dir",
    "stage",
    "report",
    "results",
    "index",
    "runs",
    "execution.seaborn_data",
    "memory.kb.python",  # a location: the runner adds its interpreter's content (`kb_env`) when it is not the grader
    "memory.lock_wait_s",
    # the agent's and learner's model configs count where a memory uses them: inside memory.*_model
    "agent",
    "learner",
    # the members count through what they decide: each run's pipeline.share
    "community",
    "dry_run",
    "budget",  # how much may be spent, not what a call returns
    "plan",  # what a dry run assumes about the results
)
# Settings added after runs were made, left out of the identity while they keep the value that means "as before",
# so those runs still resume.
IDENTITY_ABSENT = {"pipeline.share": None, "memory.mask_contributors": [], "memory.poison.rate": 0.0,
                   "memory.learning.harm": "base_rate", "memory.learning.baseline": [],
                   "memory.placebo.source": None, "memory.placebo.seed": 0, "execution.output_tail_chars": 2000,
                   "execution.disk_mb": 1024, "memory.gate": None,
                   "memory.retrieval.draft_apis": False, "memory.poison.past_screen": False}
# Settings that name a run directory or a store file (a path, or a list of them): they count as the place inside the
# project folder (`results/...`), so a clone of the project elsewhere resumes the runs it carries.
PROJECT_RELATIVE_KEYS = ("memory.placebo.source", "memory.learning.baseline", "memory.store", "memory.frozen_store")
# Settings renamed after runs were made: a resume reads the old name in their identity as the new one.
IDENTITY_RENAMED = {"pipeline.repeats": "pipeline.samples"}
# Leaf names that are locations wherever they appear, in lists too (a model's cache or weights folder, also those
# of a judge panel's models). A weights or answers file counts by its content hash (pipeline/rundir.py).
RESULT_NEUTRAL_LEAVES = ("cache_path", "weights_dir", "cache_dir", "model_dir")
# How a model's calls are made and what they cost, not what they return: neutral in any model config (a
# `spark_eval.models` target). `execution.isolation` and `memory.store` are not neutral: the sandbox and the shared
# state change results.
MODEL_CALL_SETTINGS = ("concurrency", "max_attempts", "timeout_s", "backoff_s", "max_batch", "batch_window_s",
                       "price", "speed", "reasoning")
