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
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch.nn as nn
from threadpoolctl import threadpool_limits

from fairmetric.data.dataset import AttributeDataset
from fairmetric.downstream.balance import BalanceMode, check_mode, split_and_balance
from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.downstream.evaluate import groups_of
from fairmetric.downstream.finetune import FinetuneResult, finetune
from fairmetric.downstream.knn import KNNClassifier
from fairmetric.downstream.probe import LinearProbe
from fairmetric.downstream.result import DownstreamResult, finish, split_metadata
from fairmetric.models.embed import embed_dataset
from fairmetric.models.embedder import CONFIG_FILE, load_embedder
from fairmetric.report.frame import DEFAULT_MIN_GROUP_SIZE

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
    classifier: Any, params: dict[str, Any] | None = None, *, seed: int = 0
) -> DownstreamClassifier:
    """A classifier on fixed embeddings from a name (``"probe"``, ``"knn"``, or a dotted class
    name such as ``"sklearn.svm.LinearSVC"``) and keyword arguments, a class, or a ready object
    with ``fit``/``predict`` (then ``params`` must be empty); see
    :func:`~fairmetric.downstream.estimator.make_classifier`."""
    from fairmetric.downstream.estimator import make_classifier

    if isinstance(classifier, str) and classifier not in EMBEDDING_CLASSIFIERS:
        if "." not in classifier and ":" not in classifier:
            raise ValueError(
                f"unknown classifier {classifier!r}; valid values: "
                + ", ".join(repr(c) for c in EMBEDDING_CLASSIFIERS)
                + ", or a dotted class name such as sklearn.linear_model.LogisticRegression"
            )
    return make_classifier(classifier, params, seed=seed)


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


#: run_downstream's arguments for a model and a dataset, with their defaults
_MODEL_ONLY = {
    "data": "colored_digits",
    "data_params": None,
    "root": None,
    "image_size": None,
    "source_split": "test",
    "device": "auto",
    "batch_size": 256,
    "progress": False,
}


def _is_embeddings(model: Any) -> bool:
    from fairmetric.downstream.embedded import is_embedding_file
    from fairmetric.embeddings import EmbeddingSet

    if isinstance(model, EmbeddingSet):
        return True
    return isinstance(model, (str, Path)) and is_embedding_file(model)


def _delegate_to_embeddings(
    model: Any, model_args: dict[str, Any], args: dict[str, Any]
) -> DownstreamResult:
    """run_downstream on embeddings: refuse the model-only arguments, then run_on_embeddings."""
    from fairmetric.downstream.embedded import run_on_embeddings

    given = sorted(k for k, v in model_args.items() if v != _MODEL_ONLY[k])
    if given:
        raise ValueError(
            f"{', '.join(given)} apply to a model and a dataset, not to embeddings that are "
            "already computed; leave them out"
        )
    return run_on_embeddings(model, **args)


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


def run_downstream(
    model: str | Path | nn.Module | Any,
    *,
    data: str | AttributeDataset = "colored_digits",
    data_params: dict[str, Any] | None = None,
    root: str | None = None,
    image_size: int | None = None,
    source_split: str = "test",
    test_fraction: float = 0.5,
    classifier: ClassifierName | str | Any = "probe",
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
            folder holding one in ``model/``, or a ready ``nn.Module``; or embeddings already
            computed (an :class:`~fairmetric.embeddings.EmbeddingSet` or an ``.npz`` /
            ``.safetensors`` file it saved), handed to
            :func:`~fairmetric.downstream.embedded.run_on_embeddings` with the split, balance,
            classifier and report arguments (the dataset and model arguments must stay unset).
        data: a dataset name (see :data:`fairmetric.data.DATASETS`) or the pool itself as an
            :class:`AttributeDataset`.
        data_params: the dataset builder's keyword arguments (by name only).
        root: local folder of an on-disk dataset (by name only).
        image_size: image side (by name only); default: the model's input size.
        source_split: which split of the named dataset is the pool (``"test"``: classes the
            metric learner never saw).
        test_fraction: share of each class × attribute cell for the downstream-test half.
        classifier: ``"probe"``, ``"knn"``, ``"head"``, ``"end_to_end"``, a dotted class name
            of any scikit-learn-style estimator (``"sklearn.svm.LinearSVC"``), a class, or an
            object with ``fit``/``predict`` (see
            :func:`~fairmetric.downstream.estimator.make_classifier`). For embeddings that are
            already computed (an ``EmbeddingSet`` or an embedding file) use
            :func:`~fairmetric.downstream.embedded.run_on_embeddings`.
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
    if _is_embeddings(model):
        return _delegate_to_embeddings(
            model,
            dict(
                data=data,
                data_params=data_params,
                root=root,
                image_size=image_size,
                source_split=source_split,
                device=device,
                batch_size=batch_size,
                progress=progress,
            ),
            dict(
                classifier=classifier,
                classifier_params=classifier_params,
                test_fraction=test_fraction,
                balance=balance,
                balance_attribute=balance_attribute,
                balance_per_class=balance_per_class,
                share=share,
                minority_value=minority_value,
                attributes=attributes,
                n_boot=n_boot,
                level=level,
                min_group_size=min_group_size,
                seed=seed,
                out_dir=out_dir,
            ),
        )
    start = time.perf_counter()
    if isinstance(classifier, str) and "." not in classifier and ":" not in classifier:
        if classifier not in CLASSIFIERS:
            raise ValueError(
                f"unknown classifier {classifier!r}; valid values: "
                + ", ".join(repr(c) for c in CLASSIFIERS)
                + ", or a dotted class name such as sklearn.linear_model.LogisticRegression"
            )
    check_mode(balance)
    is_finetune = isinstance(classifier, str) and classifier in ("head", "end_to_end")
    if is_finetune:
        _check_finetune_params(str(classifier), classifier_params)
    clf = None if is_finetune else build_classifier(classifier, classifier_params, seed=seed)
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
    train_idx, test_idx, n_before, balance_attribute = split_and_balance(
        pool,
        test_fraction=test_fraction,
        seed=seed,
        balance=balance,
        balance_attribute=balance_attribute,
        balance_per_class=balance_per_class,
        share=share,
        minority_value=minority_value,
    )
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
        classifier=fitted,
    )
