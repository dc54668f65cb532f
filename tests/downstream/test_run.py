"""run_downstream end to end: a tiny trained model, the coloured-digits task, report files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from fairmetric.data.registry import build_splits
from fairmetric.downstream import KNNClassifier, run_downstream
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import load_config, train
from tests.conftest import DIGITS

DATA = {"max_shift": 2}  # as the DIGITS training config renders them


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("downstream") / "run"
        train(load_config(None, DIGITS + ["train.epochs=1"]), out, progress=False, log=print)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def pool():
    """The pool run_downstream builds: the registry's coloured digits (its defaults under DATA)."""
    return build_splits("colored_digits", image_size=16, seed=0, params=DATA)["test"]


def test_probe_run_writes_the_report(run_dir, pool, tmp_path):
    result = run_downstream(
        run_dir,  # a run folder: its exported model/ is used
        data_params=DATA,
        classifier="probe",
        balance="attribute",
        n_boot=50,
        device="cpu",
        out_dir=tmp_path / "report",
    )
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "report.html",
        "report.json",
        "report.md",
    ]
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    meta = doc["metadata"]
    assert meta["classifier"]["name"] == "probe"
    assert meta["balance"] == "attribute" and meta["balance_attribute"] == "colour"
    # the downstream task: the unseen digits 5-9, split in halves, the training half balanced
    train_idx, test_idx = result.train_indices, result.test_indices
    assert np.intersect1d(train_idx, test_idx).size == 0
    assert set(pool.labels[test_idx]) == set(range(5, 10))
    assert np.array_equal(result.labels, pool.labels[test_idx])
    colour = pool.attribute("colour")
    for c in range(5, 10):
        in_class = colour[train_idx][pool.labels[train_idx] == c]
        assert np.sum(in_class == 0) == np.sum(in_class == 1)
    assert meta["n_train"] == len(train_idx) < meta["n_train_before_balance"]
    assert meta["n_test"] == len(test_idx) == meta["n"]
    assert meta["train_counts"]["colour"]["light"] == meta["train_counts"]["colour"]["dark"]
    # the report measures the returned predictions
    acc = doc["metrics"]["accuracy"]
    correct = result.predictions == result.labels
    assert acc["overall"]["value"] == pytest.approx(correct.mean())
    for code, name in enumerate(["light", "dark"]):
        mine = correct[colour[test_idx] == code].mean()
        assert acc["by_group"]["colour"][name]["value"] == pytest.approx(mine)
    assert acc["worst_group"]["colour"]["group"] in ("light", "dark")
    assert acc["overall"]["value"] > 0.25  # chance is 0.2


def test_knn_run_equals_knn_on_the_embeddings(run_dir, pool):
    result = run_downstream(
        run_dir / "model",
        data_params=DATA,
        classifier="knn",
        classifier_params={"k": 3, "metric": "l2"},
        n_boot=0,
        device="cpu",
    )
    emb = embed_dataset(load_embedder(run_dir / "model"), pool, device="cpu")
    clf = KNNClassifier(k=3, metric="l2").fit(
        emb.embeddings[result.train_indices], emb.labels[result.train_indices]
    )
    with threadpool_limits(1, user_api="blas"):
        assert np.array_equal(result.predictions, clf.predict(emb.embeddings[result.test_indices]))
    assert result.paths == {}
    assert result.report.metadata["classifier"] == {"name": "knn", "k": 3, "metric": "l2"}


def test_head_run_finetunes_on_the_downstream_half(run_dir):
    result = run_downstream(
        run_dir,
        data_params=DATA,
        classifier="head",
        classifier_params={"epochs": 20, "lr": 0.05},
        balance="imbalanced",
        share=0.2,
        minority_value=1,  # dark
        n_boot=0,
        device="cpu",
    )
    meta = result.report.metadata
    counts = meta["train_counts"]["colour"]
    assert counts["dark"] / (counts["light"] + counts["dark"]) == pytest.approx(0.2, abs=0.02)
    assert meta["classifier"]["name"] == "head"
    assert result.classifier.mode == "head"
    assert result.report["accuracy"].overall.value > 0.25  # chance is 0.2


def test_run_downstream_refuses_bad_requests(run_dir):
    with pytest.raises(ValueError, match="unknown classifier 'svm'.*'probe', 'knn'"):
        run_downstream(run_dir, classifier="svm")
    with pytest.raises(ValueError, match="bad classifier_params for 'knn'"):
        run_downstream(run_dir, classifier="knn", classifier_params={"neighbours": 3})
    with pytest.raises(ValueError, match="bad classifier_params for 'head': \\['seed'\\]"):
        run_downstream(run_dir, classifier="head", classifier_params={"seed": 1})
    with pytest.raises(ValueError, match="unknown attribute 'sex'"):
        run_downstream(run_dir, data_params=DATA, attributes=["sex"], device="cpu")
    with pytest.raises(ValueError, match="unknown balance mode"):
        run_downstream(run_dir, balance="equal")
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        run_downstream(run_dir / "nothing")
