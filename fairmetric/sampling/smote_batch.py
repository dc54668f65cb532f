"""SMOTE inside a training batch (METHODS.md §2): synthetic embeddings computed in torch.

A synthetic embedding is ``e_i + λ (e_j − e_i)`` for a base ``i`` of an under-filled cell of the
batch and one of its ``k`` nearest same-cell members ``j``; computed in torch so gradients flow
into both endpoints. The offline, faiss-backed counterpart is
:class:`~fairmetric.sampling.smote.EmbeddingSMOTE`.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F

from fairmetric.sampling._smote_checks import RATIO_MODES, _check_choice, _check_int

__all__ = ["smote_batch"]

_BATCH_GROUP_BY = ("class", "class_attribute")


def smote_batch(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor | None,
    *,
    k_neighbors: int = 3,
    group_by: str = "class_attribute",
    ratio_mode: str = "uniform",
    target: str | float = "auto",
    generator: torch.Generator | None = None,
    normalize: bool = False,
    return_provenance: bool = False,
    scope: str = "class",
) -> Any:
    """Synthetic minority embeddings for one training batch.

    Cells (classes, or (class, attribute) pairs) present in the batch are topped up: with
    ``target="auto"`` to the size of the *reference* cell, with a float ``r > 0`` to
    ``ceil(r × reference)``. The reference (``scope``) is, for ``group_by="class_attribute"``, the
    largest cell **of the same class** (``scope="class"``, the default: SMOTE balances the
    attribute groups within each class) or the largest cell of the whole batch
    (``scope="batch"``, the behaviour before issue 13). For ``group_by="class"`` both are the
    largest class of the batch.

    Why the scope matters under m-per-class batches: a class's ``m`` samples rarely hold two
    members of a minority group (at 95:5 with ``m = 4`` a batch of 16 classes holds ~3 minority
    rows, nearly always alone in their class), so the minority cells are singletons and are
    skipped, while the *majority* cell of the same class (``m - 1`` rows) is smaller than the
    batch's largest cell (``m``) and, with ``scope="batch"``, was topped up: on the synthetic
    identities benchmark that produced ~3.2 synthetic majority rows and ~0.45 minority rows per
    step -- SMOTE over-sampled the majority. With ``scope="class"`` no majority row is made, and
    minority rows only where a class holds two minority members in the batch (see
    ``sampling.name=class_mixed``, which puts them together). For each synthetic row a base is drawn uniformly (with replacement)
    from its cell, a neighbour uniformly among the base's ``k_neighbors`` nearest members of the
    same cell (``torch.cdist`` on the detached batch, the base excluded by index), and
    ``e_base + λ (e_nbr − e_base)`` is formed in torch, so gradients reach both endpoints
    (``∂/∂e_base = 1 − λ``, ``∂/∂e_nbr = λ``).

    Small cells: a cell with fewer than 2 members is skipped (nothing to interpolate with); a cell
    with fewer than ``k_neighbors + 1`` members uses **all its other members** as neighbours.

    Args:
        embeddings: ``(B, D)`` batch embeddings (any device; gradients are kept).
        labels: ``(B,)`` class labels.
        groups: ``(B,)`` attribute values, required for ``group_by="class_attribute"``.
        k_neighbors: neighbours per base (``>= 1``).
        group_by: ``"class"`` or ``"class_attribute"``; ``"attribute"`` is rejected because a
            synthetic row needs a class label and an attribute cell mixes classes.
        ratio_mode: ``"uniform"`` (``λ ~ U[0, 1)``) or ``"midpoint"`` (``λ = 0.5``).
        target: ``"auto"`` or a positive float ``r``.
        generator: a ``torch.Generator`` for reproducible draws (its device is used for them).
        normalize: L2-normalise the synthetic rows (for L2-normalised embeddings).
        return_provenance: also return ``{"base", "neighbor", "lambdas"}`` (batch indices and
            λ of every synthetic row), for inspection and tests.
        scope: ``"class"`` or ``"batch"``: the cell whose size is the target (see above).

    Returns:
        ``(synthetic_embeddings (S, D), synthetic_labels (S,), synthetic_groups (S,) or None)``
        — the label and group of each synthetic row are its base's; ``S = 0`` gives empty
        tensors of shape ``(0, D)`` and ``(0,)``. ``synthetic_groups`` is ``None`` when
        ``groups`` is. With ``return_provenance`` a fourth element, the dict above.
    """
    k = _check_int(k_neighbors, "k_neighbors", 1)
    if group_by == "attribute":
        raise ValueError(
            "smote_batch cannot use group_by='attribute': every synthetic embedding needs a class "
            "label for the metric loss, and an attribute cell mixes classes (its neighbours "
            "could be of another class); use group_by='class_attribute' to oversample attribute "
            "subgroups within each class"
        )
    _check_choice(group_by, "group_by", _BATCH_GROUP_BY)
    _check_choice(ratio_mode, "ratio_mode", RATIO_MODES)
    _check_choice(scope, "scope", ("class", "batch"))
    if isinstance(target, str):
        _check_choice(target, "target", ("auto",), " or a positive float")
    elif not (
        isinstance(target, Real)
        and not isinstance(target, bool)
        and math.isfinite(target)
        and target > 0
    ):
        raise ValueError(f"target must be 'auto' or a positive float, got {target!r}")
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if hasattr(embeddings, "shape") else type(embeddings)
        raise ValueError(f"embeddings must be a 2-D tensor (B, D), got {shape}")
    b, d = embeddings.shape
    device = embeddings.device
    labels = torch.as_tensor(labels, device=device)
    if labels.shape != (b,):
        raise ValueError(
            f"labels must have shape ({b},) to match embeddings, got {tuple(labels.shape)}"
        )
    if groups is not None:
        groups = torch.as_tensor(groups, device=device)
        if groups.shape != (b,):
            raise ValueError(
                f"groups must have shape ({b},) to match embeddings, got {tuple(groups.shape)}"
            )
    if group_by == "class_attribute" and groups is None:
        raise ValueError(
            "group_by='class_attribute' needs groups (one attribute value per row); pass groups "
            "or use group_by='class'"
        )

    def empty() -> Any:
        out = (
            embeddings.new_empty((0, d)),
            labels.new_empty((0,)),
            None if groups is None else groups.new_empty((0,)),
        )
        if return_provenance:
            idx = torch.empty(0, dtype=torch.long, device=device)
            return (
                *out,
                {"base": idx, "neighbor": idx.clone(), "lambdas": embeddings.new_empty(0)},
            )
        return out

    if b < 2:
        return empty()
    _, codes, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    cell_class = torch.arange(len(counts), device=device)
    if group_by == "class_attribute":
        class_codes = codes
        g_uniq, g_codes = torch.unique(groups, return_inverse=True)
        pair = codes * len(g_uniq) + g_codes
        uniq_pair, codes, counts = torch.unique(pair, return_inverse=True, return_counts=True)
        cell_class = uniq_pair // len(g_uniq)
    if scope == "class" and group_by == "class_attribute":
        n_classes = int(class_codes.max()) + 1
        largest = counts.new_zeros(n_classes).scatter_reduce(
            0, cell_class, counts, reduce="amax", include_self=False
        )[cell_class]
    else:
        largest = counts.max().expand_as(counts)
    if isinstance(target, str):
        goal = largest
    else:
        goal = torch.ceil(torch.round(float(target) * largest.double(), decimals=9)).long()
    n_new = (goal - counts).clamp(min=0)
    n_new[counts < 2] = 0
    total = int(n_new.sum())
    if total == 0:
        return empty()

    with torch.no_grad():
        emb = embeddings.detach()
        dist = torch.cdist(emb, emb)
        dist.masked_fill_(codes[:, None] != codes[None, :], math.inf)
        dist.fill_diagonal_(math.inf)
        knn = torch.topk(dist, min(k, b - 1), dim=1, largest=False).indices  # (B, k')
        k_eff = (counts - 1).clamp(max=k)  # neighbours available per cell

        order = torch.argsort(codes, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        cell = torch.repeat_interleave(torch.arange(len(counts), device=device), n_new)
        rdev = generator.device if generator is not None else device
        u = torch.rand((3, total), generator=generator, device=rdev, dtype=torch.float64).to(device)
        size = counts[cell]
        pos = torch.minimum((u[0] * size).long(), size - 1)
        base = order[starts[cell] + pos]
        kc = k_eff[cell]
        col = torch.minimum((u[1] * kc).long(), kc - 1)
        nbr = knn[base, col]
        if ratio_mode == "uniform":
            lam = u[2].to(embeddings.dtype)
        else:
            lam = torch.full((total,), 0.5, dtype=embeddings.dtype, device=device)

    e_base = embeddings[base]
    synthetic = e_base + lam[:, None] * (embeddings[nbr] - e_base)
    if normalize:
        synthetic = F.normalize(synthetic, dim=1)
    out = (synthetic, labels[base], None if groups is None else groups[base])
    if return_provenance:
        return (*out, {"base": base, "neighbor": nbr, "lambdas": lam})
    return out
