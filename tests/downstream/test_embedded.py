"""Downstream on any embeddings with any scikit-learn-style estimator (run_on_embeddings)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from fairmetric.downstream import (
    EstimatorClassifier,
    make_classifier,
    run_downstream,
    run_on_embeddings,
    stratified_split,
)
from fairmetric.embeddings import EmbeddingSet


def _set(n: int = 240, seed: int = 0) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    colour = np.array(["light", "dark"])[rng.integers(0, 2, n)]
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[np.arange(n), y] += 2.0 * np.where(colour == "light", 1.5, 0.5)  # dark is harder
    return EmbeddingSet(embeddings=x, labels=y, attributes={"colour": colour})


class NearestMean:
    """A custom estimator defined here: predicts the class whose training mean is closest."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, x):
        d = ((x[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        return self.classes_[np.argmin(d, axis=1)]


def test_custom_estimator_object_matches_its_own_fit_on_the_same_split(tmp_path):
    emb = _set()
    result = run_on_embeddings(emb, classifier=NearestMean(), n_boot=0, seed=2)
    tr, te = stratified_split(emb.labels, [emb.attributes[:, 0]], test_fraction=0.5, seed=2)
    assert np.array_equal(result.train_indices, tr) and np.array_equal(result.test_indices, te)
    ref = NearestMean().fit(emb.embeddings[tr], emb.labels[tr]).predict(emb.embeddings[te])
    assert np.array_equal(result.predictions, ref)
    report = result.report
    assert set(report.metrics) == {"accuracy", "balanced_accuracy", "macro_f1"}
    for group in ("light", "dark"):
        rows = emb.attribute("colour")[te] == emb.attribute_value_names["colour"].index(group)
        y, p = emb.labels[te][rows], ref[rows]
        assert report["accuracy"].by_group["colour"][group].value == pytest.approx(np.mean(y == p))
        assert report["balanced_accuracy"].by_group["colour"][group].value == pytest.approx(
            balanced_accuracy_score(y, p)
        )
        assert report["macro_f1"].by_group["colour"][group].value == pytest.approx(
            f1_score(y, p, average="macro")
        )
    assert report["accuracy"].worst_group("colour")[0] == "dark"
    assert report.metadata["classifier"]["name"].endswith("NearestMean")


def test_a_dotted_sklearn_name_with_params_from_a_file_equals_the_object(tmp_path):
    from sklearn.linear_model import LogisticRegression

    path = _set().save(tmp_path / "emb.safetensors")
    by_name = run_on_embeddings(
        path,
        classifier="sklearn.linear_model.LogisticRegression",
        classifier_params={"C": 0.5},
        n_boot=20,
        out_dir=tmp_path / "out",
    )
    by_object = run_on_embeddings(
        path, classifier=LogisticRegression(C=0.5, random_state=0), n_boot=20
    )
    assert np.array_equal(by_name.predictions, by_object.predictions)
    assert by_name.report.metadata["classifier"]["params"]["C"] == 0.5
    assert (tmp_path / "out" / "report.json").is_file()
    # a class (not a name) with params, and run_downstream's delegation, agree too
    by_class = run_on_embeddings(path, classifier=LogisticRegression, classifier_params={"C": 0.5})
    via_run = run_downstream(
        path, classifier="sklearn.linear_model.LogisticRegression", classifier_params={"C": 0.5}
    )
    assert np.array_equal(by_class.predictions, by_name.predictions)
    assert np.array_equal(via_run.predictions, by_name.predictions)


def test_random_state_gets_the_seed_so_results_repeat():
    emb = _set()
    a = run_on_embeddings(emb, classifier="sklearn.ensemble.RandomForestClassifier", n_boot=0)
    b = run_on_embeddings(emb, classifier="sklearn.ensemble.RandomForestClassifier", n_boot=0)
    assert np.array_equal(a.predictions, b.predictions)
    assert a.classifier.estimator.random_state == 0


def test_string_labels_survive_the_code_mapping():
    emb = _set()
    named = EmbeddingSet(
        embeddings=emb.embeddings,
        labels=np.array(["a", "b", "c", "d"])[emb.labels],
        attributes={"colour": np.array(emb.attribute_value_names["colour"])[emb.attributes[:, 0]]},
    )
    a = run_on_embeddings(named, classifier=NearestMean(), n_boot=0)
    b = run_on_embeddings(emb, classifier=NearestMean(), n_boot=0)
    assert np.array_equal(a.predictions, b.predictions)


@pytest.mark.parametrize(
    "classifier, params, match",
    [
        ("sklearn.not_a_module.Thing", None, "cannot import module 'sklearn.not_a_module'"),
        ("sklearn.linear_model.NoSuchClass", None, "has no attribute 'NoSuchClass'"),
        ("collections.OrderedDict", None, "has no fit and predict methods"),
        ("svm", None, "unknown classifier 'svm'"),
        (object(), None, "has no fit and predict methods"),
        (NearestMean, {"k": 3}, "bad classifier_params for 'NearestMean'"),
        (NearestMean(), {"k": 3}, "classifier_params apply to a classifier given by name"),
        ("probe", [1], "must be a mapping"),
    ],
)
def test_bad_classifiers_are_refused_with_a_clear_message(classifier, params, match):
    with pytest.raises(ValueError, match=match):
        run_downstream(_set(), classifier=classifier, classifier_params=params)


def test_a_class_passed_where_an_object_belongs_is_named():
    with pytest.raises(ValueError, match="pass an instance, e.g. NearestMean()"):
        EstimatorClassifier(NearestMean)


def test_a_label_with_one_sample_is_refused():
    emb = _set(n=40)
    labels = emb.labels.copy()
    labels[0] = 99
    odd = EmbeddingSet(
        embeddings=emb.embeddings,
        labels=labels,
        attributes=emb.attributes,
        attribute_names=emb.attribute_names,
    )
    with pytest.raises(ValueError, match=r"1 class\(es\) have a single sample \('99'\)"):
        run_on_embeddings(odd)


def test_model_arguments_with_embeddings_and_unknown_attributes_are_refused():
    with pytest.raises(ValueError, match="image_size apply to a model"):
        run_downstream(_set(), image_size=32)
    with pytest.raises(ValueError, match="finetunes a model"):
        run_downstream(_set(), classifier="head")
    with pytest.raises(ValueError, match="unknown attribute 'sex'; the embeddings have: colour"):
        run_on_embeddings(_set(), attributes=["sex"])


def test_a_predict_that_returns_foreign_labels_is_refused():
    class Bad(NearestMean):
        def predict(self, x):
            return np.full(len(x), 7.5)

    with pytest.raises(ValueError, match="not the class codes it was fitted on"):
        make_classifier(Bad()).fit(_set().embeddings, _set().labels).predict(_set().embeddings)
