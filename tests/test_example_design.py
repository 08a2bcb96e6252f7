"""A new design is one file plus one registry line: the example design in
examples/designs/ (never imported by the package) registered through $MEMDESC_DESIGNS is
picked up by the generic suites (stateful, mm ops, differential, checker, contract) and
by ``memdesc run`` / ``memdesc compare`` with no other edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = f"linked-pcp={ROOT / 'examples' / 'designs' / 'linked_pcp.py'}:LinkedPcpDesign"


def _env() -> dict[str, str]:
    return {**os.environ, "MEMDESC_DESIGNS": ENTRY}


def test_generic_suites_pick_up_the_example_design():
    suites = ["tests/test_stateful.py", "tests/test_mm_ops.py", "tests/test_differential.py",
              "tests/test_checker_negative.py", "tests/test_architecture.py"]
    p = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", *suites,
                        "-k", "linked-pcp"],
                       cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    passed = int(p.stdout.strip().splitlines()[-1].split()[0])
    assert passed >= 30  # stateful 8, mm ops 4, differential 16, contract, checker families


def test_run_and_compare_pick_up_the_example_design(tmp_path):
    out = tmp_path / "cmp"
    p = subprocess.run([sys.executable, "-m", "memdesc.cli", "compare", "--designs", "linked,linked-pcp", "--machine",
                        "x86_64:1G", "--workload", "synthetic:mixed", "--ops", "4000", "--kernel", "6.19", "--jobs",
                        "1", "--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    res = {r["label"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert res["linked-pcp"]["status"] == "ok"
    # same placement as linked: every count the allocator keeps agrees
    for key in ("alloc_failures", "high_order", "zones", "fallback"):
        assert res["linked-pcp"][key] == res["linked"][key], key
    ops = res["linked-pcp"]["metadata"]["pcp_list_ops"]
    assert ops["alloc:del_head"] > 0 and ops["pcp_refill:add_tail"] > 0 and ops["free:add"] > 0
    js = tmp_path / "run.json"
    p = subprocess.run([sys.executable, "-m", "memdesc.cli", "run", "--design", "linked-pcp", "--machine", "i386:1G",
                        "--workload", "synthetic:mixed", "--ops", "3000", "--final-check", "--no-progress", "--json",
                        str(js)], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(js.read_text())
    assert s["checks_run"] == 1 and not any(s["violations"].values())
