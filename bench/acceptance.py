#!/usr/bin/env python3
"""Acceptance runs: the long 'done when' checks of the issues, as one script.

Each row is one `memdesc run ... --json` in its own process; the script prints and
writes (bench/acceptance.json, bench/acceptance.md) the violations, free-path
allocations, failures and mm-probe results of every row. Rows are grouped:

  foundation   linked, 1M synthetic:mixed ops, --check-every 1000, four presets
  designs      embedded / buddy-desc / radix-deque (both word counts), four presets
  policies     every radix-deque policy on the four presets (shorter runs)
  traces       every shared trace into every design, --check-every 10000
  mmops        --mm-probe on the movablecore / cma presets for linked, radix-deque, radix-deque:self

    python bench/acceptance.py [--groups foundation,designs,...] [--ops N] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PRESETS = ["x86_64:16G", "x86_64:16G,movablecore=25%", "x86_64:16G,cma=256M", "i386:4G"]
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


def rows(groups: set[str], ops: int, check: int) -> list[dict]:
    out = []
    if "foundation" in groups:
        for m in PRESETS:
            out.append({"group": "foundation", "machine": m, "design": "linked", "workload": "synthetic:mixed",
                        "ops": ops, "check": check, "kernel": "6.19"})
    if "designs" in groups:
        for d, extra in (("embedded", []), ("buddy-desc", []), ("radix-deque", [])):
            for m in PRESETS:
                out.append({"group": "designs", "machine": m, "design": d, "extra": extra,
                            "workload": "synthetic:mixed", "ops": ops, "check": check, "kernel": "6.19"})
    if "policies" in groups:
        for pol in ("self", "borrow", "reserve", "defer", "movable-nodes"):
            for words in ("2", "1"):
                for m in PRESETS:
                    out.append({"group": "policies", "machine": m, "design": "radix-deque",
                                "extra": ["--policy", pol, "--words", words], "workload": "synthetic:mixed",
                                "ops": max(ops // 5, 1000), "check": check, "kernel": "6.19"})
    if "traces" in groups and TRACES.exists():
        for t in sorted(TRACES.glob("*/trace.txt.xz")):
            for d, extra in (("linked", []), ("embedded", []), ("buddy-desc", []), ("radix-deque", []),
                             ("radix-deque", ["--words", "1"])):
                out.append({"group": "traces", "machine": f"zoneinfo:{t.parent / 'zoneinfo-start.txt'}",
                            "design": d, "extra": extra, "workload": str(t), "ops": 0, "check": 10000,
                            "kernel": "6.1"})
    if "mmops" in groups:
        for m in ("x86_64:16G,movablecore=25%", "x86_64:16G,cma=256M"):
            for d, extra in (("linked", []), ("radix-deque", []), ("radix-deque", ["--policy", "self"])):
                out.append({"group": "mmops", "machine": m, "design": d, "extra": extra + ["--mm-probe"],
                            "workload": "synthetic:mixed", "ops": max(ops // 4, 1000), "check": 0,
                            "kernel": "6.19"})
    return out


def run_row(i: int, r: dict, outdir: Path) -> dict:
    js = outdir / f"row{i:03d}.json"
    cmd = [sys.executable, "-m", "memdesc.cli", "run", "--machine", r["machine"], "--design", r["design"],
           "--workload", r["workload"], "--kernel", r["kernel"], "--json", str(js), "--no-progress",
           *r.get("extra", [])]
    if r["ops"]:
        cmd += ["--ops", str(r["ops"])]
    if r["check"]:
        cmd += ["--check-every", str(r["check"])]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    res = dict(r, seconds=time.perf_counter() - t0, rc=p.returncode)
    if p.returncode or not js.exists():
        res["error"] = (p.stderr or p.stdout)[-800:]
        return res
    s = json.loads(js.read_text())
    md = s["metadata"]
    res.update({
        "ops_done": s["ops"], "checks": s["checks_run"], "violations": sum(s["violations"].values()),
        "violation_kinds": {k: v for k, v in s["violations"].items() if v},
        "allocs_in_free_path": s["counters"]["allocs_in_free_path"], "alloc_failures": s["alloc_failures"],
        "failures_by_cause": s["alloc_failures_by_cause"], "metadata_pct": md["metadata_pct_of_ram"],
        "metadata_per_gib": md["metadata_bytes_per_gib"], "ops_per_s": s["ops_per_s"],
        "unmatched_frees": s.get("replay", {}).get("unmatched_frees"),
        "conservation_ok": s["violations"].get("conservation", 0) == 0,
    })
    if "mm_probe" in s:
        pr = s["mm_probe"]
        res["cma_ok"] = pr["cma_alloc_all"]["ok"] if pr["cma_alloc_all"]["areas"] else None
        res["offline"] = f"{pr['offline_all_movable']['offlined']}/{pr['offline_all_movable']['blocks']}"
        fails = pr["cma_alloc_all"]["failures"] + pr["offline_all_movable"]["failures"]
        res["first_blocker"] = fails[0] if fails else None
    js.unlink()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", default="foundation,designs,policies,traces,mmops")
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--check-every", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="bench/acceptance")
    ap.add_argument("--override", action="append", default=[], metavar="GROUP:DESIGN:MACHINE=CHECK",
                    help="a different --check-every for matching rows (fields may be *)")
    args = ap.parse_args()
    outdir = Path(args.out + ".d")
    outdir.mkdir(parents=True, exist_ok=True)
    todo = rows(set(args.groups.split(",")), args.ops, args.check_every)
    for ov in args.override:
        key, _, val = ov.rpartition("=")
        g, d, m = key.split(":", 2)
        for r in todo:
            if g in ("*", r["group"]) and d in ("*", r["design"]) and m in ("*", r["machine"]) and not r.get("extra"):
                r["check"] = int(val)
    results: list[dict] = []
    with ThreadPoolExecutor(args.jobs) as ex:
        for res in ex.map(lambda ir: run_row(ir[0], ir[1], outdir), enumerate(todo)):
            results.append(res)
            extra = " ".join(res.get("extra", []))
            status = res.get("error", "").strip().splitlines()[-1:] if res.get("error") else ""
            print(f"[{res['group']}] {res['design']} {extra} on {res['machine']} ({Path(res['workload']).name}): "
                  f"{res.get('ops_done', '?')} ops, {res.get('checks', '?')} checks, violations "
                  f"{res.get('violation_kinds', '?')}, free-path allocs {res.get('allocs_in_free_path', '?')}, "
                  f"failures {res.get('alloc_failures', '?')}, probe cma={res.get('cma_ok')} "
                  f"offline={res.get('offline')} blocker={res.get('first_blocker')} "
                  f"[{res['seconds']:.0f} s] {status}", flush=True)
            Path(args.out + ".json").write_text(json.dumps(results, indent=1, default=str))
    lines = ["| group | design | options | machine | workload | ops | checks | violations | free-path allocs | "
             "alloc failures | metadata % RAM | probe |", "|" + "---|" * 12]
    for r in results:
        probe = "" if "offline" not in r else f"cma {r.get('cma_ok')}, offline {r['offline']}" + (
            f", blocker {r['first_blocker'].get('kind')}" if r.get("first_blocker") else "")
        machine = Path(r["machine"]).parent.name if "/" in r["machine"] else r["machine"]
        workload = Path(r["workload"]).parent.name if "/" in r["workload"] else r["workload"]
        viol = r.get("violation_kinds", r.get("error", "")[:60])
        lines.append(f"| {r['group']} | {r['design']} | {' '.join(r.get('extra', []))} | {machine} | {workload} | "
                     f"{r.get('ops_done', 'ERR')} | {r.get('checks', '')} | {viol} | "
                     f"{r.get('allocs_in_free_path', '')} | {r.get('alloc_failures', '')} | "
                     f"{r.get('metadata_pct', 0):.3f} | {probe} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
