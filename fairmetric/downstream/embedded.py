"""``run_on_embeddings``: a downstream classifier on any embeddings, evaluated per group.

The embeddings come as an :class:`~fairmetric.embeddings.EmbeddingSet` or a file that
:meth:`EmbeddingSet.save` wrote (``.npz`` / ``.safetensors``, e.g. what ``fairmetric embed``
writes or a training run's ``test_embeddings.npz``). Their rows are split into a downstream-train
and a downstream-test part, stratified by class × every attribute value and seeded
(:func:`~fairmetric.downstream.split.stratified_split`); the training part is optionally balanced
by an attribute; the classifier — a built-in name, a dotted scikit-learn class name, a class or
an estimator object (:func:`~fairmetric.downstream.estimator.make_classifier`) — is fitted on the
training part, and the test part's accuracy, balanced accuracy and macro-F1 are reported overall
and per group with gaps, worst groups and bootstrap intervals
(:func:`~fairmetric.downstream.evaluate.evaluate_downstream`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fairmetric.downstream.balance import BalanceMode, check_mode, split_and_balance
from fairmetric.downstream.estimator import make_classifier
from fairmetric.downstream.evaluate import groups_of
from fairmetric.downstream.result import DownstreamResult, finish, split_metadata
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE

__all__ = ["EMBEDDING_SUFFIXES", "is_embedding_file", "run_on_embeddings"]

#: suffixes of the embedding files :meth:`EmbeddingSet.save` writes
EMBEDDING_SUFFIXES = (".npz", ".safetensors")


def is_embedding_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an embedding file by its suffix (it need not exist)."""
    return Path(path).suffix.lower() in EMBEDDING_SUFFIXES


def _check_class_sizes(emb: EmbeddingSet) -> None:
    counts = np.bincount(emb.labels, minlength=len(emb.label_names))
    single = [emb.label_names[c] for c in np.flatnonzero(counts == 1)]
    if single:
        shown = ", ".join(repr(s) for s in single[:5]) + (", ..." if len(single) > 5 else "")
        raise UserError(
            f"{len(single)} class(es) have a single sample ({shown}): such a class cannot be on "
            "both sides of the downstream train/test split; drop classes with fewer than two "
            "samples first (e.g. keep = np.bincount(emb.labels)[emb.labels] >= 2; "
            "emb.subset(np.flatnonzero(keep)))"
        )
    if len(np.flatnonzero(counts)) < 2:
        raise UserError("the embeddings hold a single class; a classifier needs at least two")


def run_on_embeddings(
    embeddings: EmbeddingSet | str | os.PathLike[str],
    *,
    classifier: Any = "probe",
    classifier_params: dict[str, Any] | None = None,
    test_fraction: float = 0.5,
    balance: BalanceMode = "none",
    balance_attribute: str | None = None,
    balance_per_class: bool = True,
    share: float | None = None,
    minority_value: int | None = None,
    attributes: Sequence[str] | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
) -> DownstreamResult:
    """Fit a classifier of the classes on part of the embeddings and report it per group.

    Args:
        embeddings: an :class:`EmbeddingSet` or the path of an ``.npz`` / ``.safetensors`` file
            written by :meth:`EmbeddingSet.save`.
        classifier: ``"probe"``, ``"knn"``, a dotted class name
            (``"sklearn.svm.LinearSVC"``), a class, or an estimator object with ``fit`` and
            ``predict`` (fitted in place).
        classifier_params: keyword arguments of the classifier (by name or class only).
        test_fraction: share of each class × attribute cell for the downstream-test part.
        balance: ``"none"``, ``"attribute"`` or ``"imbalanced"``, applied to the training part
            (see :func:`~fairmetric.downstream.balance.balance_by_attribute`).
        balance_attribute: the attribute to balance by (default: the only one).
        balance_per_class: balance within each class.
        share: the minority share for ``balance="imbalanced"``.
        minority_value: the minority value code for ``balance="imbalanced"``.
        attributes: attributes to evaluate by (default: all; their intersection is added).
        n_boot: bootstrap replicates (0: no intervals).
        level: interval coverage.
        min_group_size: groups with fewer downstream-test samples are reported but kept out of
            the gaps.
        seed: seeds the split, the balancing, the estimator's ``random_state`` (when it has one
            left at ``None``) and the bootstrap.
        out_dir: when given, ``report.json``, ``report.md`` and ``report.html`` are written here.

    Returns:
        A :class:`~fairmetric.downstream.run.DownstreamResult`; ``predictions`` and ``labels``
        are label codes (names: ``emb.label_names``), the indices are rows of the embeddings.

    Raises:
        FileNotFoundError: no embedding file at the path.
        ValueError: a bad classifier or parameter, an unknown attribute, a class with a single
            sample, or embeddings with fewer than two classes.
    """
    start = time.perf_counter()
    check_mode(balance)
    if isinstance(classifier, str) and classifier in ("head", "end_to_end"):
        raise UserError(
            f"classifier {classifier!r} finetunes a model; embeddings that are already computed "
            "take a classifier on fixed embeddings (probe, knn or a scikit-learn class)"
        )
    clf = make_classifier(classifier, classifier_params, seed=seed)
    if isinstance(embeddings, EmbeddingSet):
        emb, source = embeddings, str(embeddings.metadata.get("source", "EmbeddingSet"))
    else:
        emb, source = EmbeddingSet.load(embeddings), str(embeddings)
    for a in list(attributes or []) + ([balance_attribute] if balance_attribute else []):
        if a not in emb.attribute_names:
            raise UserError(
                f"unknown attribute {a!r}; the embeddings have: "
                + (", ".join(emb.attribute_names) or "(none)")
            )
    _check_class_sizes(emb)
    train_idx, test_idx, n_before, balance_attribute = split_and_balance(
        emb,
        test_fraction=test_fraction,
        seed=seed,
        balance=balance,
        balance_attribute=balance_attribute,
        balance_per_class=balance_per_class,
        share=share,
        minority_value=minority_value,
    )
    with threadpool_limits(1, user_api="blas"):  # one summation order on every machine
        clf.fit(emb.embeddings[train_idx], emb.labels[train_idx])
        predictions = clf.predict(emb.embeddings[test_idx])
    test_set = emb.subset(test_idx)
    groups, names = groups_of(test_set, attributes)
    train_set = emb.subset(train_idx)
    metadata: dict[str, Any] = {
        "title": "fairmetric downstream evaluation",
        "source": source,
        "task": (
            f"classify the {emb.num_classes} classes of the embeddings: downstream train/test "
            f"split {1 - test_fraction:g}/{test_fraction:g}, stratified by class × attributes"
        ),
        "dataset": str(emb.metadata.get("dataset", source)),
        "dim": emb.dim,
        "classifier": clf.describe(),
        **split_metadata(
            train_set,
            n_before=n_before,
            n_test=len(test_idx),
            balance=balance,
            balance_attribute=balance_attribute,
        ),
    }
    return finish(
        labels=test_set.labels,
        predictions=predictions,
        groups=groups,
        names=names,
        n_boot=n_boot,
        seed=seed,
        level=level,
        min_group_size=min_group_size,
        metadata=metadata,
        start=start,
        out_dir=out_dir,
        train_indices=train_idx,
        test_indices=test_idx,
        classifier=clf,
    )
