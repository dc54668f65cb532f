"""Run the README's commands and snippets as a newcomer would, and keep its printed output true.

    .venv/bin/python scripts/update_readme.py           # run every block, report differences
    .venv/bin/python scripts/update_readme.py --update  # run every block, rewrite the outputs
    .venv/bin/python scripts/update_readme.py --update --from DIR  # outputs of an earlier run

The README's fenced blocks are read in order:

- a ``bash`` block runs with ``bash -euo pipefail`` and a ``python`` block with this Python, both
  in one temporary folder (so later blocks find the files earlier ones wrote), with the
  ``fairmetric`` command of this Python's environment first on ``PATH``; each must exit 0;
- a block preceded by ``<!-- readme-test: skip (reason) -->`` does not run (the reason is
  required);
- a block preceded by ``<!-- readme-test: output -->`` must equal the standard output of the
  block run before it;
- a block preceded by ``<!-- readme-test: demo-output -->`` runs ``fairmetric demo`` (what
  ``make demo`` runs once it has installed fairmetric; ``tests/test_readme.py`` checks the
  Makefile says so) and must equal the tables the demo printed, i.e.
  ``fairmetric.demo.format_summary`` of the run's ``summary.json``, which must appear verbatim in
  the demo's standard output. The marker names the platform the tables were recorded on
  (``<!-- readme-test: demo-output (torch 2.14.1, CPU kernels AVX512) -->``): training in float32
  is not bit-identical across CPU instruction sets, so the tables are compared exactly where the
  platform is the recorded one (as on the project's own machines and CI), and elsewhere the
  comparison is reported as not applicable (:func:`demo_platform_note`) while every other check,
  the claims about the fresh numbers included, still runs.

``--update`` rewrites the output and demo blocks with what the run printed. The prose around them
is checked too: :func:`claims` lists what "How to read it" says about the demo's numbers, and
every run (and ``--update``) reports a claim the new numbers no longer show, so the text can be
reworded with the tables; ``tests/test_readme.py`` checks the same and that every number in the
prose is checked. Exit status 1 when something is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?P<reason>\(.*?\))?\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
RUNNABLE = ("bash", "python")
KINDS = ("skip", "output", "demo-output")
DEMO_COMMAND = "fairmetric demo"
RECORD = ".readme_results.json"


@dataclass
class Block:
    """One fenced block of the README and the marker right before it, if any."""

    lang: str
    code: str
    start: int  # offsets of the block's body in the README text
    end: int
    line: int
    marker: str | None = None
    reason: str | None = None


@dataclass
class Result:
    """What running one block (or the demo, for a demo-output block) printed."""

    block: Block
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    expected: str | None = None  # for output blocks: the text the block must equal


def parse(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in order, with their ``readme-test`` markers."""
    blocks = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip()
        marker = reason = None
        tail = before.rsplit("\n", 1)[-1].strip()
        found = MARKER.fullmatch(tail)
        if found:
            marker = found["kind"]
            reason = found["reason"][1:-1].strip() if found["reason"] else None
            if marker not in KINDS:
                raise ValueError(
                    f"README: unknown readme-test marker {marker!r}; use one of {KINDS}"
                )
        blocks.append(
            Block(
                lang=m["lang"],
                code=m["body"],
                start=m.start("body"),
                end=m.end("body"),
                line=text.count("\n", 0, m.start()) + 1,
                marker=marker,
                reason=reason,
            )
        )
    return blocks


#: CPU features beyond torch's capability level that select other float32 kernels in oneDNN and
#: MKL (two AVX-512 machines, one with bf16/VNNI, trained the demo to different numbers)
_KERNEL_FLAGS = ("avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile")


def _cpu_detail() -> str:
    """`` (vendor, flags...)`` from /proc/cpuinfo, or nothing where it cannot be read."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", info, re.M)
    flags = re.search(r"^flags\s*:(.*)$", info, re.M)
    have = set(flags.group(1).split()) if flags else set()
    parts = ([vendor.group(1)] if vendor else []) + [f for f in _KERNEL_FLAGS if f in have]
    return f" ({', '.join(parts)})" if parts else ""


def platform() -> str:
    """What decides the demo's float32 training numbers: torch's version, the CPU kernels it
    dispatches to (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...) and
    the CPU's vendor and the features that pick other oneDNN/MKL kernels (:data:`_KERNEL_FLAGS`).
    The demo pins one thread, so the core count does not enter."""
    import torch

    version = torch.__version__.split("+")[0]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"torch {version}, CPU kernels {capability}{_cpu_detail()}"


def demo_platform_note(results: list[Result]) -> str | None:
    """None when the README's demo tables were recorded on this platform (they must then be
    equal); otherwise why their exact comparison does not apply here."""
    here = platform()
    for r in results:
        if r.block.marker == "demo-output" and r.block.reason != here:
            return (
                f"README line {r.block.line}: the demo tables were recorded on "
                f"{r.block.reason or 'an unnamed platform'}, this machine is {here}; float32 "
                "training differs across CPU instruction sets, so they are compared exactly only "
                "on the recorded platform (scripts/update_readme.py --update re-records them here)"
            )
    return None


def normalise(text: str) -> str:
    """Compare printed text without trailing spaces or trailing blank lines."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def environment() -> dict[str, str]:
    """The environment blocks run in: this Python's scripts first on PATH, no GPU, no display."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env["CUDA_VISIBLE_DEVICES"] = ""  # the README's numbers are CPU numbers
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def run_blocks(blocks: list[Block], workdir: Path, *, log=None) -> list[Result]:
    """Run the README's blocks in order in ``workdir``; one :class:`Result` per run or output
    block (skipped blocks and plain text blocks have none)."""
    from fairmetric.demo import format_summary

    env = environment()
    results: list[Result] = []
    last: Result | None = None
    for i, b in enumerate(blocks):
        if b.marker == "skip":
            if not b.reason:
                raise ValueError(f"README line {b.line}: a skipped block must say why: skip (...)")
            continue
        if b.marker == "output":
            if last is None:
                raise ValueError(f"README line {b.line}: an output block must follow a run block")
            results.append(
                Result(b, last.command, last.returncode, last.stdout, last.stderr, 0.0, last.stdout)
            )
            continue
        if b.marker == "demo-output":
            rc, out, err, secs = _run(["bash", "-c", DEMO_COMMAND], workdir, env)
            summary_path = workdir / "runs" / "demo" / "summary.json"
            tables = None
            if rc == 0 and summary_path.is_file():
                tables = format_summary(json.loads(summary_path.read_text()))
            last = Result(b, DEMO_COMMAND, rc, out, err, secs, tables)
            results.append(last)
        elif b.lang in RUNNABLE:
            if b.lang == "bash":
                argv = ["bash", "-euo", "pipefail", "-c", b.code]
            else:
                script = workdir / f".readme_block_{i}.py"
                script.write_text(b.code)
                argv = [sys.executable, script.name]
            rc, out, err, secs = _run(argv, workdir, env)
            last = Result(b, b.code.strip(), rc, out, err, secs)
            results.append(last)
        else:
            continue
        if log is not None:
            log(f"README line {b.line}: exit {last.returncode} in {last.seconds:.1f} s")
        if last.returncode != 0:
            break  # later blocks need this one's files
    record = [
        {"index": blocks.index(r.block), "marker": r.block.marker, "returncode": r.returncode}
        | {"expected": r.expected}
        for r in results
    ]
    (workdir / RECORD).write_text(json.dumps(record, indent=1))
    return results


def load_results(blocks: list[Block], workdir: Path) -> list[Result]:
    """The output blocks' results recorded by an earlier :func:`run_blocks` in ``workdir`` (for
    ``--update --from DIR`` after a test run, without running everything again)."""
    results = []
    for item in json.loads((workdir / RECORD).read_text()):
        b = blocks[item["index"]]
        if b.marker != item["marker"]:
            raise ValueError(f"{workdir}: recorded for another README; run without --from")
        if b.marker in ("output", "demo-output"):
            results.append(Result(b, "", item["returncode"], "", "", 0.0, item["expected"]))
    return results


def problems(results: list[Result]) -> list[str]:
    """Every way the run disagrees with the README, as messages (empty: all true)."""
    out = []
    for r in results:
        where = f"README line {r.block.line}"
        if r.returncode != 0:
            out.append(
                f"{where}: `{r.command}` exited {r.returncode}\n--- stdout\n{r.stdout[-3000:]}"
                f"\n--- stderr\n{r.stderr[-3000:]}"
            )
            continue
        if r.block.marker == "demo-output":
            if r.expected is None:
                out.append(f"{where}: the demo wrote no summary.json")
                continue
            printed = normalise(r.stdout)
            if normalise(r.expected) not in printed:
                out.append(f"{where}: the demo's printed tables differ from its summary.json")
        if r.block.marker == "demo-output" and r.block.reason != platform():
            continue  # recorded elsewhere: see demo_platform_note
        if r.block.marker in ("output", "demo-output"):
            if normalise(r.block.code) != normalise(r.expected or ""):
                out.append(
                    f"{where}: the README shows\n{r.block.code}\nbut `{r.command}` printed\n"
                    f"{normalise(r.expected or '')}\n(rerun scripts/update_readme.py --update)"
                )
    return out


def update(text: str, results: list[Result]) -> str:
    """``text`` with every output and demo block replaced by what the run printed, and the demo
    block's marker naming this platform."""
    pieces = []
    pos = 0
    for r in sorted(results, key=lambda r: r.block.start):
        if r.block.marker not in ("output", "demo-output") or r.expected is None:
            continue
        head = text[pos : r.block.start]
        if r.block.marker == "demo-output":
            cut = head.rstrip().rfind("<!--")
            fence = head[head.index("```", cut) :]
            head = head[:cut] + f"<!-- readme-test: demo-output ({platform()}) -->\n" + fence
        pieces += [head, normalise(r.expected) + "\n"]
        pos = r.block.end
    return "".join(pieces) + text[pos:]


def prose(text: str) -> str:
    """``text`` without code blocks, inline code, HTML comments and link targets, on one line."""
    text = FENCE.sub(" ", text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"^\s*\d+\.\s", " ", text, flags=re.M)  # ordered-list markers
    text = text.replace("**", "")
    return " ".join(text.split())


def claims(workdir: Path) -> dict[str, bool]:
    """What the README's "How to read it" says about the demo's numbers (phrases of its
    :func:`prose`), and whether the run in ``workdir`` shows it."""
    from fairmetric.demo import ATTRIBUTE

    summary = json.loads((workdir / "runs/demo/summary.json").read_text())
    recall = summary["recall@1"]["baseline"]["by_group"][ATTRIBUTE]
    base = summary["comparison"]["baseline"]
    down = json.loads((workdir / "runs/demo/baseline/downstream/report.json").read_text())
    accuracy = down["metrics"]["accuracy"]["by_group"][ATTRIBUTE]
    shares = summary["train_share"]
    rare = min(shares, key=shares.get)
    common = max(shares, key=shares.get)
    return {
        "The baseline serves the rare palette worse, and the gap's bootstrap interval excludes "
        "zero": (
            base["recall@1 worst group name"] == rare
            and recall[rare] < recall[common]
            and base["recall@1 gap interval"][0] > 0
        ),
        "is still less accurate on one palette, beyond its bootstrap interval": (
            min(v["value"] for v in accuracy.values()) < max(v["value"] for v in accuracy.values())
            and base["downstream gap interval"][0] > 0
        ),
    }


def claim_problems(text: str, workdir: Path) -> list[str]:
    """Claims the README makes that the run in ``workdir`` does not show (or no longer makes)."""
    found = []
    said = prose(text)
    for claim, holds in claims(workdir).items():
        if claim not in said:
            found.append(
                f"README no longer says {claim!r}: update claims() in {Path(__file__).name}"
            )
        elif not holds:
            found.append(
                f"README says {claim!r}, and the demo's numbers no longer show it: reword it"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the output blocks")
    parser.add_argument("--keep", type=Path, help="run in this folder (kept) instead of a temp one")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="with --update: take the outputs recorded by an earlier run in DIR (e.g. the "
        "readme folder tests/test_readme.py left under pytest's temporary folder) instead of "
        "running the README again",
    )
    args = parser.parse_args(argv)
    text = README.read_text()
    blocks = parse(text)
    if args.source is not None:
        if not args.update:
            parser.error("--from needs --update")
        results = load_results(blocks, args.source)
        if any(r.returncode != 0 for r in results):
            parser.error(f"the run in {args.source} failed; nothing to update from")
        README.write_text(update(text, results))
        print("README.md: output blocks rewritten from", args.source)
        stale_claims = claim_problems(text, args.source)
        for p in stale_claims:
            print(p)
        return 1 if stale_claims else 0
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = run_blocks(blocks, workdir, log=lambda m: print(m, file=sys.stderr))
        failed = [r for r in results if r.returncode != 0]
        stale_claims = [] if failed else claim_problems(text, workdir)
        for p in stale_claims:
            print(p)
        if args.update and not failed:
            new = update(text, results)
            if new != text:
                README.write_text(new)
                print("README.md: output blocks rewritten; now run tests/test_readme.py")
            else:
                print("README.md: output blocks already true")
            return 1 if stale_claims else 0
        found = problems(results) + stale_claims
        for p in found:
            print(p, end="\n\n")
        if not found:
            print("README.md: every block ran and every output block is true")
        return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
