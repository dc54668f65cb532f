"""The README runs as written, its printed tables are what the code prints, its claims hold.

The engine is ``scripts/update_readme.py`` (which also rewrites the tables after a change that
moves the numbers). The run of the README's blocks, with the real demo in it, is one module-scoped
fixture shared by the ``slow`` tests; the other tests are fast checks of the README's structure,
of the numbers in its prose, and of the links and commands in ``docs/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: the pages whose commands and names are checked against the code: the extension guides name the
#: files and config keys a reader is about to create, so they are left to their own tests
REFERENCE_DOCS = [p for p in DOCS if not p.name.startswith("extend")]


def _engine():
    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "scripts/update_readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


engine = _engine()


# -- structure -------------------------------------------------------------------------------


def test_markers_are_few_and_explained():
    blocks = engine.parse(README.read_text())
    skipped = [b for b in blocks if b.marker == "skip"]
    assert len(skipped) <= 2, "keep skipped README blocks few"
    assert all(b.reason for b in skipped)
    assert [b.marker for b in blocks].count("demo-output") == 1
    runnable = [b for b in blocks if b.lang in engine.RUNNABLE and b.marker != "skip"]
    assert runnable, "the README has commands to run"
    for i, b in enumerate(blocks):
        if b.marker == "output":  # an output block follows the block whose output it is
            previous = [p for p in blocks[:i] if p.lang in engine.RUNNABLE and p.marker != "skip"]
            assert previous, f"README line {b.line}: output block before any command"


def test_setup_commands_and_make_demo():
    """The two set-up commands stay, `.ci/run` calls `make test`, and `make demo` runs
    `fairmetric demo` once installed (which is what the README test runs in its place)."""
    text = README.read_text()
    setup = engine.parse(text)[0]
    assert setup.marker == "skip"
    assert [line.split("#")[0].strip() for line in setup.code.strip().splitlines()] == [
        "make demo",
        "make test",
    ]
    assert "`.ci/run` calls `make test`" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and recipe[1].strip() == "$(BIN)/fairmetric demo"
    assert engine.DEMO_COMMAND == "fairmetric demo"


def test_update_rewrites_only_output_blocks():
    text = "a\n```bash\necho hi\n```\n<!-- readme-test: output -->\n```text\nold\n```\nb\n"
    blocks = engine.parse(text)
    result = engine.Result(blocks[1], "echo hi", 0, "hi\n", "", 0.0, "hi\n")
    assert "printed" in engine.problems([result])[0]  # the README shows "old"
    new = engine.update(text, [result])
    assert new == text.replace("old", "hi")
    fresh = engine.Result(engine.parse(new)[1], "echo hi", 0, "hi\n", "", 0.0, "hi\n")
    assert engine.problems([fresh]) == []
    with pytest.raises(ValueError, match="unknown readme-test marker"):
        engine.parse("<!-- readme-test: skp (x) -->\n```bash\nls\n```\n")


def test_demo_tables_are_compared_exactly_on_their_platform_only():
    here = engine.platform()
    assert here.startswith("torch ") and "CPU kernels" in here
    tables = "gap  0.141\n"

    def run(recorded: str, printed: str):
        text = f"<!-- readme-test: demo-output ({recorded}) -->\n```text\n{tables}```\n"
        block = engine.parse(text)[0]
        return text, engine.Result(block, "fairmetric demo", 0, printed, "", 0.0, printed)

    # recorded here: any difference is a problem, and update() re-records the platform
    text, same = run(here, tables)
    assert engine.problems([same]) == [] and engine.demo_platform_note([same]) is None
    text, moved = run(here, "gap  0.142\n")
    assert "printed" in engine.problems([moved])[0]
    # recorded on another platform: not compared, and the note says why and how to re-record
    text, elsewhere = run("torch 0.0, CPU kernels NONE", "gap  0.142\n")
    assert engine.problems([elsewhere]) == []
    note = engine.demo_platform_note([elsewhere])
    assert "torch 0.0, CPU kernels NONE" in note and here in note and "--update" in note
    new = engine.update(text, [elsewhere])
    assert f"<!-- readme-test: demo-output ({here}) -->" in new and "0.142" in new
    assert engine.parse(new)[0].reason == here


def test_run_record_and_update_from_it(tmp_path):
    """Blocks run in order in one folder (a later block sees an earlier one's files, python
    blocks too); the run is recorded, and --update --from rewrites the outputs from the record."""
    text = (
        "<!-- readme-test: skip (not here) -->\n```bash\nexit 3\n```\n"
        "```bash\necho made > made.txt\n```\n"
        "```python\nprint(open('made.txt').read().strip(), 'in python')\n```\n"
        "<!-- readme-test: output -->\n```text\nstale\n```\n"
    )
    blocks = engine.parse(text)
    results = engine.run_blocks(blocks, tmp_path)
    assert [r.returncode for r in results] == [0, 0, 0]
    assert results[-1].expected == "made in python\n"
    recorded = engine.load_results(blocks, tmp_path)
    assert engine.update(text, recorded) == text.replace("stale", "made in python")
    failing = engine.parse("```bash\nfalse\n```\n```bash\necho never\n```\n")
    results = engine.run_blocks(failing, tmp_path)
    assert len(results) == 1 and "exited 1" in engine.problems(results)[0]


# -- every number in the prose is checked ---------------------------------------------------


def _train_shares() -> dict[str, str]:
    """The demo's training images per palette, as the README's rounded shares."""
    import numpy as np

    from fairmetric.demo import ATTRIBUTE, CONFIG
    from fairmetric.train import build_data, load_config

    train = build_data(load_config(CONFIG))["train"]
    codes = train.attribute(ATTRIBUTE)
    names = train.attribute_value_names[ATTRIBUTE]
    counts = np.bincount(codes, minlength=len(names))
    return {names[v]: f"{c / counts.sum():.0%}" for v, c in enumerate(counts)}


def _exit_status(name: str, value: int) -> bool:
    from fairmetric import errors

    return getattr(errors, f"EXIT_{name}") == value


def _python_floor() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'requires-python = ">=\s*([\d.]+)"', text)[1]


#: phrases of the README's prose that hold a number, and what checks it (the demo-run numbers are
#: checked by test_claims below, from the run itself; the claims in words are claims() in
#: scripts/update_readme.py)
NUMBERS = {
    "ICLR 2022": "citation (Dullerud et al.)",
    "Python >= 3.10": lambda: _python_floor() == "3.10",
    "rendered 95% in the majority palette and 5%": lambda: (
        _train_shares() == {"majority": "95%", "minority": "5%"}
    ),
    "(seed 0, on a CPU; the demo pins one thread": "test_claims: the demo's seed and threads",
    "95% t interval": "tests/test_results.py: the bench's paired intervals",
    "95% bootstrap interval": "test_claims: the audit report's level",
    "exits with status 1": "test_claims: the gate's exit status",
    "0 success, 1 a": lambda: _exit_status("OK", 0) and _exit_status("GATE", 1),
    "2 a user error": lambda: _exit_status("USER", 2),
    "3 an internal error": lambda: _exit_status("INTERNAL", 3),
    "130 after Ctrl-C and 143": "tests/train/test_run_safety.py: the statuses after SIGINT, SIGTERM",
}


def test_every_number_in_the_prose_is_checked():
    prose = engine.prose(README.read_text())
    for phrase, check in NUMBERS.items():
        assert phrase in prose, f"README no longer says {phrase!r}: update NUMBERS"
        if callable(check):
            assert check(), f"README: {phrase!r} is no longer true"
        prose = prose.replace(phrase, " ")
    stray = re.findall(r"(?<![\w@./-])\d+(?:[.,]\d+)*%?", prose)
    assert not stray, (
        f"numbers in the README's prose that no test checks: {stray}; put them in a checked "
        "block or add a check to NUMBERS"
    )


# -- running the README --------------------------------------------------------------------


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's blocks run once, in a temporary folder, or in ``$FAIRMETRIC_README_DIR``
    (emptied first) to keep the run for ``scripts/update_readme.py --update --from DIR``."""
    kept = os.environ.get("FAIRMETRIC_README_DIR")
    if kept:
        workdir = Path(kept)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    else:
        workdir = tmp_path_factory.mktemp("readme")
    results = engine.run_blocks(engine.parse(README.read_text()), workdir)
    return workdir, results


@pytest.mark.slow
def test_every_block_runs_and_every_output_is_true(readme_run):
    workdir, results = readme_run
    found = engine.problems(results)
    hint = (
        "\n\nto rewrite the README's tables: .venv/bin/python scripts/update_readme.py --update "
        f"(reruns the README), or --update --from {workdir} (this run's outputs; set "
        "FAIRMETRIC_README_DIR to keep the folder from pytest's clean-up)"
    )
    assert not found, "\n\n".join(found) + hint
    note = engine.demo_platform_note(results)
    ran = [r.block for r in results if r.block.marker != "output"]
    expected = [
        b
        for b in engine.parse(README.read_text())
        if b.marker == "demo-output" or (b.lang in engine.RUNNABLE and b.marker != "skip")
    ]
    assert [b.line for b in ran] == [b.line for b in expected], "a block did not run"
    if note:  # every other check above ran; the tables were recorded on another platform
        pytest.skip(note)


@pytest.mark.slow
def test_claims(readme_run):
    workdir, results = readme_run
    assert not [r for r in results if r.returncode != 0], "see the test above"
    stale = engine.claim_problems(README.read_text(), workdir)
    assert not stale, "\n".join(stale)
    # the numbers NUMBERS leaves to this test
    from fairmetric.cli import main
    from fairmetric.demo import ATTRIBUTE, CONFIG, DEMO_THREADS
    from fairmetric.train import load_config

    assert load_config(CONFIG).train.seed == 0 and DEMO_THREADS == 1  # the demo's seed, threads
    report = json.loads((workdir / "runs/audit/report.json").read_text())
    assert report["metadata"]["level"] == 0.95
    gap = report["metrics"]["recall@1"]["difference"][ATTRIBUTE]["value"]
    emb = str(workdir / "runs/demo/baseline/test_embeddings.npz")
    gate = ["--bootstrap", "0", "--no-linear-probe", "--no-progress"]
    assert main(["audit", emb, *gate, "--fail-if", "recall@1.difference>0.05"]) == (
        1 if gap > 0.05 else 0
    )
    assert main(["audit", emb, *gate, "--fail-if", f"recall@1.difference>{gap + 1}"]) == 0


# -- docs/ ------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return s.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = engine.FENCE.sub("", path.read_text())
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_links_resolve(page):
    text = engine.FENCE.sub("", page.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if dest.name == "extend.md" and not dest.exists():
            continue  # written by another change of the same issue
        assert dest.exists(), f"{page.name}: link to missing {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading for #{anchor} in {path}"


def _commands(text: str) -> list[list[str]]:
    """The ``fairmetric ...`` command lines of the bash blocks of ``text`` (continuations
    joined, ``torchrun ... -m fairmetric`` included), as argument lists after ``fairmetric``."""
    found = []
    for m in engine.FENCE.finditer(text):
        if m["lang"] != "bash":
            continue
        code = m["body"].replace("\\\n", " ")
        for line in code.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("#") or not line:
                continue
            argv = shlex.split(line)
            if argv[0] == "fairmetric":
                found.append(argv[1:])
            elif "-m" in argv and argv[argv.index("-m") + 1] == "fairmetric":
                found.append(argv[argv.index("-m") + 2 :])
    return found


@pytest.mark.parametrize("page", REFERENCE_DOCS, ids=lambda p: p.name)
def test_docs_commands_parse(page):
    """Every ``fairmetric`` command in docs/ names real options, and a train command's config
    and overrides load (the docs' commands are not run: they need data or hours)."""
    from fairmetric.cli import build_parser
    from fairmetric.train import load_config

    parser = build_parser()
    for argv in _commands(page.read_text()):
        if "--help" in argv:
            continue
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page.name}: `fairmetric {shlex.join(argv)}` does not parse")
        if argv[0] == "train" and not str(args.config or "").startswith("runs/"):
            load_config(args.config, args.overrides)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_python_compiles(page):
    for m in engine.FENCE.finditer(page.read_text()):
        if m["lang"] == "python":
            compile(m["body"], f"{page.name}:python block", "exec")


@pytest.mark.parametrize("page", [README, *REFERENCE_DOCS], ids=lambda p: p.name)
def test_named_files_and_python_names_exist(page):
    """Every repository path (`fairmetric/...`, `examples/...`, ...) and every dotted
    `fairmetric.` name the page puts in backticks exists, so the docs follow the code."""
    import importlib

    text = engine.FENCE.sub("", page.read_text())
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.rstrip(".,:;")
        if re.match(
            r"(fairmetric|examples|tests|benchmarks|configs|scripts|docs)/[\w./-]*$", token
        ):
            if "{" in token or "*" in token:
                continue
            assert (ROOT / token).exists(), f"{page.name}: `{token}` does not exist"
        elif re.match(r"fairmetric(\.\w+)+$", token):
            parts = token.split(".")
            for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                for name in parts[i:]:
                    assert hasattr(obj, name), f"{page.name}: `{token}` does not exist"
                    obj = getattr(obj, name)
                break
