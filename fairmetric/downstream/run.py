"""``run_downstream``: from an exported model to a per-group downstream accuracy report.

The downstream task (the default, and what ``fairmetric finetune`` runs): take the **test split**
of a dataset — its classes were never seen by the metric learner (coloured digits: the digits
5–9) —, split it into a downstream-train and a downstream-test half, stratified by class × every
attribute value and seeded (:func:`~fairmetric.downstream.split.stratified_split`), balance or
imbalance the downstream-train half by an attribute if asked
(:func:`~fairmetric.downstream.balance.balance_by_attribute`), fit a classifier of the classes on
it, and report its accuracy on the downstream-test half overall, per group of every attribute
(and their intersection), with the gap, the worst group and bootstrap intervals.

Classifiers: ``"probe"`` (:class:`LinearProbe`), ``"knn"`` (:class:`KNNClassifier`), ``"head"``
(finetune a head on the frozen embeddings) and ``"end_to_end"`` (finetune the embedder and a
head); see :data:`CLASSIFIERS`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch.nn as nn
from threadpoolctl import threadpool_limits

from fairmetric.data.dataset import AttributeDataset
from fairmetric.downstream.balance import BalanceMode, balance_by_attribute, check_mode
from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.downstream.evaluate import evaluate_downstream, groups_of
from fairmetric.downstream.finetune import FinetuneResult, finetune
from fairmetric.downstream.knn import KNNClassifier
from fairmetric.downstream.probe import LinearProbe
from fairmetric.downstream.split import stratified_split
from fairmetric.models.embed import embed_dataset
from fairmetric.models.embedder import CONFIG_FILE, load_embedder
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE
from fairmetric.report.result import AuditReport
from fairmetric.report.writers import write_report

__all__ = [
    "CLASSIFIERS",
    "ClassifierName",
    "DownstreamResult",
    "build_classifier",
    "run_downstream",
]

ClassifierName = Literal["probe", "knn", "head", "end_to_end"]
#: classifiers fitted on fixed embeddings, by name
EMBEDDING_CLASSIFIERS: dict[str, type[DownstreamClassifier]] = {
    "probe": LinearProbe,
    "knn": KNNClassifier,
}
#: every classifier name run_downstream accepts
CLASSIFIERS: tuple[str, ...] = get_args(ClassifierName)


def build_classifier(
    classifier: str | DownstreamClassifier, params: dict[str, Any] | None = None
) -> DownstreamClassifier:
    """A classifier on fixed embeddings from a name (``"probe"``, ``"knn"``) and keyword
    arguments, or a ready :class:`DownstreamClassifier` (then ``params`` must be empty)."""
    if isinstance(classifier, DownstreamClassifier):
        if params:
            raise ValueError("classifier_params apply to a classifier given by name only")
        return classifier
    if classifier not in EMBEDDING_CLASSIFIERS:
        raise ValueError(
            f"unknown classifier {classifier!r}; valid values: "
            + ", ".join(repr(c) for c in EMBEDDING_CLASSIFIERS)
        )
    try:
        return EMBEDDING_CLASSIFIERS[classifier](**(params or {}))
    except TypeError as e:
        raise ValueError(f"bad classifier_params for {classifier!r}: {e}") from None


@dataclass
class DownstreamResult:
    """What :func:`run_downstream` did and found.

    Attributes:
        report: per-group accuracy on the downstream-test half (an :class:`AuditReport`).
        predictions: predicted labels of the downstream-test samples.
        labels: their true labels.
        train_indices: rows of the pool used for training (after balancing).
        test_indices: rows of the pool used for testing.
        classifier: the fitted :class:`DownstreamClassifier`, or the :class:`FinetuneResult`.
        paths: the files written (``{"json", "markdown", "html"}``), empty without ``out_dir``.
    """

    report: AuditReport
    predictions: np.ndarray
    labels: np.ndarray
    train_indices: np.ndarray
    test_indices: np.ndarray
    classifier: DownstreamClassifier | FinetuneResult
    paths: dict[str, Path] = field(default_factory=dict)


#: finetune() arguments that run_downstream sets itself
_RESERVED = {"embedder", "train_set", "test_set", "mode", "seed", "device", "progress"}
_RESERVED |= {"attributes", "n_boot", "level", "min_group_size"}


def _check_finetune_params(classifier: str, params: dict[str, Any] | None) -> None:
    allowed = set(inspect.signature(finetune).parameters) - _RESERVED
    unknown = sorted(set(params or {}) - allowed)
    if unknown:
        raise ValueError(
            f"bad classifier_params for {classifier!r}: {unknown} (seed, device and the report "
            f"settings are run_downstream's own arguments); allowed: {', '.join(sorted(allowed))}"
        )


def _resolve_model(model: str | Path | nn.Module) -> tuple[nn.Module, str]:
    if isinstance(model, nn.Module):
        return model, type(model).__name__
    path = Path(model)
    if not (path / CONFIG_FILE).is_file() and (path / "model" / CONFIG_FILE).is_file():
        path = path / "model"  # a training run folder: its exported model
    return load_embedder(path), str(path)


def _resolve_pool(
    model: nn.Module,
    data: str | AttributeDataset,
    *,
    data_params: dict[str, Any] | None,
    root: str | None,
    image_size: int | None,
    source_split: str,
    seed: int,
) -> AttributeDataset:
    if isinstance(data, AttributeDataset):
        if data_params or root is not None or image_size is not None:
            raise ValueError("data_params, root and image_size apply to a dataset given by name")
        return data
    from fairmetric.data.registry import build_splits

    if image_size is None:
        size = tuple(getattr(model, "input_size", ()))
        image_size = int(size[-1]) if len(size) == 3 else 32
    splits = build_splits(data, root=root, image_size=image_size, seed=seed, params=data_params)
    if source_split not in splits:
        raise ValueError(
            f"dataset {data!r} has no split {source_split!r}; it has: {', '.join(splits)}"
        )
    return splits[source_split]


def _value_counts(data: AttributeDataset, attribute: str) -> dict[str, int]:
    """``{value name: count}`` of ``attribute`` in ``data``."""
    names = data.attribute_value_names[attribute]
    counts = np.bincount(data.attribute(attribute), minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts)}


def run_downstream(
    model: str | Path | nn.Module,
    *,
    data: str | AttributeDataset = "colored_digits",
    data_params: dict[str, Any] | None = None,
    root: str | None = None,
    image_size: int | None = None,
    source_split: str = "test",
    test_fraction: float = 0.5,
    classifier: ClassifierName | DownstreamClassifier = "probe",
    classifier_params: dict[str, Any] | None = None,
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
    device: str = "auto",
    batch_size: int = 256,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> DownstreamResult:
    """Fit a downstream classifier on a model's embeddings and report its accuracy per group.

    Args:
        model: an exported model folder (``model.safetensors`` + ``config.json``), a training run
            folder holding one in ``model/``, or a ready ``nn.Module``.
        data: a dataset name (see :data:`fairmetric.data.DATASETS`) or the pool itself as an
            :class:`AttributeDataset`.
        data_params: the dataset builder's keyword arguments (by name only).
        root: local folder of an on-disk dataset (by name only).
        image_size: image side (by name only); default: the model's input size.
        source_split: which split of the named dataset is the pool (``"test"``: classes the
            metric learner never saw).
        test_fraction: share of each class × attribute cell for the downstream-test half.
        classifier: ``"probe"``, ``"knn"``, ``"head"``, ``"end_to_end"`` or a ready
            :class:`DownstreamClassifier`.
        classifier_params: keyword arguments of the classifier (or of :func:`finetune` for
            ``"head"`` and ``"end_to_end"``: ``epochs``, ``lr``, ``backbone_lr``, ...).
        balance: ``"none"``, ``"attribute"`` or ``"imbalanced"`` — applied to the
            downstream-train half only (see :func:`balance_by_attribute`).
        balance_attribute: the attribute to balance by (default: the only one).
        balance_per_class: balance within each class.
        share: the minority share for ``balance="imbalanced"``.
        minority_value: the minority value code for ``balance="imbalanced"``.
        attributes: attributes to evaluate by (default: all; their intersection is added).
        n_boot: bootstrap replicates.
        level: interval coverage.
        min_group_size: groups with fewer downstream-test samples are reported but kept out of
            the gaps (as in :func:`fairmetric.audit`).
        seed: seeds the dataset generation, the split, the balancing, the classifier and the
            bootstrap.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for embedding and finetuning.
        batch_size: embedding batch size.
        out_dir: when given, ``report.json``, ``report.md`` and ``report.html`` are written here.
        progress: show progress bars.
    """
    start = time.perf_counter()
    if not isinstance(classifier, DownstreamClassifier) and classifier not in CLASSIFIERS:
        raise ValueError(
            f"unknown classifier {classifier!r}; valid values: "
            + ", ".join(repr(c) for c in CLASSIFIERS)
        )
    check_mode(balance)
    is_finetune = classifier in ("head", "end_to_end")
    if is_finetune:
        _check_finetune_params(str(classifier), classifier_params)
    clf = None if is_finetune else build_classifier(classifier, classifier_params)  # type: ignore[arg-type]
    net, source = _resolve_model(model)
    pool = _resolve_pool(
        net,
        data,
        data_params=data_params,
        root=root,
        image_size=image_size,
        source_split=source_split,
        seed=seed,
    )
    if attributes is not None:
        for a in attributes:
            pool.attribute_index(a)  # clear error for an unknown attribute
    if balance_attribute is not None:  # a typo fails even when balance is none
        try:
            pool.attribute_index(balance_attribute)
        except ValueError as e:
            raise ValueError(f"balance_attribute (--balance-attribute): {e}") from None
    if balance != "none" and balance_attribute is None:
        if len(pool.attribute_names) != 1:
            raise ValueError(
                "name the attribute to balance by (balance_attribute); the data has: "
                + (", ".join(pool.attribute_names) or "(none)")
            )
        balance_attribute = pool.attribute_names[0]

    strata = [pool.attributes[:, j] for j in range(pool.attributes.shape[1])]
    train_idx, test_idx = stratified_split(
        pool.labels, strata, test_fraction=test_fraction, seed=seed
    )
    n_before = len(train_idx)
    keep = balance_by_attribute(
        pool.subset(train_idx),
        balance_attribute,
        mode=balance,
        per_class=balance_per_class,
        share=share,
        minority_value=minority_value,
        seed=seed,
    )
    train_idx = train_idx[keep]
    train_set, test_set = pool.subset(train_idx), pool.subset(test_idx)

    if is_finetune:
        fitted: DownstreamClassifier | FinetuneResult = finetune(
            net,
            train_set,
            mode=classifier,  # type: ignore[arg-type]
            seed=seed,
            device=device,
            progress=progress,
            **(classifier_params or {}),
        )
        predictions = fitted.predict(test_set, batch_size=batch_size, device=device)
        described: dict[str, Any] = {"name": classifier, **(classifier_params or {})}
        dim = getattr(net, "embedding_dim", None)
    else:
        emb = embed_dataset(net, pool, batch_size=batch_size, device=device, progress=progress)
        assert clf is not None
        with threadpool_limits(1, user_api="blas"):  # see fairmetric.audit: BLAS after faiss
            clf.fit(emb.embeddings[train_idx], emb.labels[train_idx])
            predictions = clf.predict(emb.embeddings[test_idx])
        fitted, described, dim = clf, clf.describe(), emb.dim

    groups, names = groups_of(test_set, attributes)
    metadata: dict[str, Any] = {
        "title": "fairmetric downstream evaluation",
        "source": source,
        "task": (
            f"classify the {len(np.unique(pool.labels))} classes of {pool.name}: downstream "
            f"train/test split {1 - test_fraction:g}/{test_fraction:g}, stratified by class × "
            "attributes"
        ),
        "dataset": pool.name,
        "dim": dim,
        "classifier": described,
        "balance": balance,
        "balance_attribute": balance_attribute,
        "n_train": int(len(train_idx)),
        "n_train_before_balance": int(n_before),
        "n_test": int(len(test_idx)),
        "train_counts": {a: _value_counts(train_set, a) for a in pool.attribute_names},
    }
    with threadpool_limits(1, user_api="blas"):
        report = evaluate_downstream(
            test_set.labels,
            predictions,
            groups,
            group_names=names,
            n_boot=n_boot,
            seed=seed,
            level=level,
            min_group_size=min_group_size,
            metadata=metadata,
        )
    report.metadata["seconds"] = round(time.perf_counter() - start, 3)
    paths = write_report(report, out_dir) if out_dir is not None else {}
    return DownstreamResult(
        report=report,
        predictions=np.asarray(predictions),
        labels=test_set.labels.copy(),
        train_indices=train_idx,
        test_indices=test_idx,
        classifier=fitted,
        paths=paths,
    )
