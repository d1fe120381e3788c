import gzip
import json
from collections import Counter

import pytest
from omegaconf import OmegaConf

from spark_eval.data.ds1000 import DatasetError, dataset_hash, read_dataset, select_problems, stratified_subset
from tests.conftest import DS1000, compose_config


def dataset_cfg(**overrides):
    cfg = compose_config(f"dataset.path={DS1000}").dataset
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


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
    small = stratified_subset(problems, 3, seed=0)
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
        read_dataset(dataset_cfg(path=str(path)))
    with gzip.open(path, "wt") as f:
        f.write(lines[0] + "\n" + json.dumps({"prompt": "p"}) + "\n")
    with pytest.raises(DatasetError, match=r":2: a DS-1000 record needs the keys"):
        read_dataset(dataset_cfg(path=str(path)))


def test_missing_file_names_the_setting():
    with pytest.raises(DatasetError, match="dataset.path="):
        read_dataset(dataset_cfg(path="/nonexistent/ds1000.jsonl.gz"))


def test_dataset_hash_depends_on_content_only(problems):
    assert dataset_hash(problems) == dataset_hash(list(reversed(problems)))
    assert dataset_hash(problems) != dataset_hash(problems[:-1])


def test_hub_source_asks_for_the_pinned_revision_and_maps_rows(monkeypatch, problems):
    import sys
    import types

    calls = []
    rows = [json.loads(line) for line in gzip.open(DS1000, "rt")][:3]

    def load_dataset(name, split, revision):
        calls.append((name, split, revision))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    loaded = read_dataset(dataset_cfg(source="hub"))
    assert calls == [("xlangai/DS-1000", "test", "4416080ac5cb80bdf7576aefb8f9a0b4d5426a44")]
    assert loaded == problems[:3]


def test_unknown_source_names_the_choices():
    with pytest.raises(DatasetError, match="use 'file' or 'hub'"):
        read_dataset(dataset_cfg(source="ftp"))
