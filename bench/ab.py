#!/usr/bin/env python3
"""A/B speed of two checkouts on the same ``memdesc run`` jobs, alternating runs.

The machine is shared and noisy, so each job runs A, B, A, B, ... in fresh processes and
the report is the ratio of medians (B / A ops per second, > 1 = B faster) with every
single figure, never a timing threshold. Each checkout runs with its own interpreter
(``CHECKOUT/.venv/bin/python`` if it exists)::

    python bench/ab.py --a ../base --b . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

JOBS = {
    "linked synthetic:mixed 16G": ["--design", "linked", "--machine", "x86_64:16G", "--workload", "synthetic:mixed",
                                   "--ops", "300000", "--kernel", "6.19"],
    "radix-deque synthetic:mixed 16G": ["--design", "radix-deque", "--machine", "x86_64:16G", "--workload",
                                        "synthetic:mixed", "--ops", "150000", "--kernel", "6.19"],
    "buddy-desc synthetic:mixed 16G": ["--design", "buddy-desc", "--machine", "x86_64:16G", "--workload",
                                       "synthetic:mixed", "--ops", "150000", "--kernel", "6.19"],
    "linked bundled trace": ["--design", "linked"],
    "embedded bundled trace": ["--design", "embedded"],
}


def python_of(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def one(checkout: Path, args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "r.json"
        cmd = [python_of(checkout), "-m", "memdesc.cli", "run", *args, "--no-progress", "--json", str(out)]
        p = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
        if p.returncode or not out.exists():
            raise SystemExit(f"ab: {checkout}: {' '.join(args)} failed: {p.stderr[-500:]}")
        return json.loads(out.read_text())["ops_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=Path, required=True, help="checkout A (the reference)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=None, help="substring of the job names to run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {}
    for name, jargs in JOBS.items():
        if args.only and args.only not in name:
            continue
        a, b = [], []
        for _ in range(args.rounds):
            a.append(one(args.a, jargs))
            b.append(one(args.b, jargs))
        ratio = statistics.median(b) / statistics.median(a)
        out[name] = {"a_ops_per_s": a, "b_ops_per_s": b, "ratio_b_over_a": ratio}
        print(f"{name:36s} A {statistics.median(a):>10,.0f}  B {statistics.median(b):>10,.0f}  B/A {ratio:.3f}  "
              f"(A {min(a):,.0f}-{max(a):,.0f}, B {min(b):,.0f}-{max(b):,.0f})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
