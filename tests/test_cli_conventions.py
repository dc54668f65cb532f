"""One convention across subcommands: list flags take `1 2 4 8` or `1,2,4,8`; help shows each
default once; progress bars only on a terminal."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from fairmetric.cli import build_parser
from fairmetric.cli.common import Formatter, ListAction

#: the arguments each subcommand needs before its list flags can be parsed
PREFIX = {
    "audit": ["audit", "emb.npz"],
    "compare": ["compare", "a.npz", "b.npz"],
    "posthoc": ["posthoc", "emb.npz", "--fix", "faircal", "--out", "o"],
    "finetune": ["finetune", "emb.npz", "--out", "o"],
    "bench": ["bench"],
}
#: list flags that must exist (the discovery below must not find fewer)
KNOWN = {
    ("audit", "--k"),
    ("audit", "--attributes"),
    ("audit", "--fmr"),
    ("audit", "--attribute-columns"),
    ("compare", "--k"),
    ("compare", "--attributes"),
    ("posthoc", "--fmr"),
    ("finetune", "--attributes"),
    ("bench", "--datasets"),
    ("bench", "--methods"),
    ("bench", "--seeds"),
    ("bench", "--rho-sweep"),
}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _list_flags() -> list[tuple[str, argparse.Action]]:
    found = []
    for name, p in _subcommands().items():
        for action in p._actions:
            if action.option_strings and action.nargs in ("+", "*"):
                found.append((name, action))
    return found


def _values(action: argparse.Action) -> tuple[list[str], list]:
    """Two sample items for the flag, as typed and as parsed."""
    flag = action.option_strings[0]
    if flag == "--fmr":
        return ["0.01", "0.001"], [0.01, 0.001]
    if flag in ("--k", "--seeds"):
        return ["1", "4"], [1, 4]
    if flag == "--rho-sweep":
        return ["0.1", "1"], [0.1, 1.0]
    return ["alpha", "beta"], ["alpha", "beta"]


def test_every_list_flag_is_one_list_action():
    flags = _list_flags()
    assert KNOWN <= {(name, a.option_strings[0]) for name, a in flags}
    for name, action in flags:
        assert isinstance(action, ListAction), (name, action.option_strings)


@pytest.mark.parametrize("name, flag", sorted((n, a.option_strings[0]) for n, a in _list_flags()))
def test_space_and_comma_forms_parse_the_same(name, flag):
    parser = build_parser()
    action = next(a for n, a in _list_flags() if n == name and a.option_strings[0] == flag)
    typed, parsed = _values(action)
    dest = action.dest
    for form in (typed, [",".join(typed)], [typed[0] + ",", typed[1]]):
        args = parser.parse_args(PREFIX[name] + [flag, *form])
        assert getattr(args, dest) == parsed, (flag, form)


def test_a_bad_item_is_a_usage_error_naming_the_form(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["audit", "emb.npz", "--k", "1,x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--k" in err and "separated by spaces or commas" in err and "'x'" in err


def test_help_shows_each_default_once():
    for name, p in _subcommands().items():
        fmt = Formatter(prog=name)
        for action in p._actions:
            text = fmt._get_help_string(action) or ""
            assert text.count("default") <= 1 or "%(default)" in text, (name, text)
            assert "(default: None)" not in text and "(default: False)" not in text, (name, text)
    help_text = _subcommands()["audit"].format_help()
    assert "(default: 1 2 4 8)" in help_text  # a list default as it is typed


def _tqdm_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
            if name in ("tqdm", "trange"):
                yield node


def test_every_progress_bar_shows_only_on_a_terminal():
    """tqdm's disable=None hides the bar when stderr is not a terminal; every bar in the package
    passes None (or True when progress is off)."""
    root = Path(__file__).resolve().parents[1] / "fairmetric"
    calls = 0
    for path in sorted(root.rglob("*.py")):
        for call in _tqdm_calls(ast.parse(path.read_text(encoding="utf-8"))):
            calls += 1
            kw = {k.arg: k.value for k in call.keywords}
            assert "disable" in kw, f"{path}:{call.lineno}: tqdm without disable=None"
            value = kw["disable"]
            ok = (isinstance(value, ast.Constant) and value.value is None) or (
                isinstance(value, ast.IfExp)
                and isinstance(value.body, ast.Constant)
                and value.body.value is None
            )
            assert ok, f"{path}:{call.lineno}: disable must be None when progress is on"
    assert calls >= 5
