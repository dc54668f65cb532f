"""``load_source``: every kind of audit source becomes an ``EmbeddingSet``, and bad ones fail clearly."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fairmetric.audit import audit
from fairmetric.embeddings import EmbeddingSet
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.models.embedder import Embedder
from fairmetric.sources import load_source
from fairmetric.train import build_data, load_config, train
from fairmetric.train.config import save_config
from tests.conftest import DIGITS, GAUSSIAN

ACCEPTED = (
    "(.npz, .safetensors, .npy + --labels), a model folder, a timm model name or module:function"
)


def _small_set(n: int = 30, *, nan_rows: tuple[int, ...] = ()) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[list(nan_rows)] = np.nan
    return EmbeddingSet(
        embeddings=x,
        labels=np.arange(n) % 5,
        attributes={"tone": np.array(["pale", "deep"])[np.arange(n) % 2]},
        metadata={"model": "m"},
        allow_invalid=True,
    )


def _assert_same(a: EmbeddingSet, b: EmbeddingSet) -> None:
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.attributes, b.attributes)
    assert a.attribute_names == b.attribute_names
    assert a.attribute_value_names == b.attribute_value_names


@pytest.fixture(scope="module")
def gaussian_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "gaussian.yaml"
    save_config(load_config(None, GAUSSIAN), path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    cfg = load_config(None, GAUSSIAN + ["train.epochs=1"])
    train(cfg, out, progress=False, log=lambda s: None)
    return out


# --------------------------------------------------------------------------------------------
# embedding files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_embedding_file(tmp_path, suffix):
    emb = _small_set()
    path = emb.save(tmp_path / f"emb{suffix}")
    loaded = load_source(path)
    _assert_same(loaded, emb)
    assert loaded.metadata["model"] == "m"
    # a str works as well as a Path
    _assert_same(load_source(str(path)), emb)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_nan_rows_are_kept_for_the_audit_to_report(tmp_path, suffix):
    path = _small_set(nan_rows=(2, 7)).save(tmp_path / f"emb{suffix}")
    loaded = load_source(path)
    assert np.flatnonzero(loaded.invalid_mask).tolist() == [2, 7]
    with pytest.raises(ValueError, match=r"2 embedding row\(s\).*\[2, 7\]"):
        audit(loaded, bootstrap=0, ks=[1])
    report = audit(loaded, bootstrap=0, ks=[1], drop_invalid=True, projection_points=0)
    assert report.metadata["dropped_invalid"]["first_indices"] == [2, 7]


def test_upper_case_suffix(tmp_path):
    emb = _small_set()
    path = emb.save(tmp_path / "emb.NPZ")
    _assert_same(EmbeddingSet.load(path), emb)  # the library itself reads it
    _assert_same(load_source(path), emb)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_text_file_renamed_is_not_an_embedding_file(tmp_path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("these are not embeddings\n")
    with pytest.raises(ValueError, match="not a readable embedding file|not an embedding file"):
        load_source(path)


def test_other_file_types_list_what_is_accepted(tmp_path):
    path = tmp_path / "embeddings.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match=re.escape(ACCEPTED)):
        load_source(path)
    # an existing file without a suffix too
    bare = tmp_path / "embeddings"
    bare.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="not an embedding file"):
        load_source(bare)


@pytest.mark.parametrize("name", ["missing.npz", "missing.safetensors", "no/such/folder"])
def test_nonexistent_path(tmp_path, name):
    with pytest.raises(FileNotFoundError):
        load_source(tmp_path / name)


# --------------------------------------------------------------------------------------------
# .npy + labels CSV
# --------------------------------------------------------------------------------------------


def _npy(tmp_path: Path, n: int = 12) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    return path, x


def _csv(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_npy_with_labels_csv(tmp_path):
    path, x = _npy(tmp_path, 12)
    rows = [f"{i % 4},{['dark', 'light', 'mid'][i % 3]},{10 + i % 2}" for i in range(12)]
    csv_path = _csv(tmp_path, "label,tone,site\n" + "\n".join(rows) + "\n\n")
    emb = load_source(path, labels_csv=csv_path)
    np.testing.assert_array_equal(emb.embeddings, x)
    np.testing.assert_array_equal(emb.labels, np.arange(12) % 4)
    assert emb.attribute_names == ["tone", "site"]
    assert emb.attribute_value_names["tone"] == ["dark", "light", "mid"]
    np.testing.assert_array_equal(emb.attribute("tone"), np.arange(12) % 3)
    # an integer column is read as integer codes, named by their decimal text
    np.testing.assert_array_equal(emb.attribute("site"), 10 + np.arange(12) % 2)
    assert [emb.attribute_value_names["site"][c] for c in (10, 11)] == ["10", "11"]
    report = audit(emb, ks=[1], homophily_k=2, leakage_k=2, bootstrap=0, projection_points=0)
    assert set(report["recall@1"].by_group["site"]) == {"10", "11"}
    assert set(report["recall@1"].by_group["tone"]) == {"dark", "light", "mid"}
    assert emb.metadata["source"] == str(path)


def test_npy_string_labels_bom_and_spaces(tmp_path):
    path, _ = _npy(tmp_path, 6)
    body = "\n".join(
        f" {['ann', 'bob', 'cy'][i % 3]} , {'yes' if i % 2 else 'no'}" for i in range(6)
    )
    csv_path = tmp_path / "l.csv"
    csv_path.write_bytes(("\ufefflabel , flag\n" + body + "\n").encode("utf-8"))
    emb = load_source(path, labels_csv=csv_path)
    assert emb.label_names == ["ann", "bob", "cy"]
    assert emb.attribute_names == ["flag"]
    assert emb.attribute_value_names["flag"] == ["no", "yes"]


def test_npy_row_count_mismatch(tmp_path):
    path, _ = _npy(tmp_path, 5)
    csv_path = _csv(tmp_path, "label,a\n" + "\n".join(f"{i},x" for i in range(4)) + "\n")
    with pytest.raises(ValueError, match=r"has 4 rows but the \.npy file has 5 embeddings"):
        load_source(path, labels_csv=csv_path)


def test_npy_ragged_row(tmp_path):
    path, _ = _npy(tmp_path, 3)
    csv_path = _csv(tmp_path, "label,a\n0,x\n1\n2,y\n")
    with pytest.raises(ValueError, match=r"line 3: expected 2 fields, got 1"):
        load_source(path, labels_csv=csv_path)


def test_npy_missing_csv(tmp_path):
    path, _ = _npy(tmp_path)
    with pytest.raises(FileNotFoundError, match="labels CSV not found"):
        load_source(path, labels_csv=tmp_path / "nope.csv")


@pytest.mark.parametrize("text", ["tone,label\n0,1\n", "", "\n0,1\n", "id,tone\n0,1\n"])
def test_npy_csv_needs_label_header(tmp_path, text):
    path, _ = _npy(tmp_path, 1)
    csv_path = _csv(tmp_path, text)
    with pytest.raises(ValueError, match="header starting with 'label'"):
        load_source(path, labels_csv=csv_path)


def test_npy_without_labels_says_to_pass_them(tmp_path):
    path, _ = _npy(tmp_path)
    with pytest.raises(ValueError, match="pass --labels"):
        load_source(path)


def test_npy_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_source(tmp_path / "missing.npy", labels_csv=tmp_path / "l.csv")


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    csv_path = _csv(tmp_path, "label\n0\n1\n")
    with pytest.raises(ValueError, match="not a plain numpy array file"):
        load_source(path, labels_csv=csv_path)
    # a raw pickle named .npy too
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(ValueError, match="not a plain numpy array file"):
        load_source(raw, labels_csv=csv_path)


def test_npy_nan_rows_kept(tmp_path):
    x = np.ones((4, 2), dtype=np.float32)
    x[1, 0] = np.inf
    path = tmp_path / "e.npy"
    np.save(path, x)
    emb = load_source(path, labels_csv=_csv(tmp_path, "label\n0\n0\n1\n1\n"))
    assert emb.invalid_mask.tolist() == [False, True, False, False]
    assert emb.attribute_names == []


# --------------------------------------------------------------------------------------------
# model folders
# --------------------------------------------------------------------------------------------


def _reference(model_dir: Path, config: Path, split: str = "test") -> EmbeddingSet:
    dataset = build_data(load_config(config))[split]
    return embed_dataset(load_embedder(model_dir), dataset, device="cpu")


def test_run_folder_embeds_its_test_split(run_dir):
    emb = load_source(run_dir, device="cpu")
    ref = _reference(run_dir / "model", run_dir / "config.yaml")
    _assert_same(emb, ref)
    assert len(emb) == 96 and emb.dim == 8
    assert emb.metadata["split"] == "test" and emb.metadata["source"] == str(run_dir)


def test_run_folder_other_split_and_unknown_split(run_dir):
    emb = load_source(run_dir, split="train", device="cpu")
    _assert_same(emb, _reference(run_dir / "model", run_dir / "config.yaml", "train"))
    with pytest.raises(ValueError, match=r"unknown split 'val'.*train, test"):
        load_source(run_dir, split="val", device="cpu")


def test_exported_model_folder_needs_config(run_dir, gaussian_yaml):
    with pytest.raises(ValueError, match="pass --config"):
        load_source(run_dir / "model", device="cpu")
    emb = load_source(run_dir / "model", config=gaussian_yaml, device="cpu")
    _assert_same(emb, _reference(run_dir / "model", gaussian_yaml))


def test_folder_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a fairmetric run folder"):
        load_source(tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# timm model names
# --------------------------------------------------------------------------------------------


def test_timm_model_name_gives_backbone_features(tmp_path):
    config = tmp_path / "digits.yaml"
    save_config(load_config(None, DIGITS), config)
    dataset = build_data(load_config(config))["test"]
    emb = load_source(
        "test_resnet", config=config, random_weights=True, device="cpu", batch_size=512
    )  # weights refused or given: tests/sources_images/test_timm.py
    width = Embedder(backbone="test_resnet", embedding_dim=1, input_size=(3, 16, 16)).feature_dim
    assert emb.dim == width
    assert len(emb) == len(dataset)
    np.testing.assert_array_equal(emb.labels, dataset.labels)
    assert emb.attribute_names == ["colour"]
    assert np.isfinite(emb.embeddings).all()
    assert emb.metadata["source"] == "test_resnet"


def test_timm_model_needs_config():
    with pytest.raises(ValueError, match=r"timm model test_resnet needs images.*--config"):
        load_source("test_resnet", random_weights=True)


# --------------------------------------------------------------------------------------------
# module:function
# --------------------------------------------------------------------------------------------

ENCODERS = """
import numpy as np
import torch

CONST = 3


def embed(x):
    return (x[:, :4] * 2).numpy()


def embed_tensor(x):
    return torch.cat([x[:, :2], torch.ones(len(x), 1)], dim=1).double()


def flat(x):
    return x[0]


def short(x):
    return x[:1, :4]


def with_nan(x):
    out = x[:, :3].clone()
    out[0] = float("nan")
    return out


class Namespace:
    @staticmethod
    def embed(x):
        return x[:, :4].numpy()
"""


@pytest.fixture
def encoders(tmp_path, monkeypatch, request) -> str:
    """A module of encoders on sys.path, under a name unique to the test."""
    name = "fm_encoders_" + re.sub(r"\W", "_", request.node.name)
    (tmp_path / f"{name}.py").write_text(ENCODERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture(scope="module")
def gaussian_test(gaussian_yaml):
    return build_data(load_config(gaussian_yaml))["test"]


def _inputs(dataset) -> np.ndarray:
    return torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy()


def test_module_function(encoders, gaussian_yaml, gaussian_test):
    emb = load_source(f"{encoders}:embed", config=gaussian_yaml, device="cpu")
    np.testing.assert_allclose(emb.embeddings, 2 * _inputs(gaussian_test)[:, :4])
    np.testing.assert_array_equal(emb.labels, gaussian_test.labels)
    assert emb.metadata["source"] == f"{encoders}:embed"
    report = audit(emb, bootstrap=0, projection_points=0)
    assert set(report["recall@1"].by_group["group"]) == {"g0", "g1"}


def test_module_function_returning_a_tensor_and_nested_name(encoders, gaussian_yaml, gaussian_test):
    emb = load_source(f"{encoders}:embed_tensor", config=gaussian_yaml, batch_size=7)
    assert emb.embeddings.dtype == np.float32 and emb.dim == 3
    np.testing.assert_allclose(emb.embeddings[:, :2], _inputs(gaussian_test)[:, :2])
    nested = load_source(f"{encoders}:Namespace.embed", config=gaussian_yaml)
    np.testing.assert_array_equal(nested.embeddings, _inputs(gaussian_test)[:, :4])


@pytest.mark.parametrize("fn", ["flat", "short"])
def test_module_function_wrong_shape(encoders, gaussian_yaml, fn):
    with pytest.raises(ValueError, match=r"returned shape .* one embedding row per input"):
        load_source(f"{encoders}:{fn}", config=gaussian_yaml)


def test_module_function_nan_rows_kept(encoders, gaussian_yaml):
    emb = load_source(f"{encoders}:with_nan", config=gaussian_yaml, batch_size=32)
    assert np.flatnonzero(emb.invalid_mask).tolist() == [0, 32, 64]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("fm_no_such_module_xyz:embed", "cannot import module 'fm_no_such_module_xyz'"),
        ("{m}:nope", "has no attribute 'nope'"),
        ("{m}:Namespace.nope", "has no attribute 'Namespace.nope'"),
        ("{m}:CONST", "is not callable"),
    ],
)
def test_module_function_bad_spec(encoders, gaussian_yaml, spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_source(spec.format(m=encoders), config=gaussian_yaml)


def test_module_function_needs_config(encoders):
    with pytest.raises(ValueError, match=r"encoder .*:embed needs a dataset.*--config"):
        load_source(f"{encoders}:embed")


def test_callable_encoder_module_converts_numpy():
    from fairmetric.sources import CallableEncoder

    enc = CallableEncoder(lambda x: np.ones((len(x), 2), dtype=np.float64))
    out = enc(torch.zeros(3, 5))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 2)


# --------------------------------------------------------------------------------------------
# speed settings of model sources: precision, channels-last, workers
# --------------------------------------------------------------------------------------------


def _speed(kwargs: dict) -> tuple:
    return tuple(kwargs.get(k) for k in ("precision", "channels_last", "num_workers"))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_model_folder_precision_channels_last_and_workers(image_run, embed_calls):
    dataset = build_data(load_config(image_run / "config.yaml"))["test"]
    ref = load_source(image_run, device="cpu")
    _assert_same(ref, _reference(image_run / "model", image_run / "config.yaml"))
    assert _speed(embed_calls[-1]) == ("fp32", False, 0)  # the run's (default) settings
    fast = load_source(image_run, device="cpu", precision="bf16", channels_last=True)
    assert _speed(embed_calls[-1]) == ("bf16", True, 0)
    expected = embed_dataset(
        load_embedder(image_run / "model"),
        dataset,
        device="cpu",
        precision="bf16",
        channels_last=True,
    )
    np.testing.assert_allclose(fast.embeddings, expected.embeddings, rtol=1e-6, atol=1e-7)
    assert fast.embeddings.dtype == np.float32
    assert _cosine(fast.embeddings, ref.embeddings).min() > 0.99
    assert not np.array_equal(fast.embeddings, ref.embeddings)
    np.testing.assert_array_equal(fast.labels, ref.labels)
    workers = load_source(image_run, device="cpu", num_workers=2)
    _assert_same(workers, ref)
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        load_source(image_run, device="cpu", precision="int8")


def test_model_folder_takes_speed_settings_from_its_config(image_run, tmp_path, embed_calls):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    save_config(
        load_config(run / "config.yaml", ["train.precision=fp16", "train.channels_last=true"]),
        run / "config.yaml",
    )
    ref = load_source(image_run, device="cpu")
    emb = load_source(run, device="cpu")
    assert _speed(embed_calls[-1]) == ("fp16", True, 0)
    explicit = load_source(image_run, device="cpu", precision="fp16", channels_last=True)
    np.testing.assert_allclose(emb.embeddings, explicit.embeddings, rtol=1e-6, atol=1e-7)
    assert _cosine(emb.embeddings, ref.embeddings).min() > 0.99
    assert not np.array_equal(emb.embeddings, ref.embeddings)
    # explicit arguments win over the config
    emb = load_source(run, device="cpu", precision="fp32", channels_last=False)
    assert _speed(embed_calls[-1]) == ("fp32", False, 0)
    _assert_same(emb, ref)


def test_other_sources_do_not_take_the_data_configs_speed_settings(
    encoders, tmp_path, gaussian_test, embed_calls
):
    config = tmp_path / "bf16.yaml"
    save_config(load_config(None, GAUSSIAN + ["train.precision=bf16"]), config)
    emb = load_source(f"{encoders}:embed", config=config, device="cpu")
    assert "precision" not in embed_calls[-1]  # fp32: the config only describes the data
    np.testing.assert_allclose(emb.embeddings, 2 * _inputs(gaussian_test)[:, :4])
    load_source(f"{encoders}:embed", config=config, device="cpu", precision="bf16", num_workers=0)
    assert embed_calls[-1]["precision"] == "bf16" and embed_calls[-1]["num_workers"] == 0
