"""Downstream tasks on embeddings: linear probe, k-NN and finetuning, evaluated per subgroup.

``run_downstream(model_dir, classifier="probe")`` splits a dataset's test split (classes the metric
learner never saw) into downstream-train and downstream-test halves, optionally balances the
training half by an attribute, fits the classifier and returns (and writes) an
:class:`~fairmetric.report.result.AuditReport` of accuracy per group — the same result object and
report files as an embedding audit. ``run_on_embeddings(emb_or_file, classifier=...)`` does the
same on embeddings already computed (an ``EmbeddingSet`` or its ``.npz``/``.safetensors`` file)
with any scikit-learn estimator, and every report has accuracy, balanced accuracy and macro-F1. The pieces work on their own too: :class:`LinearProbe`,
:class:`KNNClassifier` and :class:`HeadClassifier` fit ``(N, D)`` embeddings, :func:`finetune`
trains a head or the whole embedder on a dataset, :func:`balance_by_attribute` subsamples a training
set, and :func:`evaluate_downstream` turns predictions into the per-group report.
"""

from fairmetric.downstream.balance import BalanceMode, balance_by_attribute, balance_indices
from fairmetric.downstream.base import DownstreamClassifier
from fairmetric.downstream.embedded import is_embedding_file, run_on_embeddings
from fairmetric.downstream.estimator import EstimatorClassifier, make_classifier
from fairmetric.downstream.evaluate import METRICS, evaluate_downstream, groups_of
from fairmetric.downstream.finetune import FinetuneMode, FinetuneResult, finetune
from fairmetric.downstream.head import HeadClassifier, make_head
from fairmetric.downstream.knn import KNNClassifier
from fairmetric.downstream.metrics import balanced_accuracy, macro_f1
from fairmetric.downstream.probe import LinearProbe
from fairmetric.downstream.run import (
    CLASSIFIERS,
    DownstreamResult,
    build_classifier,
    run_downstream,
)
from fairmetric.downstream.split import stratified_split

__all__ = [
    "BalanceMode",
    "CLASSIFIERS",
    "DownstreamClassifier",
    "DownstreamResult",
    "EstimatorClassifier",
    "FinetuneMode",
    "FinetuneResult",
    "HeadClassifier",
    "KNNClassifier",
    "LinearProbe",
    "METRICS",
    "balance_by_attribute",
    "balance_indices",
    "balanced_accuracy",
    "build_classifier",
    "evaluate_downstream",
    "finetune",
    "groups_of",
    "is_embedding_file",
    "macro_f1",
    "make_classifier",
    "make_head",
    "run_downstream",
    "run_on_embeddings",
    "stratified_split",
]
