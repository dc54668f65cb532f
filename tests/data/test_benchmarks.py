"""Tests for the built-in biased benchmarks: coloured digits and Gaussian group mixtures."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from fairmetric.data.colored_digits import COLOUR_GROUPS, make_colored_digits, render_digits
from fairmetric.data.gaussian import make_gaussian_groups

SIZE, SHIFT = 12, 2  # small images keep the tests fast


def digits(**kwargs):
    return make_colored_digits(**{"image_size": SIZE, "max_shift": SHIFT, **kwargs})


def source_digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# -- coloured digits: slow references ---------------------------------------------------------
def bilinear_reference(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling with explicit loops (half-pixel centres, as align_corners=False)."""
    n_in = image.shape[0]
    scale = n_in / size

    def source(i: int) -> tuple[int, int, float]:
        s = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = int(math.floor(s))
        i1 = min(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    out = np.zeros((size, size))
    for r in range(size):
        r0, r1, wr = source(r)
        for c in range(size):
            c0, c1, wc = source(c)
            top = (1 - wc) * image[r0, c0] + wc * image[r0, c1]
            bottom = (1 - wc) * image[r1, c0] + wc * image[r1, c1]
            out[r, c] = (1 - wr) * top + wr * bottom
    return out


def render_reference(grey: np.ndarray, group: int, size: int, dy: int = 0, dx: int = 0, inner=None):
    """``bg + intensity * (fg - bg)`` per channel and pixel, the digit placed at ``(dy, dx)``."""
    inner = inner or size
    up = bilinear_reference(grey, inner)
    _, fg, bg = COLOUR_GROUPS[group]
    out = np.zeros((3, size, size))
    for ch in range(3):
        for r in range(size):
            for c in range(size):
                inside = dy <= r < dy + inner and dx <= c < dx + inner
                intensity = up[r - dy, c - dx] if inside else 0.0
                out[ch, r, c] = bg[ch] + intensity * (fg[ch] - bg[ch])
    return out


def render_fast(images: np.ndarray, groups: np.ndarray, size: int) -> torch.Tensor:
    """The same as render_reference for all images at once, upscaled with F.interpolate."""
    grey = F.interpolate(
        torch.from_numpy(images).unsqueeze(1),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    fg = torch.tensor([COLOUR_GROUPS[g][1] for g in groups]).view(-1, 3, 1, 1)
    bg = torch.tensor([COLOUR_GROUPS[g][2] for g in groups]).view(-1, 3, 1, 1)
    return bg + grey * (fg - bg)


def test_bilinear_reference_agrees_with_interpolate():
    images, _ = source_digits()
    for i in (0, 7, 100):
        ref = bilinear_reference(images[i], 13)
        fast = F.interpolate(
            torch.from_numpy(images[i])[None, None],
            size=(13, 13),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        assert np.allclose(ref, fast.numpy(), atol=1e-6)


# -- coloured digits --------------------------------------------------------------------------
@pytest.mark.parametrize("train_classes", [(0, 1, 2, 3, 4), (9, 3, 3, 1)])
def test_train_and_test_classes_are_complementary(train_classes):
    train = digits(split="train", train_classes=train_classes)
    test = digits(split="test", train_classes=train_classes)
    expected = set(train_classes)
    assert set(train.labels.tolist()) == expected
    assert set(test.labels.tolist()) == set(range(10)) - expected
    # every source digit of those classes is used once
    _, targets = source_digits()
    for ds in (train, test):
        assert np.array_equal(
            np.bincount(ds.labels, minlength=10),
            np.bincount(targets, minlength=10) * np.isin(np.arange(10), np.unique(ds.labels)),
        )
        assert ds.label_names == [str(d) for d in range(10)]
        assert ds.attribute_names == ["colour"]
        assert ds.attribute_value_names == {"colour": ["light", "dark"]}
    assert train.name == "colored_digits/train" and test.name == "colored_digits/test"


@pytest.mark.parametrize("split", ["train", "test"])
def test_images_are_rgb_in_unit_range(split):
    ds = digits(split=split)
    assert ds.inputs.shape == (len(ds), 3, SIZE, SIZE) and ds.input_shape == (3, SIZE, SIZE)
    assert ds.inputs.dtype == torch.float32
    assert ds.inputs.min() >= 0.0 and ds.inputs.max() <= 1.0
    x, label, attrs = ds[0]
    assert (
        x.shape == (3, SIZE, SIZE)
        and label == ds.labels[0]
        and attrs.tolist() == [ds.attributes[0, 0]]
    )


@pytest.mark.parametrize("p", [0.95, 0.5])
def test_train_majority_share_matches_p_majority(p):
    colour = digits(p_majority=p).attribute("colour")
    assert set(colour.tolist()) == {0, 1}
    assert within_binomial(int((colour == 0).sum()), len(colour), p)


@pytest.mark.parametrize("p, expected", [(1.0, {0}), (0.0, {1, 2})])
def test_train_extreme_p_majority(p, expected):
    colour = digits(p_majority=p, n_groups=3).attribute("colour")
    assert set(colour.tolist()) == expected


def test_train_minority_spreads_over_the_other_groups():
    colour = digits(p_majority=0.5, n_groups=3).attribute("colour")
    assert set(colour.tolist()) == {0, 1, 2}
    n = len(colour)
    assert within_binomial(int((colour == 0).sum()), n, 0.5)
    for g in (1, 2):
        assert within_binomial(int((colour == g).sum()), n, 0.25)


@pytest.mark.parametrize("n_groups", [2, 3, 4])
def test_test_split_is_balanced_across_groups(n_groups):
    ds = digits(split="test", n_groups=n_groups, p_majority=0.99)  # p_majority plays no role
    colour = ds.attribute("colour")
    assert set(colour.tolist()) == set(range(n_groups))
    for g in range(n_groups):
        assert within_binomial(int((colour == g).sum()), len(colour), 1 / n_groups)
    names = [name for name, _, _ in COLOUR_GROUPS[:n_groups]]
    assert ds.attribute_value_names == {"colour": names}


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = digits(seed=3), digits(seed=3), digits(seed=4)
    assert torch.equal(a.inputs, b.inputs) and np.array_equal(a.attributes, b.attributes)
    assert np.array_equal(a.labels, c.labels)  # the same source digits ...
    assert not torch.equal(a.inputs, c.inputs)  # ... rendered differently
    assert not np.array_equal(a.attributes, c.attributes)


def test_copies_multiply_the_samples():
    one, two = digits(copies=1), digits(copies=2)
    assert len(two) == 2 * len(one)
    assert np.array_equal(two.labels[0::2], one.labels)
    assert np.array_equal(two.labels[1::2], one.labels)
    assert not torch.equal(two.inputs[0::2], two.inputs[1::2])  # other shifts and noise


@pytest.mark.parametrize("split", ["train", "test"])
def test_noiseless_unshifted_rendering_matches_the_reference(split):
    ds = digits(split=split, max_shift=0, noise=0.0, n_groups=4, p_majority=0.5)
    images, targets = source_digits()
    keep = np.isin(targets, [0, 1, 2, 3, 4])
    if split == "test":
        keep = ~keep
    images, targets = images[keep], targets[keep]
    groups = ds.attribute("colour")
    assert np.array_equal(ds.labels, targets)
    assert torch.allclose(ds.inputs, render_fast(images, groups, SIZE), atol=1e-6)
    # the explicit-loop reference, one sample of every group
    for g in range(4):
        i = int(np.flatnonzero(groups == g)[0])
        ref = render_reference(images[i], g, SIZE)
        assert np.allclose(ds.inputs[i].numpy(), ref, atol=1e-6)
        # background pixels (the digits' borders are blank) carry the group's colours
        assert np.allclose(ds.inputs[i, :, 0, 0].numpy(), COLOUR_GROUPS[g][2])


def test_rendering_uses_the_foreground_at_full_intensity():
    image = np.ones((1, 8, 8), dtype=np.float32)
    for g, (_, fg, _) in enumerate(COLOUR_GROUPS):
        out = render_digits(
            image, np.array([g]), image_size=8, max_shift=0, noise=0.0, rng=np.random.default_rng()
        )
        assert torch.allclose(out[0], torch.tensor(fg).view(3, 1, 1).expand(3, 8, 8))


def test_shifted_rendering_is_the_reference_at_some_offset():
    images, _ = source_digits()
    images = images[:12]
    groups = np.arange(12) % 4
    out = render_digits(
        images, groups, image_size=SIZE, max_shift=SHIFT, noise=0.0, rng=np.random.default_rng(5)
    )
    inner = SIZE - 2 * SHIFT
    offsets = set()
    for i in range(len(images)):
        hits = [
            (dy, dx)
            for dy in range(2 * SHIFT + 1)
            for dx in range(2 * SHIFT + 1)
            if np.allclose(
                out[i].numpy(),
                render_reference(images[i], int(groups[i]), SIZE, dy, dx, inner),
                atol=1e-6,
            )
        ]
        assert hits, f"image {i} matches no offset"
        offsets.update(hits)
    assert len(offsets) > 1  # the placement really varies


def test_noise_has_the_requested_standard_deviation():
    images, _ = source_digits()
    images, groups = images[:200], np.zeros(200, dtype=np.int64)
    kwargs = dict(image_size=16, max_shift=1)
    clean = render_digits(images, groups, noise=0.0, rng=np.random.default_rng(1), **kwargs)
    noisy = render_digits(images, groups, noise=0.05, rng=np.random.default_rng(1), **kwargs)
    mid = (clean > 0.25) & (clean < 0.75)  # 5 sigma from the clamping bounds
    residual = (noisy - clean)[mid]
    assert residual.numel() > 5000
    assert abs(residual.mean().item()) < 0.005
    assert residual.std().item() == pytest.approx(0.05, rel=0.05)


def test_group_zero_has_the_highest_contrast():
    contrast = [np.abs(np.subtract(fg, bg)).mean() for _, fg, bg in COLOUR_GROUPS]
    assert contrast[0] == max(contrast) and contrast.count(contrast[0]) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split="valid"), "split must be 'train' or 'test', got 'valid'"),
        (dict(n_groups=1), "n_groups must be between 2 and 4, got 1"),
        (dict(n_groups=5), "n_groups must be between 2 and 4, got 5"),
        (dict(p_majority=-0.1), "p_majority must lie in \\[0, 1\\], got -0.1"),
        (dict(p_majority=1.5), "p_majority must lie in \\[0, 1\\], got 1.5"),
        (dict(copies=0), "copies must be >= 1, got 0"),
        (dict(train_classes=()), "train_classes must be 1 to 8 distinct digits"),
        (dict(train_classes=(3, 10)), "train_classes must be 1 to 8 distinct digits"),
        (dict(train_classes=(-1, 3)), "train_classes must be 1 to 8 distinct digits"),
        (dict(train_classes=tuple(range(9))), "leaving >= 2 for the test split"),
        (dict(image_size=11), "image_size=11 leaves no room for max_shift=2"),
    ],
)
def test_colored_digits_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits(**kwargs)


def test_render_digits_image_too_small():
    with pytest.raises(ValueError, match="need image_size >= 8 \\+ 2\\*max_shift"):
        render_digits(
            np.zeros((1, 8, 8), np.float32),
            np.array([0]),
            image_size=9,
            max_shift=1,
            rng=np.random.default_rng(),
        )


@pytest.mark.parametrize(
    "kwargs, name", [(dict(max_shift=-1), "max_shift"), (dict(noise=-0.1), "noise")]
)
def test_negative_shift_or_noise_is_rejected(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_colored_digits(image_size=16, **kwargs)


# -- Gaussian group mixtures ------------------------------------------------------------------
def class_means(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: the mean vector, the group and the labels in order."""
    x = ds.inputs.numpy().astype(np.float64)
    classes = np.unique(ds.labels)
    means = np.stack([x[ds.labels == c].mean(axis=0) for c in classes])
    groups = np.array([ds.attribute("group")[ds.labels == c][0] for c in classes])
    return means, groups, classes


def mean_pairwise_distance(points: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs, with an explicit loop."""
    dists = [math.dist(points[i], points[j]) for i, j in combinations(range(len(points)), 2)]
    return float(np.mean(dists))


def test_gaussian_shapes_labels_and_names():
    ds = make_gaussian_groups(n_classes=5, samples_per_class=3, dim=4, nuisance_dim=2)
    assert ds.inputs.shape == (15, 6) and ds.inputs.dtype == torch.float32
    assert ds.input_shape == (6,)
    assert ds.labels.tolist() == [c for c in range(5) for _ in range(3)]
    assert ds.attribute_names == ["group"]
    assert ds.attribute_value_names == {"group": ["g0", "g1"]}
    assert ds.name == "gaussian_groups"
    assert make_gaussian_groups(dim=4, nuisance_dim=0).inputs.shape == (400, 4)


def test_gaussian_group_is_constant_within_a_class():
    ds = make_gaussian_groups(
        n_classes=30,
        samples_per_class=4,
        group_probs=(0.3, 0.3, 0.4),
        group_shrink=(1, 1, 1),
        group_noise=(0.1, 0.1, 0.1),
    )
    for c in np.unique(ds.labels):
        assert len(np.unique(ds.attribute("group")[ds.labels == c])) == 1


@pytest.mark.parametrize("seed", range(10))
def test_gaussian_every_group_gets_a_class(seed):
    ds = make_gaussian_groups(
        n_classes=3,
        samples_per_class=2,
        group_probs=(1.0, 0.0, 0.0),
        group_shrink=(1, 1, 1),
        group_noise=(0.1, 0.1, 0.1),
        seed=seed,
    )
    _, groups, _ = class_means(ds)
    assert sorted(groups.tolist()) == [0, 1, 2]


def test_gaussian_fewer_classes_than_groups():
    ds = make_gaussian_groups(
        n_classes=1,
        group_probs=(0.0, 1.0, 0.0),
        group_shrink=(1, 1, 1),
        group_noise=(0.1, 0.1, 0.1),
    )
    assert set(ds.attribute("group").tolist()) == {1}


def test_gaussian_group_of_a_class_follows_group_probs():
    ds = make_gaussian_groups(n_classes=2000, samples_per_class=1, dim=2, nuisance_dim=0)
    _, groups, _ = class_means(ds)
    assert within_binomial(int((groups == 1).sum()), 2000, 0.2)


def test_gaussian_determinism():
    a, b, c = (make_gaussian_groups(n_classes=6, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.inputs, b.inputs) and np.array_equal(a.attributes, b.attributes)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("shrink", [(1.0, 0.3), (0.3, 1.0)])
def test_gaussian_shrink_sets_the_spread_of_class_centres(shrink):
    ds = make_gaussian_groups(
        n_classes=40,
        samples_per_class=10,
        dim=16,
        group_probs=(0.5, 0.5),
        group_shrink=shrink,
        group_noise=(0.01, 0.01),
        nuisance_dim=0,
    )
    means, groups, _ = class_means(ds)
    spread = [mean_pairwise_distance(means[groups == g]) for g in (0, 1)]
    small, large = (1, 0) if shrink[1] < shrink[0] else (0, 1)
    assert spread[small] < spread[large]
    # centres lie at distance s_g from the group centre in random directions: pairs are about
    # sqrt(2) * s_g apart in 16 dimensions
    for g in (0, 1):
        assert spread[g] / math.sqrt(2) == pytest.approx(shrink[g], rel=0.1)


def test_gaussian_noise_sets_the_within_class_spread():
    ds = make_gaussian_groups(
        n_classes=20,
        samples_per_class=50,
        dim=16,
        group_probs=(0.5, 0.5),
        group_noise=(0.2, 0.6),
        nuisance_dim=0,
    )
    x = ds.inputs.numpy().astype(np.float64)
    group = ds.attribute("group")
    spread = []
    for g in (0, 1):
        squares = []
        for c in np.unique(ds.labels[group == g]):
            xc = x[ds.labels == c]
            squares.append(((xc - xc.mean(axis=0)) ** 2).sum() / (len(xc) - 1))
        spread.append(math.sqrt(np.mean(squares)))  # RMS distance to the class centre
    assert spread[0] < spread[1]
    assert spread[0] == pytest.approx(0.2, rel=0.05)
    assert spread[1] == pytest.approx(0.6, rel=0.05)


def test_gaussian_nuisance_coordinates_carry_no_class_information():
    spc, scale = 25, 0.5
    ds = make_gaussian_groups(
        n_classes=20, samples_per_class=spc, dim=8, nuisance_dim=16, nuisance_scale=scale
    )
    means, _, _ = class_means(ds)
    x = ds.inputs.numpy().astype(np.float64)
    nuisance, signal = x[:, 8:], x[:, :8]
    assert nuisance.std() == pytest.approx(scale, rel=0.05)
    assert abs(nuisance.mean()) < 4 * scale / math.sqrt(nuisance.size)
    # class means of pure noise have variance scale^2 / spc: the ratio is chi^2 / dof, near 1
    ratio = (means[:, 8:] ** 2).mean() / (scale**2 / spc)
    assert 0.7 < ratio < 1.3
    # the signal coordinates, for contrast, differ between classes far beyond that
    assert ((means[:, :8] - signal.mean(axis=0)) ** 2).mean() / (scale**2 / spc) > 10


def test_gaussian_zero_nuisance_scale():
    ds = make_gaussian_groups(n_classes=3, dim=2, nuisance_dim=3, nuisance_scale=0.0)
    assert ds.inputs.shape[1] == 5 and torch.all(ds.inputs[:, 2:] == 0)


def test_gaussian_class_offset_only_shifts_labels():
    a = make_gaussian_groups(n_classes=4, samples_per_class=2, seed=7)
    b = make_gaussian_groups(n_classes=4, samples_per_class=2, seed=7, class_offset=10)
    assert np.array_equal(b.labels, a.labels + 10)
    assert torch.equal(a.inputs, b.inputs) and np.array_equal(a.attributes, b.attributes)
    assert b.label_names[10:] == ["10", "11", "12", "13"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(group_probs=(0.5, 0.5), group_shrink=(1.0,)), "one entry per group.*2, 1, 2"),
        (dict(group_noise=(0.1, 0.2, 0.3)), "one entry per group.*2, 2, 3"),
        (dict(group_probs=(), group_shrink=(), group_noise=()), "one entry per group.*0, 0, 0"),
        (dict(group_probs=(1.0, -0.5)), "group_probs must be non-negative with a positive sum"),
        (dict(group_probs=(0.0, 0.0)), "group_probs must be non-negative with a positive sum"),
        (dict(n_classes=0), "n_classes, samples_per_class and dim must all be >= 1"),
        (dict(samples_per_class=0), "n_classes, samples_per_class and dim must all be >= 1"),
        (dict(dim=0), "n_classes, samples_per_class and dim must all be >= 1"),
        (dict(nuisance_dim=-1), "nuisance_dim and nuisance_scale must be >= 0"),
        (dict(nuisance_scale=-0.1), "nuisance_dim and nuisance_scale must be >= 0"),
    ],
)
def test_gaussian_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_gaussian_groups(**kwargs)
