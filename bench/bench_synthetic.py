"""Generation speed of the synthetic workload profiles (events per CPU second, best of N runs).

Usage: python bench/bench_synthetic.py [--ops 1000000] [--pages 4194304] [--repeat 3]
[--profile NAME ...]. The stream is consumed with a zero-length deque, so the figure is
the generator's own cost; the default machine is 16 GiB of 4 KiB pages.
"""

from __future__ import annotations

import argparse
import collections
import time

from memdesc.workloads.events import Alloc
from memdesc.workloads.synthetic import PROFILES, synthetic_events


def bench(name: str, ops: int, pages: int, repeat: int) -> tuple[int, float]:
    """(events per stream, best seconds) for ``repeat`` runs with different seeds."""
    best = float("inf")
    for seed in range(repeat):
        t0 = time.process_time()
        collections.deque(synthetic_events(name, ops, seed, pages), maxlen=0)
        best = min(best, time.process_time() - t0)
    n = sum(1 for _ in synthetic_events(name, ops, 0, pages))
    return n, best


def baseline(ops: int, repeat: int) -> float:
    """Best seconds for a generator that only builds ``ops`` Alloc events: the floor
    set by CPython and the event dataclass on this machine."""

    def gen(n: int):
        for h in range(n):
            yield Alloc(h, 0, 0xCC0, "misc")

    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        collections.deque(gen(ops), maxlen=0)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--pages", type=int, default=4 << 20, help="present pages (default 16 GiB)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="append", choices=list(PROFILES))
    args = ap.parse_args()
    print(f"{'profile':16s} {'events':>10s} {'best s':>8s} {'Mevents/s':>10s}")
    dt = baseline(args.ops, args.repeat)
    print(f"{'(Alloc floor)':16s} {args.ops:10d} {dt:8.3f} {args.ops / dt / 1e6:10.2f}")
    for name in args.profile or PROFILES:
        n, dt = bench(name, args.ops, args.pages, args.repeat)
        print(f"{name:16s} {n:10d} {dt:8.3f} {n / dt / 1e6:10.2f}")


if __name__ == "__main__":
    main()
