r"""PARADE's decorrelation between the target embedding and an attribute embedding.

PARADE (Dullerud et al., ICLR 2022) trains, on the shared backbone, a target embedding
:math:`e_i = \psi_t(h_i)` and per sensitive attribute an embedding :math:`e^s_i = \psi_s(h_i)`
with a metric loss on the attribute labels, and adds :math:`\rho \, L_{dec}(e, e^s)` so the target
embedding keeps only what is not predictable from the attribute embedding. Three estimators share
one interface, ``module(e, e_s, weights=None)`` → unweighted scalar; the caller multiplies by
:math:`\rho` and adds it to the loss it minimises:

- :class:`RVDecorrelation` (``"rv"``, fairmetric's default) — a closed form that cannot be
  satisfied by shrinking the embedding: the chance-corrected RV coefficient,
  :func:`rv_penalty`, invariant to isotropic scaling, rotation and offset of either embedding.
- :class:`CrossCovarianceDecorrelation` (``"cross_covariance"``) — the squared Frobenius norm of
  the batch cross-covariance, :func:`cross_covariance_penalty`. Not scale-invariant: squeezing
  unit embeddings into a small cap lowers it (collapse) without removing any dependence.
- :class:`AdversarialDecorrelation` (``"adversarial"``) — the reference (Roth et al.'s MIC/DiVA
  code, which PARADE built on): a learned network :math:`\xi` behind gradient reversal.

Every estimator takes optional row ``weights`` (``(N,)``, non-negative; normalised to sum 1):
:func:`balanced_weights` gives each value of the sensitive attribute equal total weight, so that
at 95:5 the few minority rows of a batch are not drowned by the majority's statistics.

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
    "RVDecorrelation",
    "balanced_weights",
    "build_decorrelation",
    "check_embedding_batch",
    "cross_covariance_penalty",
    "embedding_correlation",
    "rv_penalty",
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


def _check_weights(weights: torch.Tensor | None, e: torch.Tensor) -> torch.Tensor | None:
    """``weights`` as a ``(N,)`` tensor of ``e``'s dtype summing to 1 (``None`` stays ``None``)."""
    if weights is None:
        return None
    if not isinstance(weights, torch.Tensor) or weights.shape != (e.shape[0],):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
        raise ValueError(
            f"weights must be a tensor of shape ({e.shape[0]},) (one per row), got {shape}"
        )
    weights = weights.to(device=e.device, dtype=e.dtype)
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError("weights must be finite and >= 0 (e.g. balanced_weights(codes))")
    total = weights.sum()
    if float(total) <= 0:
        raise ValueError("weights must not all be 0")
    return weights / total


def balanced_weights(
    codes: torch.Tensor, num_values: int | None = None, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""Row weights under which every attribute value in the batch carries equal total weight.

    .. math:: w_i = \frac{1}{G \, n_{g(i)}}, \qquad \sum_i w_i = 1,

    with :math:`n_g` the number of rows of value :math:`g` and :math:`G` the number of values
    *present in the batch*. When the batch holds one value only, :math:`G = 1` and the weights are
    uniform, :math:`1/N` (the unweighted statistics): a documented fallback, never NaN.
    Duplicating the rows of one group leaves every weighted mean (and so every balanced
    statistic below) unchanged.

    Args:
        codes: ``(N,)`` integer attribute codes in ``[0, num_values)``.
        num_values: number of attribute values; ``None`` reads it from ``codes`` (a device sync).
            Given, the weights are computed without synchronising with the device.
        dtype: floating dtype of the weights.
    """
    if not isinstance(codes, torch.Tensor) or codes.ndim != 1:
        raise ValueError("codes must be a (N,) tensor of integer attribute codes")
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise ValueError(f"codes must be integer attribute codes, got {codes.dtype}")
    codes = codes.long()
    if num_values is None:
        num_values = int(codes.max()) + 1 if len(codes) else 1
    counts = torch.zeros(num_values, dtype=dtype, device=codes.device)
    counts.scatter_add_(0, codes, torch.ones(len(codes), dtype=dtype, device=codes.device))
    present = (counts > 0).sum().to(dtype)
    return 1.0 / (present * counts[codes])


def _centre(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``x`` minus its (weighted) batch mean."""
    if w is None:
        return x - x.mean(dim=0, keepdim=True)
    return x - (w[:, None] * x).sum(dim=0, keepdim=True)


def cross_covariance_penalty(
    e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Squared Frobenius norm of the batch cross-covariance between ``e`` and ``e_s``.

    .. math::

        C = \frac{1}{N-1} (e - \bar e)^\top (e_s - \bar e_s) \in \mathbb{R}^{D \times D_s},
        \qquad \mathrm{penalty} = \lVert C \rVert_F^2 = \sum_{k,l} C_{kl}^2,

    with :math:`\bar e, \bar e_s` the batch means and the unbiased :math:`N - 1` divisor (as
    ``torch.cov``). It is 0 exactly when every coordinate of ``e`` is linearly uncorrelated with
    every coordinate of ``e_s`` in the batch, differentiable everywhere, and needs no adversary.

    With row weights :math:`w` (normalised to :math:`\sum_i w_i = 1`) the means and the
    covariance are weighted, :math:`C_w = \sum_i w_i (e_i - \bar e^w)(e^s_i - \bar e^{s,w})^\top`
    with :math:`\bar e^w = \sum_i w_i e_i`: the covariance of the reweighted distribution, with
    no :math:`N-1` correction, so that duplicating rows leaves it unchanged.

    **Collapse caveat.** The value scales with the embeddings: :math:`C(a e, e_s) = a\,C(e, e_s)`.
    On unit embeddings it is lowered by squeezing every ``e_i`` into a small cap around one
    direction (scaling the spread by 0.1 divides the penalty by about 100) without removing any
    dependence, and Recall@1 does not see it. Prefer :func:`rv_penalty`; use this one only when
    the embedding's spread is otherwise held fixed. Its magnitude on unit embeddings spread over
    ``D`` and ``D_s`` dimensions is at most about :math:`1/\sqrt{D_\text{eff} D_{s,\text{eff}}}`
    (fully dependent), so :math:`\rho` must grow with the embedding sizes.

    Args:
        e: target embeddings ``(N, D)``.
        e_s: attribute embeddings ``(N, D_s)`` of the same samples, ``N >= 2``.
        weights: optional ``(N,)`` non-negative row weights (e.g. :func:`balanced_weights`).
    """
    _check_pair(e, e_s, min_rows=2)
    return _cross_covariance_penalty(e, e_s, _check_weights(weights, e))


def _cross_covariance_penalty(
    e: torch.Tensor, e_s: torch.Tensor, w: torch.Tensor | None = None
) -> torch.Tensor:
    ec, sc = _centre(e, w), _centre(e_s, w)
    if w is None:
        cov = ec.T @ sc / (e.shape[0] - 1)
    else:
        cov = (w[:, None] * ec).T @ sc
    return cov.pow(2).sum()


def _rv_parts(
    e: torch.Tensor, e_s: torch.Tensor, w: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(RV coefficient, its chance level) of the (weighted) batch, without device syncs."""
    n = e.shape[0]
    if w is None:
        w = torch.full((n,), 1.0 / n, dtype=e.dtype, device=e.device)
    x, y = _centre(e, w), _centre(e_s, w)
    wx = w[:, None] * x
    sxy = wx.T @ y
    sxx = wx.T @ x
    syy = (w[:, None] * y).T @ y
    tiny = torch.finfo(e.dtype).tiny
    nxx, nyy = sxx.pow(2).sum(), syy.pow(2).sum()  # squared Frobenius norms
    den = (nxx * nyy).sqrt().clamp_min(tiny)
    rv = sxy.pow(2).sum() / den
    # chance level: the numerator's expectation when the rows of e_s are paired with those of e
    # at random (weights staying with e's rows; then symmetrised), over the observed denominator.
    # Uniform weights: exactly sqrt(beta_x beta_y) / (N - 1), the permutation expectation of RV.
    m_x = (e - e.mean(dim=0, keepdim=True)).pow(2).sum(dim=1).mean()
    m_y = (e_s - e_s.mean(dim=0, keepdim=True)).pow(2).sum(dim=1).mean()
    w2 = w.pow(2)
    spread = m_y * (w2 * x.pow(2).sum(dim=1)).sum() + m_x * (w2 * y.pow(2).sum(dim=1)).sum()
    # detached: the correction shifts the value, never the gradient. Through it the optimiser
    # could lower the penalty without touching the dependence, by reshaping e's own spread
    # (measured: concentrating it on the minority's heavily weighted rows while the majority
    # collapsed to a point, the penalty at -0.5)
    chance = (n / (n - 1) * 0.5 * spread / den).detach()
    # a constant batch (its spread at the rounding level of centring, about D (eps |e|)^2, against
    # its magnitude) has no dependence: 0, decided on the device (no sync). Rounding noise would
    # otherwise give a beta of order 1 and a nonzero chance level.
    tol = (64 * torch.finfo(e.dtype).eps) ** 2
    varying = (torch.diagonal(sxx).sum() > tol * e.shape[1] * (w[:, None] * e.pow(2)).sum()) & (
        torch.diagonal(syy).sum() > tol * e_s.shape[1] * (w[:, None] * e_s.pow(2)).sum()
    )
    zero = torch.zeros((), dtype=e.dtype, device=e.device)
    return torch.where(varying, rv, zero), torch.where(varying, chance, zero)


def rv_penalty(
    e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The chance-corrected RV coefficient between ``e`` and ``e_s``: a scale-invariant penalty.

    With (weighted) centred batches :math:`X = e - \bar e`, :math:`Y = e_s - \bar e_s` and row
    weights :math:`w` (uniform :math:`1/N` by default; normalised to sum 1), the weighted
    second moments :math:`S_{XY} = X^\top \mathrm{diag}(w) Y` (likewise :math:`S_{XX}, S_{YY}`):

    .. math::

        \mathrm{RV} = \frac{\lVert S_{XY} \rVert_F^2}{\lVert S_{XX} \rVert_F\,
            \lVert S_{YY} \rVert_F}, \qquad
        \mathrm{penalty} = \mathrm{RV} - c, \qquad
        c = \frac{N}{N-1} \cdot
            \frac{\tfrac12 \big(m_Y \sum_i w_i^2 \lVert X_i \rVert^2
                + m_X \sum_i w_i^2 \lVert Y_i \rVert^2\big)}
            {\lVert S_{XX} \rVert_F \, \lVert S_{YY} \rVert_F},

    with :math:`m_X, m_Y` the plain mean squared norms of the (plainly) centred batches. For
    uniform weights :math:`c = \sqrt{\beta_X \beta_Y}/(N-1)`,
    :math:`\beta_X = (\mathrm{tr}\, S_{XX})^2 / \lVert S_{XX} \rVert_F^2` (the batch's effective
    number of dimensions).

    **Why this estimator.** The RV coefficient (Robert & Escoufier 1976) is the cross-covariance
    penalty :math:`\lVert S_{XY} \rVert_F^2` divided by the two auto-covariances, so it is
    invariant to isotropic scaling and offset of either embedding (and to rotations): squeezing
    unit embeddings into a small cap leaves it (nearly) unchanged, so it cannot be satisfied by
    collapse. It is preferred to a per-coordinate cross-*correlation* because a metric embedding
    is only defined up to rotation (the loss sees distances), and because it weighs each
    direction by its variance, i.e. by its share of the distances: a direction that carries the
    attribute but has almost no spread barely moves a retrieval, whereas a per-coordinate
    standardisation would blow it up to unit variance (and divide by near-zero standard
    deviations). Shrinking *only the attribute-carrying directions* of ``e`` does lower it, and
    that is the intended effect: those directions stop shaping the distances.

    **Chance correction.** For a finite batch the plain RV of independent rows is not 0: under
    random pairing of the rows its expectation is exactly :math:`c = \sqrt{\beta_X \beta_Y}/(N-1)`
    (Josse, Pagès & Husson 2008), about 0.4 for ``N = 64`` unit rows in 64 and 32 dimensions. It
    is subtracted, so that the penalty is 0 in expectation for independent rows. With weights,
    :math:`c` is the expectation of the numerator under random pairing (each row of ``e`` keeping
    its weight, then symmetrised) over the observed denominator: at 3 minority rows in 64, under
    balanced weights, the plain weighted RV of independent rows is about 0.8 and the corrected
    penalty averages 0 (measured). :math:`c` is **detached**: it shifts the value, never the
    gradient (the gradient is the RV coefficient's). With a gradient through it the optimiser
    lowered the penalty without touching the dependence, by reshaping ``e``'s own spread (on the
    synthetic-identities demo: the penalty at -0.5 and one group collapsed to a point). The
    penalty is therefore a signed estimate of the dependence: at most :math:`1 - c` (when
    ``e_s`` is a rotation and rescaling of ``e`` plus an offset), slightly negative by chance.

    **Measured limits.** The RV coefficient's denominator grows when ``e`` concentrates its
    variance in few directions, so minimising it also rewards a lower effective rank of ``e``.
    On the synthetic-identities demo (95:5, one seed) ``rv`` at ``rho=1`` with balanced weights
    cut the minimum effective rank from 19.9 to 8.1, collapsed one group (mean resultant length
    1.0) and Recall@1 from 0.50 to 0.38; at ``rho=0.1`` it left the gaps where they were. Judge
    it with a collapse measure and a downstream probe (``fairmetric audit``).

    **Scale of ρ.** The plain RV lies in ``[0, 1]`` whatever ``D`` and ``D_s``: ``rho`` is the
    loss paid for full linear dependence, comparable to the metric loss's own scale (a triplet
    loss with margin 0.2 is of order 0.1), independent of the embedding sizes.

    Args:
        e: target embeddings ``(N, D)``.
        e_s: attribute embeddings ``(N, D_s)`` of the same samples, ``N >= 2``.
        weights: optional ``(N,)`` non-negative row weights (e.g. :func:`balanced_weights`).

    Returns:
        A 0-d tensor, differentiable (as the RV coefficient); 0 when either batch is constant.
    """
    _check_pair(e, e_s, min_rows=2)
    rv, chance = _rv_parts(e, e_s, _check_weights(weights, e))
    return rv - chance


def embedding_correlation(
    e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
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
    than the embedding dimension; for independent data it is biased upwards by
    :math:`\sqrt{\beta_X \beta_Y}/(N-1)` (see :func:`rv_penalty`, which subtracts it), so compare
    values at the same ``N``. Defined as 0 if either batch is constant. With ``weights`` the
    means and moments are weighted (see :func:`rv_penalty`).

    Returns:
        A 0-d tensor (differentiable; call ``.item()`` to log it).
    """
    _check_pair(e, e_s, min_rows=2)
    if weights is not None:
        return _rv_parts(e, e_s, _check_weights(weights, e))[0]
    x = e - e.mean(dim=0, keepdim=True)
    y = e_s - e_s.mean(dim=0, keepdim=True)
    num = (x.T @ y).pow(2).sum()
    den = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if float(den.detach()) == 0.0:
        return torch.zeros((), dtype=e.dtype, device=e.device)
    return num / den


class BaseDecorrelation(nn.Module):
    """Shared plumbing: ``forward(e, e_s, weights)`` validates the batch, subclasses fill in
    ``compute``.

    The returned scalar is unweighted by ``rho``; the caller minimises ``rho * module(e, e_s)``.
    ``weights`` (``(N,)``, optional) are row weights, normalised here to sum 1 and handed to
    ``compute`` (``None``: every row counts the same).
    """

    min_rows = 1

    def __init__(self, target_dim: int, attribute_dim: int) -> None:
        super().__init__()
        self.target_dim = _check_dim(target_dim, "target_dim")
        self.attribute_dim = _check_dim(attribute_dim, "attribute_dim")

    def forward(
        self, e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_pair(e, e_s, min_rows=self.min_rows, dims=(self.target_dim, self.attribute_dim))
        return self.compute(e, e_s, _check_weights(weights, e))

    def compute(
        self, e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
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
    With row weights :math:`w` the mean over rows :math:`\frac1N \sum_i` becomes
    :math:`\sum_i w_i`.

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
    :func:`embedding_correlation` for that, and :meth:`agreement` (:math:`-D \, L_{dec}`, about
    :math:`1/D` for a ξ that predicts nothing) to see whether ξ learns. ξ needs a learning rate
    comparable to the model's: DiVA's 1e-5 was its *whole network's* rate, and next to a model at
    1e-3 it leaves ξ untrained.

    **Scale of ρ and collapse.** :math:`|L_{dec}| \le 1/D` (the agreement is at most 1), about
    :math:`1/D^2` at chance, so ``rho`` must grow with ``D`` (the reference: 1500 on CUB). The
    inputs are re-normalised per row, so it is blind to the embedding's global scale, but it squares
    coordinate products and is blind to their signs (see the tests).

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

    def compute(
        self, e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        e_r, s_r = grad_reverse(e), grad_reverse(e_s)
        if self.normalize_inputs:
            e_r, s_r = F.normalize(e_r, dim=1), F.normalize(s_r, dim=1)
        prediction = F.normalize(self.xi(s_r), dim=1)
        products = (e_r * prediction).pow(2)
        if weights is None:
            return -products.mean()
        return -(weights * products.mean(dim=1)).sum()

    def agreement(self, value: torch.Tensor) -> torch.Tensor:
        r"""The positive agreement :math:`\frac1N\sum_i \sum_k [\hat e_i \odot
        \mathrm{normalize}(\xi(\hat e^s_i))]_k^2 = -D\,L_{dec}` from a value of this module
        (detached): about :math:`1/D` while ξ predicts nothing, rising as ξ learns."""
        return -value.detach() * self.target_dim


class CrossCovarianceDecorrelation(BaseDecorrelation):
    """Closed-form decorrelation: :func:`cross_covariance_penalty` (``>= 0``), no adversary.

    Minimising ``rho * module(e, e_s)`` pushes both embeddings (and the backbone) towards zero
    batch cross-covariance. It has no parameters; batches need ``N >= 2``. Not scale-invariant:
    it can be lowered by collapsing the embedding into a small cap (see
    :func:`cross_covariance_penalty`); :class:`RVDecorrelation` cannot.
    """

    min_rows = 2

    def __init__(self, target_dim: int, attribute_dim: int, hidden: int = 512) -> None:
        # ``hidden`` is accepted (and ignored) so all estimators build from the same arguments
        super().__init__(target_dim, attribute_dim)

    def compute(
        self, e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return _cross_covariance_penalty(e, e_s, weights)


class RVDecorrelation(BaseDecorrelation):
    """Scale-invariant closed-form decorrelation: :func:`rv_penalty`, no adversary.

    The chance-corrected RV coefficient between ``e`` and ``e_s``: invariant to isotropic scaling,
    rotation and offset of either embedding, so collapsing ``e`` into a small cap does not lower
    it; 0 in expectation for independent rows; ``rho`` weighs full dependence whatever ``D`` and
    ``D_s``. No parameters; batches need ``N >= 2``.
    """

    min_rows = 2

    def __init__(self, target_dim: int, attribute_dim: int, hidden: int = 512) -> None:
        super().__init__(target_dim, attribute_dim)

    def compute(
        self, e: torch.Tensor, e_s: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        rv, chance = _rv_parts(e, e_s, weights)
        return rv - chance


DecorrelationKind = Literal["rv", "cross_covariance", "adversarial"]

_DECORRELATIONS: dict[str, type[BaseDecorrelation]] = {
    "rv": RVDecorrelation,
    "cross_covariance": CrossCovarianceDecorrelation,
    "adversarial": AdversarialDecorrelation,
}
DECORRELATIONS = tuple(_DECORRELATIONS)
"""The estimator names :func:`build_decorrelation` accepts."""


def build_decorrelation(
    kind: DecorrelationKind | BaseDecorrelation,
    target_dim: int,
    attribute_dim: int,
    hidden: int = 512,
) -> BaseDecorrelation:
    """Build a decorrelation estimator by name, or return a ready one unchanged.

    Args:
        kind: ``"rv"`` (:class:`RVDecorrelation`, scale-invariant), ``"cross_covariance"``
            (:class:`CrossCovarianceDecorrelation`), ``"adversarial"``
            (:class:`AdversarialDecorrelation`, the PARADE reference), or a module.
        target_dim: size of the target embedding ``e``.
        attribute_dim: size of the attribute embedding ``e_s``.
        hidden: width of the adversarial network ξ (ignored by the closed forms).
    """
    if isinstance(kind, BaseDecorrelation):
        return kind
    if not isinstance(kind, str) or kind not in _DECORRELATIONS:
        raise ValueError(
            f"unknown decorrelation kind {kind!r}; choose one of {sorted(_DECORRELATIONS)}"
        )
    return _DECORRELATIONS[kind](target_dim, attribute_dim, hidden)
