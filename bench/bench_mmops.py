#!/usr/bin/env python3
"""Cost of getting ZONE_MOVABLE / CMA memory back: time and pages migrated.

After a seeded synthetic:mixed run, cma_alloc of every whole CMA area and offline of
every ZONE_MOVABLE memory block (each then released / onlined again), per design.

    python bench/bench_mmops.py [--ops 300000] [--designs linked,radix-deque,radix-deque:policy=self]
"""

from __future__ import annotations

import argparse
import json
import time

from memdesc.driver.boot import new_allocator
from memdesc.driver.mmops import MmOps
from memdesc.driver.runner import Runner
from memdesc.machine import parse_machine
from memdesc.workloads.synthetic import synthetic_events


def one(machine: str, design: str, ops: int, seed: int) -> dict:
    name, _, opt = design.partition(":")
    opts = dict(kv.split("=", 1) for kv in opt.split(",") if kv)
    a = new_allocator(parse_machine(machine), name, kernel="6.19", design_options=opts)
    r = Runner(a)
    r.run(synthetic_events("mixed", ops, seed, a.machine.present_pages))
    mm = MmOps(a)
    t0 = time.perf_counter()
    cma = mm.cma_alloc_all()
    t1 = time.perf_counter()
    off = mm.offline_all_movable()
    t2 = time.perf_counter()
    rep = a.check(raise_on_error=False)  # `self` is expected to report its rule violations
    return {"violations": dict(rep.counts), "machine": machine, "design": design, "ops": ops,
            "cma_areas": cma["areas"], "cma_ok": cma["ok"], "cma_migrated": cma["migrated"], "cma_s": t1 - t0,
            "cma_blocker": (cma["failures"] or [{}])[0].get("kind"),
            "offline_blocks": off["blocks"], "offlined": off["offlined"], "offline_migrated": off["migrated"],
            "offline_s": t2 - t1, "offline_blocker": (off["failures"] or [{}])[0].get("kind")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--designs", default="linked,radix-deque,radix-deque:policy=self")
    ap.add_argument("--machines", default="x86_64:16G,movablecore=25%;x86_64:16G,cma=256M")
    ap.add_argument("--json", default="bench/results-mmops.json")
    args = ap.parse_args()
    out = []
    for m in args.machines.split(";"):
        for d in args.designs.split(","):
            r = one(m, d, args.ops, args.seed)
            out.append(r)
            if r["cma_areas"]:
                print(f"{m:28s} {d:26s} cma_alloc(all): {'ok' if r['cma_ok'] else 'FAIL ' + str(r['cma_blocker']):10s}"
                      f" {r['cma_migrated']:>9,} pages migrated in {r['cma_s']:6.2f} s", flush=True)
            if r["offline_blocks"]:
                print(f"{m:28s} {d:26s} offline: {r['offlined']}/{r['offline_blocks']} blocks "
                      f"{'' if not r['offline_blocker'] else '(' + r['offline_blocker'] + ') '}"
                      f"{r['offline_migrated']:>9,} pages migrated in {r['offline_s']:6.2f} s "
                      f"{r['violations'] or ''}", flush=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
