"""Unknown config keys: the message suggests the closest valid key ("did you mean")."""

from __future__ import annotations

import pytest

from fairmetric.train import load_config


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("train.epoch=3", "'train.epochs'"),
        ("trian.epochs=3", "'train.epochs'"),
        ("train.tensorbord=true", "'train.tensorboard'"),
        ("model.embeding_dim=8", "'model.embedding_dim'"),
        ("loss.nme=x", "'loss.name'"),
    ],
)
def test_a_misspelt_override_names_the_closest_key(override, suggestion):
    with pytest.raises(ValueError, match="unknown config key") as info:
        load_config(None, [override])
    assert f"(did you mean {suggestion}?)" in str(info.value)


@pytest.mark.parametrize(
    "text, suggestion",
    [("trian:\n  epochs: 3\n", "'train'"), ("train:\n  epoch: 3\n", "'train.epochs'")],
)
def test_a_misspelt_key_in_a_file_names_the_closest_key(tmp_path, text, suggestion):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="unknown config key") as info:
        load_config(path)
    assert f"(did you mean {suggestion}?)" in str(info.value)


def test_misspelt_reducer_parameter_is_suggested(tmp_path):
    with pytest.raises(ValueError, match=r"'reducer.bta' \(did you mean 'reducer.beta'\?\)"):
        load_config(None, ["reducer.name=group_weighted", "reducer.bta=0.5"])
    path = tmp_path / "c.yaml"
    path.write_text("reducer:\n  name: group_weighted\n  bta: 0.5\n")
    with pytest.raises(ValueError, match=r"'reducer.bta' \(did you mean 'beta'\?\)"):
        load_config(path)


def test_nothing_close_suggests_nothing():
    with pytest.raises(ValueError) as info:
        load_config(None, ["zzzzzz=1"])
    assert "did you mean" not in str(info.value)
