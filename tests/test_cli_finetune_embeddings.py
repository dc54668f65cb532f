"""`fairmetric finetune EMB.npz`: a scikit-learn classifier on an embedding file, per group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.cli import main
from fairmetric.downstream import run_on_embeddings
from fairmetric.embeddings import EmbeddingSet


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 4, n)
    colour = np.array(["light", "dark"])[rng.integers(0, 2, n)]
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    path = tmp_path_factory.mktemp("emb") / "emb.npz"
    return EmbeddingSet(embeddings=x, labels=y, attributes={"colour": colour}).save(path)


def test_an_embedding_file_with_a_dotted_sklearn_class(npz, tmp_path, capsys):
    out = tmp_path / "ds"
    code = main(
        ["finetune", str(npz), "--classifier", "sklearn.linear_model.LogisticRegression"]
        + ["--classifier-params", '{"C": 0.5}', "--n-boot", "20", "--out", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "colour"):
        assert name in text
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["classifier"]["params"]["C"] == 0.5
    # the same numbers as the Python route
    ref = run_on_embeddings(
        npz,
        classifier="sklearn.linear_model.LogisticRegression",
        classifier_params={"C": 0.5},
        n_boot=20,
    )
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        for group in ("light", "dark"):
            got = doc["metrics"][metric]["by_group"]["colour"][group]["value"]
            assert got == pytest.approx(ref.report[metric].by_group["colour"][group].value)


def test_builtin_knn_with_a_test_fraction_and_attributes_in_both_list_forms(npz, tmp_path):
    for i, attrs in enumerate((["colour"], ["colour,"])):
        out = tmp_path / f"ds{i}"
        argv = ["finetune", str(npz), "--classifier", "knn", "--classifier-params", '{"k": 3}']
        argv += ["--test-fraction", "0.25", "--attributes", *attrs, "--out", str(out)]
        assert main(argv + ["--n-boot", "0"]) == 0
        meta = json.loads((out / "report.json").read_text())["metadata"]
        assert meta["n_test"] == pytest.approx(0.25 * 200, abs=4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--classifier", "sklearn.nope.Thing"], "cannot import module 'sklearn.nope'"),
        (["--classifier", "collections.OrderedDict"], "has no fit and predict methods"),
        (["--classifier-params", "{C: 1}"], "--classifier-params '{C: 1}' is not JSON"),
        (["--classifier-params", "[1, 2]"], "must be a JSON object"),
        (["--classifier", "head"], "finetunes a model"),
        (["--attributes", "sex"], "unknown attribute 'sex'"),
    ],
)
def test_bad_input_exits_2_with_one_line(npz, tmp_path, capsys, extra, message):
    assert main(["finetune", str(npz), "--out", str(tmp_path / "ds"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_label_with_one_sample_exits_2(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((9, 3))
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 2]
    path = EmbeddingSet(embeddings=x, labels=labels).save(tmp_path / "one.npz")
    assert main(["finetune", str(path), "--out", str(tmp_path / "ds")]) == 2
    assert "have a single sample ('2')" in capsys.readouterr().err


def test_source_errors(npz, tmp_path, capsys):
    assert main(["finetune", "--out", str(tmp_path / "ds")]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "ds")]) == 2
    assert "does not exist" in capsys.readouterr().err
    task = tmp_path / "task.yaml"
    task.write_text("image_size: 32\n")
    assert main(["finetune", str(npz), "--task", str(task), "--out", str(tmp_path / "d")]) == 2
    assert "image_size, which apply to a model" in capsys.readouterr().err


def test_a_run_folder_with_a_dotted_sklearn_class(image_run, tmp_path):
    """The model route takes scikit-learn names too (the data from the run's own config)."""
    out = tmp_path / "ds"
    argv = ["finetune", str(image_run), "--classifier", "sklearn.neighbors.KNeighborsClassifier"]
    argv += ["--classifier-params", '{"n_neighbors": 3}', "--n-boot", "0", "--out", str(out)]
    assert main(argv + ["--device", "cpu", "--no-progress"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["classifier"]["name"] == "sklearn.neighbors.KNeighborsClassifier"
    assert doc["metadata"]["classifier"]["params"]["n_neighbors"] == 3
    assert set(doc["metrics"]) == {"accuracy", "balanced_accuracy", "macro_f1"}
