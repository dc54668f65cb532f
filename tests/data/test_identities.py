"""The synthetic-identities benchmark: splits, exact counts, palettes that carry the same
information, the controls, the nuisances against a slow reference, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairmetric.data import build_splits, make_identities
from fairmetric.data.identities import PALETTES, _bilinear, render_identities

SMALL = dict(n_train_identities=12, n_test_identities=6, images_per_identity=4, image_size=12)


def _render(palette: int, appearance: str = "swap", seed: int = 3, **kw) -> torch.Tensor:
    patterns = np.random.default_rng(0).standard_normal((5, 6, 6))
    return render_identities(
        patterns,
        np.full(5, palette),
        image_size=16,
        appearance=appearance,
        noise=0.0,
        rng=np.random.default_rng(seed),
        **kw,
    ).double()


def test_splits_are_identity_disjoint_with_exact_counts():
    train = make_identities(split="train", p_majority=0.75, seed=1, **SMALL)
    test = make_identities(split="test", p_majority=0.75, seed=1, **SMALL)
    assert train.inputs.shape == (48, 3, 12, 12) and test.inputs.shape == (24, 3, 12, 12)
    assert set(train.labels) == set(range(12)) and set(test.labels) == set(range(12, 18))
    assert np.bincount(train.labels).tolist() == [4] * 12
    # exact shares: round(0.25 * 48) minority images in training, half at test
    assert train.attribute("palette").sum() == 12 and test.attribute("palette").sum() == 12
    assert train.attribute_value_names["palette"] == ["majority", "minority"]
    # the two splits' patterns come from separate streams: no test image equals a train image
    a = train.inputs.reshape(48, -1)
    b = test.inputs.reshape(24, -1)
    assert torch.cdist(a, b).min() > 0


def test_per_identity_attribute_is_constant_within_an_identity():
    for split in ("train", "test"):
        d = make_identities(split=split, attribute_level="identity", p_majority=0.75, **SMALL)
        pal, lab = d.attribute("palette"), d.labels
        per_id = [set(pal[lab == c]) for c in np.unique(lab)]
        assert all(len(v) == 1 for v in per_id)
        n_ids = len(per_id)
        want = round((0.25 if split == "train" else 0.5) * n_ids)
        assert sum(v == {1} for v in per_id) == want


def test_same_seed_same_data_other_seed_other_identities():
    a = make_identities(seed=4, **SMALL)
    b = make_identities(seed=4, **SMALL)
    c = make_identities(seed=5, **SMALL)
    assert torch.equal(a.inputs, b.inputs)
    assert np.array_equal(a.attribute("palette"), b.attribute("palette"))
    assert not torch.equal(a.inputs, c.inputs)


def test_swap_carries_exactly_the_same_information():
    # same nuisances (same generator), palette 0 vs 1: the minority image is the majority one
    # inverted with its channels reversed, a bijection with the same contrast per channel
    major, minor = _render(0), _render(1)
    torch.testing.assert_close(minor, 1.0 - major.flip(1), rtol=0, atol=1e-6)
    (fg0, bg0), (fg1, bg1) = (np.array(p) for p in PALETTES["swap"])
    assert sorted(np.abs(fg0 - bg0)) == pytest.approx(sorted(np.abs(fg1 - bg1)))


def test_null_control_renders_both_palettes_alike():
    torch.testing.assert_close(_render(0, "none"), _render(1, "none"), rtol=0, atol=0)


def test_intrinsic_control_has_a_fifth_of_the_contrast():
    major, minor = _render(0, "low_contrast"), _render(1, "low_contrast")
    bg = torch.tensor(PALETTES["low_contrast"][0][1], dtype=torch.float64)[None, :, None, None]
    torch.testing.assert_close(minor - bg, 0.2 * (major - bg), rtol=0, atol=1e-6)


def test_noise_is_added_after_the_palette_and_not_clipped():
    patterns = np.zeros((200, 6, 6))
    x = render_identities(
        patterns, np.zeros(200, int), image_size=8, noise=0.5, rng=np.random.default_rng(0)
    )
    assert x.min() < 0 and x.max() > 1
    clean = render_identities(
        patterns, np.zeros(200, int), image_size=8, noise=0.0, rng=np.random.default_rng(0)
    )
    assert float((x - clean).std()) == pytest.approx(0.5, rel=0.05)


def test_bilinear_matches_a_loop_reference():
    rng = np.random.default_rng(2)
    field = rng.standard_normal((3, 5, 5))
    rows = rng.uniform(-1, 6, (3, 4, 4))
    cols = rng.uniform(-1, 6, (3, 4, 4))
    got = _bilinear(field, rows, cols)
    for n in range(3):
        for i in range(4):
            for j in range(4):
                r = min(max(rows[n, i, j], 0.0), 4.0)
                c = min(max(cols[n, i, j], 0.0), 4.0)
                r0, c0 = min(int(np.floor(r)), 3), min(int(np.floor(c)), 3)
                fr, fc = r - r0, c - c0
                want = (
                    field[n, r0, c0] * (1 - fr) * (1 - fc)
                    + field[n, r0, c0 + 1] * (1 - fr) * fc
                    + field[n, r0 + 1, c0] * fr * (1 - fc)
                    + field[n, r0 + 1, c0 + 1] * fr * fc
                )
                assert got[n, i, j] == pytest.approx(want, abs=1e-12)


def test_nuisances_off_gives_identical_images_of_an_identity():
    still = dict(max_rotation=0.0, scale_range=(1.0, 1.0), max_shift=0.0, jitter=0.0, noise=0.0)
    d = make_identities(split="test", **SMALL, **still)
    x, pal = d.inputs, d.attribute("palette")
    for c in np.unique(d.labels):
        rows = np.flatnonzero((d.labels == c) & (pal == 0))
        for r in rows[1:]:
            assert torch.equal(x[r], x[rows[0]])
    moved = make_identities(split="test", **SMALL)
    assert not torch.equal(moved.inputs, d.inputs)


def test_flatten_gives_vectors_and_the_registry_builds_both_splits():
    params = {k: v for k, v in SMALL.items() if k != "image_size"}
    splits = build_splits("identities", image_size=8, seed=0, params={**params, "flatten": True})
    assert splits["train"].input_shape == (3 * 8 * 8,)
    assert set(splits) == {"train", "test"}
    with pytest.raises(ValueError, match="own identity-disjoint split"):
        build_splits("identities", split="class_disjoint")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"split": "valid"}, "split must be"),
        ({"attribute_level": "group"}, "attribute_level must be one of image, identity"),
        ({"appearance": "sepia"}, "appearance must be one of swap, none, low_contrast"),
        ({"p_majority": 1.5}, r"p_majority must lie in \[0, 1\]"),
        ({"n_train_identities": 1}, "n_train_identities must be an integer >= 2"),
        ({"images_per_identity": 1.5}, "images_per_identity must be an integer"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"image_size": 4}, "image_size must be >= 8"),
        ({"scale_range": (1.2, 1.1)}, "scale_range"),
    ],
)
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        make_identities(**{**SMALL, **kw})
