import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spark_eval.config import PROJECT_ROOT
from spark_eval.data import build_benchmark
from spark_eval.data.base import DatasetError, problems_hash as dataset_hash, stratified_subset
from spark_eval.data.ds1000 import read_dataset
from spark_eval.types import LIBRARIES
from tests.conftest import DS1000, compose_config


def dataset_cfg(**overrides):
    cfg = compose_config().dataset
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def select_problems(problems, cfg):
    return build_benchmark(cfg).select()


def test_all_problems_load_with_their_published_counts(problems):
    assert len(problems) == 1000
    assert [p.problem_id for p in problems] == list(range(1000))
    assert Counter(p.library for p in problems) == {
        "Pandas": 291, "Numpy": 220, "Matplotlib": 155, "Sklearn": 115, "Scipy": 106, "Pytorch": 68, "Tensorflow": 45,
    }
    assert Counter(p.perturbation_type for p in problems) == {
        "Origin": 452, "Semantic": 234, "Difficult-Rewrite": 162, "Surface": 152,
    }
    assert len({p.origin_family for p in problems}) == 453
    assert problems[871].origin_family == ("Sklearn", 53)
    assert sum(p.test_case_cnt for p in problems) > 1000


def test_problems_are_frozen(problems):
    with pytest.raises(AttributeError):
        problems[0].prompt = "changed"


def test_filters_by_library_perturbation_and_ids(problems):
    chosen = select_problems(problems, dataset_cfg(libraries=["Scipy"], perturbations=["Surface"]))
    assert len(chosen) == 11 and {p.library for p in chosen} == {"Scipy"}
    chosen = select_problems(problems, dataset_cfg(ids=[511, 0, 291]))
    assert [p.problem_id for p in chosen] == [0, 291, 511]


def test_seeded_subset_is_stratified_and_reproducible(problems):
    a = select_problems(problems, dataset_cfg(limit=14))
    b = select_problems(problems, dataset_cfg(limit=14))
    c = select_problems(problems, dataset_cfg(limit=14, subset_seed=1))
    assert a == b and a != c
    assert Counter(p.library for p in a) == {lib: 2 for lib in Counter(p.library for p in problems)}
    small = stratified_subset(problems, 3, seed=0, libraries=LIBRARIES)
    assert len({p.library for p in small}) == 3


def test_bad_selections_name_the_fix(problems):
    with pytest.raises(DatasetError, match="unknown names .'Pandass'"):
        select_problems(problems, dataset_cfg(libraries=["Pandass"]))
    with pytest.raises(DatasetError, match="unknown problem ids .1000"):
        select_problems(problems, dataset_cfg(ids=[1000]))


def test_malformed_line_stops_loading_with_its_line_number(tmp_path, problems):
    path = tmp_path / "broken.jsonl.gz"
    lines = [json.dumps({"prompt": "p", "reference_code": "r", "code_context": "c", "metadata": {
        "problem_id": 0, "library": "Numpy", "test_case_cnt": 1, "perturbation_type": "Origin",
        "perturbation_origin_id": 0}})]
    with gzip.open(path, "wt") as f:
        f.write(lines[0] + "\n" + '{"prompt": "cut off' + "\n")
    with pytest.raises(DatasetError, match=r"broken.jsonl.gz:2: not valid JSON"):
        read_dataset(dataset_cfg(path=str(path), sha256=None))
    with gzip.open(path, "wt") as f:
        f.write(lines[0] + "\n" + json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(DatasetError, match=r":2: a DS-1000 record needs the keys"):
        read_dataset(dataset_cfg(path=str(path), sha256=None))


def test_missing_file_names_the_setting():
    with pytest.raises(DatasetError, match="dataset.path="):
        read_dataset(dataset_cfg(path="/nonexistent/ds1000.jsonl.gz"))


def test_dataset_hash_depends_on_content_only(problems):
    assert dataset_hash(problems) == dataset_hash(list(reversed(problems)))
    assert dataset_hash(problems) != dataset_hash(problems[:-1])


def test_the_default_copy_is_the_projects_own_and_its_hash_is_checked(tmp_path):
    cfg = dataset_cfg()
    assert Path(cfg.path) == DS1000 and DS1000.is_relative_to(PROJECT_ROOT)
    assert hashlib.sha256(DS1000.read_bytes()).hexdigest() == cfg.sha256
    edited = tmp_path / "ds1000.jsonl.gz"
    rows = gzip.decompress(DS1000.read_bytes()).replace(b"Pandas", b"Pandaz", 1)
    edited.write_bytes(gzip.compress(rows))
    with pytest.raises(DatasetError, match="not the pinned copy's e8c6daa9.*dataset.sha256=null"):
        read_dataset(dataset_cfg(path=str(edited)))
    assert len(read_dataset(dataset_cfg(path=str(edited), sha256=None))) == 1000


def test_every_carried_data_file_matches_its_recorded_hash():
    folder = DS1000.parent
    listed = [line.split() for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip()]
    assert {name for _, name in listed} >= {"ds1000.jsonl.gz", "seaborn-data/tips.csv", "seaborn-data/planets.csv",
                                             "seaborn-data/penguins.csv", "seaborn-data/exercise.csv"}
    for digest, name in listed:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_hub_source_loads_a_hub_layout_copy_with_the_real_datasets_library(tmp_path, monkeypatch, problems):
    """`dataset.source=hub` goes through `datasets.load_dataset` at the pinned revision; offline, the real
    library reads a local folder laid out as the Hub repository is (`test.jsonl` at its root)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    repo = tmp_path / "DS-1000"
    repo.mkdir()
    (repo / "test.jsonl").write_bytes(gzip.decompress(DS1000.read_bytes()))
    loaded = read_dataset(dataset_cfg(source="hub", hub_id=str(repo)))
    assert loaded == problems
    assert dataset_hash(loaded) == dataset_hash(problems)


def test_unknown_source_names_the_choices():
    with pytest.raises(DatasetError, match="use 'file' or 'hub'"):
        read_dataset(dataset_cfg(source="ftp"))


def test_pandas_numpy_eval_is_carried_whole_with_its_licence_and_hashes():
    folder = DS1000.parent.parent / "pandas_numpy_eval"
    listed = [line.split() for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip()]
    assert {name for _, name in listed} == {"PandasEval.jsonl.gz", "NumpyEval.jsonl.gz", "LICENSE"}
    for digest, name in listed:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (folder / "LICENSE").read_text()
    for name in ("PandasEval", "NumpyEval"):
        with gzip.open(folder / f"{name}.jsonl.gz", "rt") as lines:
            tasks = [json.loads(line) for line in lines if line.strip()]
        assert [t["task_id"] for t in tasks] == [f"{name}/{i}" for i in range(101)]
        assert all({"prompt", "entry_point", "canonical_solution", "test"} <= set(t) for t in tasks)
        assert all(isinstance(t["canonical_solution"], list) and t["canonical_solution"] for t in tasks)
        assert all("def check(" in t["test"] for t in tasks)
