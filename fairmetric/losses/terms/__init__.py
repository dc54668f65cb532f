r"""The built-in fairness terms, one module each, registered in this order (the order the
objective adds them): ``objective.parade``, ``objective.spectral``, ``objective.adversary``.

- :class:`ParadeTerm` -- PARADE (Dullerud et al., ICLR 2022): an attribute head ``ψ_s`` on the
  shared backbone learns a similarity metric for one sensitive attribute, and the target embedding
  is decorrelated from it (weight ``ρ``, the *partial* knob).
- :class:`SpectralDecouplingTerm` -- Pezeshki et al. 2021: ``λ · mean((ŷ − γ)²)`` on the loss's
  class logits where it has them, else on the pre-normalisation embedding.
- :class:`AdversaryTerm` -- DANN: an attribute classifier on ``e`` behind gradient reversal.

Add a term as a new module of this package (it is imported, and so registered, after the
built-ins), see :mod:`fairmetric.losses.registry` and ``docs/extend.md``.
"""

import importlib
import pkgutil

#: the built-in terms, in the order the objective adds them (their parameters are created, and
#: the random state consumed, in this order: changing it changes every trained model)
BUILTIN_TERMS = ("parade", "spectral", "adversary")
# then every other module of this package, by name: a term added as a new file registers itself
_OTHERS = sorted(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name not in BUILTIN_TERMS and not m.name.startswith("_")
)
for _name in (*BUILTIN_TERMS, *_OTHERS):
    importlib.import_module(f"{__name__}.{_name}")

from fairmetric.losses.terms.adversary import AdversaryConfig, AdversaryTerm  # noqa: E402
from fairmetric.losses.terms.parade import ParadeConfig, ParadeTerm  # noqa: E402
from fairmetric.losses.terms.spectral import SpectralConfig, SpectralDecouplingTerm  # noqa: E402

__all__ = [
    "BUILTIN_TERMS",
    "AdversaryConfig",
    "AdversaryTerm",
    "ParadeConfig",
    "ParadeTerm",
    "SpectralConfig",
    "SpectralDecouplingTerm",
]
