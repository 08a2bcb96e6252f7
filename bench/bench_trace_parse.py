"""Trace parsing and replay-conversion speed (lines/s, records/s, events/s, best of N).

Usage: python bench/bench_trace_parse.py [FILE] [--lines 1000000] [--repeat 3] [--runner] [--json OUT]

FILE defaults to the first ``--lines`` lines of the shared x86_64-2g-plain-s1 trace,
decompressed once into a temporary file so that the figure is the parser's own cost
(xz decompression alone costs about as much again); pass a compressed FILE to include
decompression.  Streams are consumed with a zero-length deque.  ``--runner`` also times
the full pipeline: trace_events -> Runner -> PageAllocator (``linked`` design, machine
from the default trace's start zoneinfo, kernel 6.1).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import lzma
import tempfile
import time
from pathlib import Path

from memdesc.workloads.replay import ReplayStats, trace_events
from memdesc.workloads.trace import ParseStats, read_trace

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
DEFAULT_TRACE = TRACES / "x86_64-2g-plain-s1" / "trace.txt.xz"


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def _run_full(path: Path) -> None:
    from memdesc.machine import parse_machine
    from memdesc.page_alloc import PageAllocator
    from memdesc.runner import Runner

    zi = Path(__file__).resolve().parents[1] / "src" / "memdesc" / "data" / "default-trace" / "zoneinfo-start.txt"
    a = PageAllocator(parse_machine(f"zoneinfo:{zi}"), kernel="6.1", design="linked")
    Runner(a).run(trace_events(path, kernel="6.1"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="trace file (default: head of the shared plain trace)")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines taken from the default trace")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runner", action="store_true", help="also time trace_events -> Runner -> linked")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.file:
            path = Path(args.file)
        else:
            path = Path(tmp) / "head.txt"
            with lzma.open(DEFAULT_TRACE, "rt") as f, open(path, "w") as g:
                g.writelines(itertools.islice(f, args.lines))
        ps = ParseStats()
        collections.deque(read_trace(path, stats=ps), maxlen=0)
        rs = ReplayStats()
        n_events = sum(1 for _ in trace_events(path, stats=rs))
        t_parse = _best(lambda: collections.deque(read_trace(path), maxlen=0), args.repeat)
        t_replay = _best(lambda: collections.deque(trace_events(path), maxlen=0), args.repeat)
        t_full = _best(lambda: _run_full(path), args.repeat) if args.runner else 0.0

    n_recs = sum(ps.records.values()) + sum(ps.other.values())
    result = {
        "file": str(args.file or f"{DEFAULT_TRACE} (first {args.lines} lines, decompressed)"),
        "format": ps.format,
        "compression": ps.compression,
        "lines": ps.lines,
        "records": n_recs,
        "replay_events": n_events,
        "parse_s": round(t_parse, 4),
        "parse_lines_per_s": round(ps.lines / t_parse),
        "parse_records_per_s": round(n_recs / t_parse),
        "replay_s": round(t_replay, 4),
        "replay_lines_per_s": round(ps.lines / t_replay),
        "replay_events_per_s": round(n_events / t_replay),
    }
    if t_full:
        result["full_s"] = round(t_full, 4)
        result["full_lines_per_s"] = round(ps.lines / t_full)
    print(f"{result['file']}: {ps.lines:,} lines, format {ps.format}, compression {ps.compression}")
    print(f"read_trace   {t_parse:8.3f} s  {result['parse_lines_per_s']:>12,} lines/s"
          f"  {result['parse_records_per_s']:>12,} records/s")
    print(f"trace_events {t_replay:8.3f} s  {result['replay_lines_per_s']:>12,} lines/s"
          f"  {result['replay_events_per_s']:>12,} events/s")
    if t_full:
        print(f"full (linked) {t_full:7.3f} s  {result['full_lines_per_s']:>12,} lines/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
