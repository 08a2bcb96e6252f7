#!/usr/bin/env python3
"""Golden outputs: a fixed set of runs whose results must not change under a refactoring
(or between the compiled and pure-Python builds).

Each case runs ``memdesc`` in its own process and writes its output file; timing, date,
host and commit fields are dropped and the rest is hashed (SHA-256 of the canonical JSON,
or of the text). ``--save FILE`` writes the hashes, ``--against FILE`` compares and exits
1 on any difference (naming the cases), so an A/B check is::

    python bench/golden.py --save /tmp/before.json          # on the old commit
    python bench/golden.py --against /tmp/before.json       # on the new one

Cases: ``memdesc run --json`` for every built-in design on the four presets
(synthetic:mixed) and on the bundled trace, ``memdesc compare --out``'s results.json on
the bundled trace, and ``memdesc validate --json`` on every shared trace (``--traces DIR``,
default ../shared/traces or $MEMDESC_TRACES; skipped with a notice when absent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DESIGNS = ["linked", "embedded", "buddy-desc", "radix-deque", "radix-deque:words=1"]
MM_DESIGNS = ["radix-deque:policy=self", "radix-deque:policy=movable-nodes"]
PRESETS = ["x86_64:16G", "x86_64:16G,movablecore=25%", "x86_64:16G,cma=256M", "i386:4G"]
#: keys whose values depend on the run's wall clock or environment, dropped before hashing
VOLATILE = {"elapsed_s", "ops_per_s", "seconds", "elapsed", "wall_s", "date", "host", "git_commit",
            "events_per_s", "lines_per_s", "started", "finished", "duration_s", "timing", "memdesc_version"}


_PKG_PATH = re.compile(r"[^\s'\"]*/src/memdesc/")


def _strip(obj):
    """Drop volatile keys; write paths into the checkout's package as <memdesc>/ so that two
    checkouts (old and new commit side by side) hash alike."""
    if isinstance(obj, str):
        return _PKG_PATH.sub("<memdesc>/", obj)
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def digest_json(path: Path) -> str:
    data = _strip(json.loads(path.read_text()))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _design_args(d: str) -> list[str]:
    name, _, opt = d.partition(":")
    out = ["--design", name]
    if opt:
        k, v = opt.split("=")
        out += [f"--{k}", v]
    return out


def _run(name: str, machine: str | None, design: str, *extra: str) -> tuple[str, list[str], str]:
    m = ["--machine", machine] if machine else []
    return (name, ["run", *m, *_design_args(design), *extra, "--final-check", "--no-progress", "--json", "{out}"],
            "json")


def cases(ops: int, traces: Path | None) -> list[tuple[str, list[str], str]]:
    """(name, memdesc argv with {out} for the output path, output kind)."""
    syn = ["--workload", "synthetic:mixed", "--ops", str(ops), "--seed", "1", "--sample-every", str(max(ops // 10, 1))]
    out = []
    for d in DESIGNS:
        for m in PRESETS:
            out.append(_run(f"run {d} {m}", m, d, *syn, "--kernel", "6.19"))
            if d in ("linked", "radix-deque"):
                out.append(_run(f"run {d} {m} kernel 6.1", m, d, *syn, "--kernel", "6.1"))
        out.append(_run(f"run {d} default-trace", None, d))
    for d in DESIGNS + MM_DESIGNS:
        out.append(_run(f"run {d} movablecore mm-probe", "x86_64:8G,movablecore=25%", d, *syn, "--kernel", "6.19",
                        "--mm-probe", "--compaction"))
        out.append(_run(f"run {d} cma mm-probe", "x86_64:2G,cma=256M", d, "--workload", "synthetic:cma", "--ops",
                        str(ops), "--kernel", "6.19", "--mm-probe", "--compaction"))
    for d in ("radix-deque:policy=borrow", "radix-deque:policy=defer", "radix-deque:policy=self"):
        out.append(_run(f"run {d} i386:4G", "i386:4G", d, *syn, "--kernel", "6.19"))
    out.append(_run("run linked no-pcp x86_64:16G", "x86_64:16G", "linked", *syn, "--no-pcp", "--kernel", "6.19"))
    out.append(_run("run buddy-desc no-pcp i386:4G", "i386:4G", "buddy-desc", *syn, "--no-pcp", "--kernel", "6.1"))
    out.append(("compare default-trace", ["compare", "--jobs", "2", "--out", "{out}"], "compare"))
    if traces is not None:
        for t in sorted(p.parent for p in traces.glob("*/trace.txt.xz")):
            out.append((f"validate {t.name}", ["validate", str(t), "--json", "{out}"], "json"))
    return out


def run_case(name: str, argv: list[str], kind: str, tmp: Path) -> tuple[str, str]:
    safe = "".join(c if c.isalnum() else "_" for c in name)
    target = tmp / (safe if kind == "compare" else safe + ".json")
    argv = [a.replace("{out}", str(target)) for a in argv]
    p = subprocess.run([sys.executable, "-m", "memdesc.cli", *argv], capture_output=True, text=True)
    if kind == "compare":
        res = target / "results.json"
    else:
        res = target
    if not res.exists():
        return name, f"ERROR rc={p.returncode}: {(p.stderr or p.stdout)[-400:]}"
    return name, digest_json(res)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--save", type=Path, help="write the hashes here")
    ap.add_argument("--against", type=Path, help="compare with hashes saved earlier; exit 1 on a difference")
    ap.add_argument("--ops", type=int, default=30000, help="synthetic ops per run case")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--traces", type=Path, default=None, help="shared trace directory")
    ap.add_argument("--only", default=None, help="substring: run only matching cases")
    args = ap.parse_args()
    traces = args.traces or Path(os.environ.get("MEMDESC_TRACES", Path(__file__).resolve().parents[2]
                                                / "shared" / "traces"))
    if not traces.is_dir():
        print(f"golden: no trace directory {traces}: validate cases skipped", file=sys.stderr)
        traces = None
    todo = cases(args.ops, traces)
    if args.only:
        todo = [c for c in todo if args.only in c[0]]
    with tempfile.TemporaryDirectory() as td, ThreadPoolExecutor(args.jobs) as ex:
        results = dict(ex.map(lambda c: run_case(*c, Path(td)), todo))
    for name in sorted(results):
        print(f"{results[name][:16]}  {name}")
    errors = [n for n, h in results.items() if h.startswith("ERROR")]
    for n in errors:
        print(f"golden: {n}: {results[n]}", file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True))
    rc = 1 if errors else 0
    if args.against:
        old = json.loads(args.against.read_text())
        diff = [n for n in results if n in old and old[n] != results[n]]
        missing = [n for n in old if n not in results and (not args.only or args.only in n)]
        for n in diff:
            print(f"golden: CHANGED {n}", file=sys.stderr)
        for n in missing:
            print(f"golden: not run {n}", file=sys.stderr)
        print(f"golden: {len(results) - len(diff)} of {len(results)} cases identical")
        rc = 1 if diff or errors else rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
