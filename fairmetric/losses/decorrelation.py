r"""PARADE's decorrelation between the target embedding and an attribute embedding.

PARADE (Dullerud et al., ICLR 2022) trains, on the shared backbone, a target embedding
:math:`e_i = \psi_t(h_i)` and per sensitive attribute an embedding :math:`e^s_i = \psi_s(h_i)`
with a metric loss on the attribute labels, and adds :math:`\rho \, L_{dec}(e, e^s)` so the target
embedding keeps only what is not predictable from the attribute embedding. Two estimators share
one interface, ``module(e, e_s)`` → unweighted scalar; the caller multiplies by :math:`\rho` and
adds it to the loss it minimises:

- :class:`AdversarialDecorrelation` — the reference (Roth et al.'s MIC/DiVA code, which PARADE
  built on): a learned network :math:`\xi` behind gradient reversal.
- :class:`CrossCovarianceDecorrelation` — a closed form with no adversary: the squared Frobenius
  norm of the batch cross-covariance, :func:`cross_covariance_penalty`.

:func:`embedding_correlation` (the RV coefficient) measures linear dependence between two
embedding batches for tests and training logs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairmetric.models.heads import MLP, _check_dim, grad_reverse

__all__ = [
    "AdversarialDecorrelation",
    "BaseDecorrelation",
    "CrossCovarianceDecorrelation",
    "build_decorrelation",
    "check_embedding_batch",
    "cross_covariance_penalty",
    "embedding_correlation",
]


def check_embedding_batch(
    x: torch.Tensor, name: str, *, dim: int | None = None, min_rows: int = 1
) -> None:
    """Check that ``x`` is a finite floating ``(N, D)`` tensor (``D == dim`` when given).

    Raises:
        ValueError: naming ``name``, the expected shape and the fix.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} has {x.shape[1]} columns but this module was built for {dim}; build it "
            f"with the embedding size of {name}"
        )
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf values; check the model and learning rate")


def _check_pair(
    e: torch.Tensor,
    e_s: torch.Tensor,
    *,
    min_rows: int = 1,
    dims: tuple[int | None, int | None] = (None, None),
) -> None:
    check_embedding_batch(e, "e", dim=dims[0], min_rows=min_rows)
    check_embedding_batch(e_s, "e_s", dim=dims[1], min_rows=min_rows)
    if e.shape[0] != e_s.shape[0]:
        raise ValueError(
            f"e and e_s must hold the same samples: got {e.shape[0]} and {e_s.shape[0]} rows"
        )


def cross_covariance_penalty(e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
    r"""Squared Frobenius norm of the batch cross-covariance between ``e`` and ``e_s``.

    .. math::

        C = \frac{1}{N-1} (e - \bar e)^\top (e_s - \bar e_s) \in \mathbb{R}^{D \times D_s},
        \qquad \mathrm{penalty} = \lVert C \rVert_F^2 = \sum_{k,l} C_{kl}^2,

    with :math:`\bar e, \bar e_s` the batch means and the unbiased :math:`N - 1` divisor (as
    ``torch.cov``). It is 0 exactly when every coordinate of ``e`` is linearly uncorrelated with
    every coordinate of ``e_s`` in the batch, differentiable everywhere, and needs no adversary.
    It depends on the embeddings' scale, so apply it to normalised embeddings (or fix their scale).

    Args:
        e: target embeddings ``(N, D)``.
        e_s: attribute embeddings ``(N, D_s)`` of the same samples, ``N >= 2``.
    """
    _check_pair(e, e_s, min_rows=2)
    return _cross_covariance_penalty(e, e_s)


def _cross_covariance_penalty(e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
    ec = e - e.mean(dim=0, keepdim=True)
    sc = e_s - e_s.mean(dim=0, keepdim=True)
    cov = ec.T @ sc / (e.shape[0] - 1)
    return cov.pow(2).sum()


def embedding_correlation(e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
    r"""RV coefficient between two embedding batches: a scalar in [0, 1] of linear dependence.

    With centred batches :math:`X = e - \bar e`, :math:`Y = e_s - \bar e_s`:

    .. math::

        \mathrm{RV}(X, Y) = \frac{\lVert X^\top Y \rVert_F^2}
            {\lVert X^\top X \rVert_F \, \lVert Y^\top Y \rVert_F}
        = \frac{\mathrm{tr}(\Sigma_{XY} \Sigma_{YX})}
            {\sqrt{\mathrm{tr}(\Sigma_{XX}^2) \, \mathrm{tr}(\Sigma_{YY}^2)}}

    (Robert & Escoufier 1976), the cross-covariance penalty normalised by the two
    auto-covariances. It is 0 when the batches are linearly uncorrelated and 1 exactly when
    :math:`Y = c X Q` for a scalar :math:`c \neq 0` and an orthogonal :math:`Q` (a rotation and
    rescaling, plus any offset); a general linear map gives a value in (0, 1]. Unlike canonical
    correlations it needs no matrix inverse, so it stays meaningful when the batch is smaller
    than the embedding dimension; for independent data it is biased upwards by roughly
    :math:`\sqrt{D D_s}/N` (isotropic case), so compare values at the same ``N``. Defined as 0 if
    either batch is constant.

    Returns:
        A 0-d tensor (differentiable; call ``.item()`` to log it).
    """
    _check_pair(e, e_s, min_rows=2)
    x = e - e.mean(dim=0, keepdim=True)
    y = e_s - e_s.mean(dim=0, keepdim=True)
    num = (x.T @ y).pow(2).sum()
    den = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if float(den) == 0.0:
        return torch.zeros((), dtype=e.dtype, device=e.device)
    return num / den


class BaseDecorrelation(nn.Module):
    """Shared plumbing: ``forward(e, e_s)`` validates the batch, subclasses fill in ``compute``.

    The returned scalar is unweighted; the caller minimises ``rho * module(e, e_s)``.
    """

    min_rows = 1

    def __init__(self, target_dim: int, attribute_dim: int) -> None:
        super().__init__()
        self.target_dim = _check_dim(target_dim, "target_dim")
        self.attribute_dim = _check_dim(attribute_dim, "attribute_dim")

    def forward(self, e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
        _check_pair(e, e_s, min_rows=self.min_rows, dims=(self.target_dim, self.attribute_dim))
        return self.compute(e, e_s)

    def compute(self, e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class AdversarialDecorrelation(BaseDecorrelation):
    r"""PARADE's reference decorrelation: a network :math:`\xi` behind gradient reversal.

    .. math::

        L_{dec} = -\frac{1}{N D} \sum_i \sum_k
            \big[\, \hat e_i \odot \mathrm{normalize}(\xi(\hat e^s_i)) \,\big]_k^2,
        \qquad \hat e = \mathrm{normalize}(R(e)), \ \hat e^s = \mathrm{normalize}(R(e_s)),

    where :math:`R` is gradient reversal (:math:`\alpha = 1`) and :math:`\xi` an MLP
    ``attribute_dim → hidden → target_dim`` (Linear-ReLU-Linear, as in Roth et al.'s DiVA code,
    ``criteria/adversarial_separation.py``, which also re-normalises after the reversal; pass
    ``normalize_inputs=False`` to skip that when the inputs may not be unit vectors by design).

    **Signs.** The caller adds :math:`\rho L_{dec}` (:math:`\rho \ge 0`) to the loss and runs
    gradient *descent* on every parameter:

    - :math:`\xi` sits after the reversal, so it gets the plain gradient of :math:`\rho L_{dec}`
      and *minimises* :math:`L_{dec}`, i.e. *maximises* the squared agreement between
      :math:`e_i` and its prediction :math:`\xi(e^s_i)`: it learns to predict ``e`` from ``e_s``.
    - ``e`` and ``e_s`` (and through them the target head, the attribute head and the backbone)
      sit before the reversal, so they get the gradient of :math:`-\rho L_{dec}` and *maximise*
      :math:`L_{dec}`, i.e. *minimise* the squared agreement: they remove from ``e`` what
      :math:`\xi` can predict from ``e_s``.

    The value is :math:`\le 0` and falls (more negative) as :math:`\xi` improves, so a logged
    :math:`L_{dec}` is a min-max game value, not a monotone progress measure; log
    :func:`embedding_correlation` for that. Give ``xi``'s parameters their own learning rate
    (the reference uses 1e-5): ``optimizer.add_param_group({"params": dec.xi.parameters(), ...})``.

    Args:
        target_dim: size of ``e``.
        attribute_dim: size of ``e_s``.
        hidden: width of :math:`\xi`'s hidden layer (reference: 512).
        normalize_inputs: L2-normalise ``e`` and ``e_s`` after the reversal (reference: yes).
    """

    def __init__(
        self,
        target_dim: int,
        attribute_dim: int,
        hidden: int = 512,
        *,
        normalize_inputs: bool = True,
    ) -> None:
        super().__init__(target_dim, attribute_dim)
        self.normalize_inputs = bool(normalize_inputs)
        self.xi = MLP(self.attribute_dim, self.target_dim, hidden=hidden, layers=2)

    def compute(self, e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
        e_r, s_r = grad_reverse(e), grad_reverse(e_s)
        if self.normalize_inputs:
            e_r, s_r = F.normalize(e_r, dim=1), F.normalize(s_r, dim=1)
        prediction = F.normalize(self.xi(s_r), dim=1)
        return -(e_r * prediction).pow(2).mean()


class CrossCovarianceDecorrelation(BaseDecorrelation):
    """Closed-form decorrelation: :func:`cross_covariance_penalty` (``>= 0``), no adversary.

    Minimising ``rho * module(e, e_s)`` pushes both embeddings (and the backbone) towards zero
    batch cross-covariance. It has no parameters; batches need ``N >= 2``.
    """

    min_rows = 2

    def __init__(self, target_dim: int, attribute_dim: int, hidden: int = 512) -> None:
        # ``hidden`` is accepted (and ignored) so both estimators build from the same arguments
        super().__init__(target_dim, attribute_dim)

    def compute(self, e: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
        return _cross_covariance_penalty(e, e_s)


DecorrelationKind = Literal["adversarial", "cross_covariance"]

_DECORRELATIONS: dict[str, type[BaseDecorrelation]] = {
    "adversarial": AdversarialDecorrelation,
    "cross_covariance": CrossCovarianceDecorrelation,
}


def build_decorrelation(
    kind: DecorrelationKind | BaseDecorrelation,
    target_dim: int,
    attribute_dim: int,
    hidden: int = 512,
) -> BaseDecorrelation:
    """Build a decorrelation estimator by name, or return a ready one unchanged.

    Args:
        kind: ``"adversarial"`` (:class:`AdversarialDecorrelation`, the PARADE reference) or
            ``"cross_covariance"`` (:class:`CrossCovarianceDecorrelation`), or a module.
        target_dim: size of the target embedding ``e``.
        attribute_dim: size of the attribute embedding ``e_s``.
        hidden: width of the adversarial network ξ (ignored by ``cross_covariance``).
    """
    if isinstance(kind, BaseDecorrelation):
        return kind
    if not isinstance(kind, str) or kind not in _DECORRELATIONS:
        raise ValueError(
            f"unknown decorrelation kind {kind!r}; choose one of {sorted(_DECORRELATIONS)}"
        )
    return _DECORRELATIONS[kind](target_dim, attribute_dim, hidden)
