"""Verification speed: scoring and thresholding ten million impostor pairs, fairmetric against a
plain numpy implementation, side by side.

Same embeddings (``n × dim`` float32 Gaussian rows, ``identities`` identities, two groups) and the
same pair budget in one run:

- ``numpy``: uniform impostor pairs drawn with ``rng.integers`` (rejecting same-identity pairs),
  cosine scores as float32 ``einsum`` of pre-normalised rows in blocks, the threshold by
  ``np.quantile``, per-group FMR by boolean masks — the loop a user would write;
- ``fairmetric``: :func:`~fairmetric.audit.verification.sample_pairs` (impostor budget), float64
  :func:`~fairmetric.audit.verification.pair_scores` (fixed summation order: the same scores on
  every CPU), :func:`~fairmetric.audit.verification.threshold_at_fmr` at two targets and the
  per-group FMR.

Memory is bounded in both (blocks of pairs; no ``N²`` matrix). Prints each side's seconds and the
ratio fairmetric / numpy; both must find FMRs within sampling noise of each other.

    python benchmarks/verification_speed.py            # 100k x 128, 10M impostor pairs
    python benchmarks/verification_speed.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def make_data(n: int, dim: int, identities: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, identities, size=n)
    centres = rng.normal(size=(identities, dim)).astype(np.float32)
    x = centres[labels] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    groups = (labels % 2).astype(np.int64)
    return x.astype(np.float32), labels, groups


def numpy_reference(x, labels, groups, pairs: int, targets, seed: int = 1):
    rng = np.random.default_rng(seed)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    i_all, j_all, got = [], [], 0
    while got < pairs:
        i = rng.integers(0, len(x), size=pairs - got)
        j = rng.integers(0, len(x), size=pairs - got)
        keep = labels[i] != labels[j]
        i_all.append(i[keep])
        j_all.append(j[keep])
        got += int(keep.sum())
    i, j = np.concatenate(i_all), np.concatenate(j_all)
    scores = np.empty(len(i), dtype=np.float32)
    step = 1 << 18
    for s in range(0, len(i), step):
        scores[s : s + step] = np.einsum("ij,ij->i", unit[i[s : s + step]], unit[j[s : s + step]])
    out = {}
    same = groups[i] == groups[j]
    for t in targets:
        tau = np.quantile(scores, 1 - t)
        hit = scores >= tau
        out[t] = {g: float(hit[same & (groups[i] == g)].mean()) for g in (0, 1)}
    return out


def fairmetric_path(x, labels, groups, pairs: int, targets, seed: int = 1):
    from fairmetric.audit.verification import pair_scores, sample_pairs, threshold_at_fmr

    p = sample_pairs(labels, {}, genuine=1, impostor=pairs, same_group=1, seed=seed).impostor
    scores = pair_scores(x, p.i, p.j, "cosine")
    same = groups[p.i] == groups[p.j]
    out = {}
    for t in targets:
        tau = threshold_at_fmr(scores, t)
        hit = scores >= tau
        out[t] = {g: float(hit[same & (groups[p.i] == g)].mean()) for g in (0, 1)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--identities", type=int, default=10_000)
    ap.add_argument("--pairs", type=int, default=10_000_000)
    ap.add_argument("--quick", action="store_true", help="20k x 32, 200k pairs")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.dim, args.identities, args.pairs = 20_000, 32, 2_000, 200_000
    targets = (1e-3, 1e-4)
    import fairmetric.audit.verification  # noqa: F401  (imported before the clocks start)

    x, labels, groups = make_data(args.n, args.dim, args.identities)
    print(
        f"{args.n} x {args.dim} embeddings, {args.identities} identities, {args.pairs} impostor "
        f"pairs; {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    t0 = time.perf_counter()
    ref = numpy_reference(x, labels, groups, args.pairs, targets)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = fairmetric_path(x, labels, groups, args.pairs, targets)
    t_fm = time.perf_counter() - t0
    print(f"numpy (float32 einsum, np.quantile):      {t_ref:7.1f} s")
    print(f"fairmetric (float64 fixed-order scores):  {t_fm:7.1f} s")
    print(f"ratio fairmetric / numpy: {t_fm / t_ref:.2f}")
    ok = True
    for t in targets:
        for g in (0, 1):
            a, b = ref[t][g], got[t][g]
            # two independent samples of the same rate: within 5 binomial standard errors
            se = np.sqrt(max(a, b, 1 / args.pairs) / (args.pairs / 2))
            ok &= abs(a - b) <= 5 * se + 1e-12
            print(f"FMR target {t:g}, group {g}: numpy {a:.3g}, fairmetric {b:.3g}")
    print("rates agree within sampling noise" if ok else "RATES DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
