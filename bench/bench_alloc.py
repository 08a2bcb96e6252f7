#!/usr/bin/env python3
"""Allocator throughput and machine set-up benchmark (issue: foundation targets).

Prints alloc+free operations per second for a fixed seeded mix on a 16 GiB machine
(with and without per-CPU lists, for every design given), machine set-up time for
64 GiB and 1 TiB machines, and peak RSS; writes everything to a JSON file.

    python bench/bench_alloc.py [--ops 1000000] [--designs linked,...] [--json bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import time

from memdesc import __version__
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G

MIX = [  # (weight, gfp, order) - a kernel-like distribution
    (50, G.GFP_HIGHUSER_MOVABLE, 0), (14, G.GFP_KERNEL, 0), (8, G.GFP_KERNEL | G.__GFP_RECLAIMABLE, 0),
    (6, G.GFP_KERNEL_ACCOUNT, 0), (4, G.GFP_ATOMIC, 0), (5, G.GFP_KERNEL, 1), (4, G.GFP_KERNEL, 2),
    (3, G.GFP_KERNEL, 3), (2, G.GFP_HIGHUSER_MOVABLE, 2), (1, G.GFP_TRANSHUGE_LIGHT, 9),
    (1, G.GFP_KERNEL | getattr(G, "__GFP_COMP"), 4), (1, G.GFP_DMA32 | G.GFP_KERNEL, 0),
]


def make_ops(n: int, seed: int, live_target: int) -> list[tuple[int, int, int]]:
    """(is_alloc, gfp, order) / (0, slot, 0): ~half allocs, frees of random live slots."""
    rng = random.Random(seed)
    table = [(g, o) for w, g, o in MIX for _ in range(w)]
    ops = []
    live = 0
    for _ in range(n):
        if live and (live > live_target or rng.random() < 0.5):
            ops.append((0, rng.randrange(1 << 30), 0))
            live -= 1
        else:
            g, o = table[rng.randrange(len(table))]
            ops.append((1, g, o))
            live += 1
    return ops


def run_mix(design: str, pcp: bool, nops: int, seed: int, spec: str, kernel: str) -> dict:
    a = new_allocator(parse_machine(spec), design, kernel=kernel, pcp=pcp)
    ops = make_ops(nops, seed, live_target=200_000)
    live: list[tuple[int, int]] = []
    alloc_pages, free_pages = a.alloc_pages, a.free_pages
    fails = 0
    t0 = time.perf_counter()
    for is_alloc, x, order in ops:
        if is_alloc:
            pfn = alloc_pages(x, order)
            if pfn >= 0:
                live.append((pfn, order))
            else:
                fails += 1
        elif live:
            i = x % len(live)
            pfn, o = live[i]
            live[i] = live[-1]
            live.pop()
            free_pages(pfn, o)
    dt = time.perf_counter() - t0
    return {"design": design, "pcp": pcp, "kernel": kernel, "machine": spec, "ops": nops,
            "seconds": dt, "ops_per_s": nops / dt, "alloc_failures": fails}


def setup_time(spec: str, design: str) -> dict:
    t0 = time.perf_counter()
    a = new_allocator(parse_machine(spec), design)
    dt = time.perf_counter() - t0
    return {"machine": spec, "design": design, "setup_s": dt,
            "memmap_stored_bytes": a.design.metadata().get("memmap_bytes_stored", 0)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--designs", default="linked")
    ap.add_argument("--kernel", default="6.19")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-1t", action="store_true", help="skip the 1 TiB set-up (needs ~12 GiB RAM)")
    ap.add_argument("--json", default="bench/results-alloc.json")
    args = ap.parse_args()
    out = {"memdesc_version": __version__, "python": sys.version.split()[0], "machine": platform.machine(),
           "cpu": _cpu_name(), "results": [], "setup": []}
    for design in args.designs.split(","):
        for pcp in (True, False):
            r = run_mix(design, pcp, args.ops, args.seed, "x86_64:16G", args.kernel)
            out["results"].append(r)
            print(f"{design:12s} pcp={'on ' if pcp else 'off'} {r['ops_per_s']:>10,.0f} ops/s "
                  f"({r['ops']:,} ops in {r['seconds']:.2f} s, {r['alloc_failures']} failures)", flush=True)
    for spec in ["x86_64:64G"] + ([] if args.skip_1t else ["x86_64:1T"]):
        for design in args.designs.split(","):
            # each set-up in its own process so peak RSS is per machine
            code = (f"import json,resource,sys; sys.path.insert(0,'bench'); from bench_alloc import setup_time;"
                    f"r=setup_time({spec!r},{design!r}); r['peak_rss_mib']=resource.getrusage("
                    f"resource.RUSAGE_SELF).ru_maxrss/1024; print(json.dumps(r))")
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if res.returncode:
                print(f"{spec} {design}: set-up failed: {res.stderr.strip()[-300:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            out["setup"].append(r)
            print(f"set-up {spec:12s} {design:12s} {r['setup_s']:6.2f} s  peak RSS {r['peak_rss_mib']:,.0f} MiB",
                  flush=True)
    out["peak_rss_mib_this_process"] = peak_rss_mib()
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.json}")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
