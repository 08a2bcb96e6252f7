"""Trace parsing and replay speed (lines/s, records/s, events/s, best of N) and peak RSS.

Usage: python bench/bench_trace_parse.py [FILE] [--lines 1000000] [--repeat 3]
       [--runner] [--designs linked,embedded,...] [--rss 300000,1200000,4200000] [--json OUT]

FILE defaults to the first ``--lines`` lines of the shared x86_64-2g-plain-s1 trace,
decompressed once into a temporary file so that the figure is the parser's own cost
(xz decompression alone costs about as much again); pass a compressed FILE to include
decompression.  Streams are consumed with a zero-length deque.

``--runner`` also times the full pipeline, parse + replay on one core: trace_events ->
Runner -> PageAllocator (machine from the bundled trace's start zoneinfo, kernel 6.1),
for each design of ``--designs`` (default linked); the machine's set-up (boot) is timed
and printed separately.

``--rss N,M,...`` runs the full pipeline (first design) in a fresh process on the first
N, M, ... lines of the shared plain trace and prints each run's peak RSS: the reader
streams 1 MiB blocks, so memory follows the live set, not the trace length.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import lzma
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memdesc.workloads.replay import ReplayStats, trace_events
from memdesc.workloads.trace import ParseStats, read_trace

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
DEFAULT_TRACE = TRACES / "x86_64-2g-plain-s1" / "trace.txt.xz"
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "memdesc" / "data" / "default-trace"
START_ZONEINFO = BUNDLED / "zoneinfo-start.txt"


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def _run_full(path: Path, design: str) -> tuple[float, float, int]:
    """Set up the machine for ``design``, then parse + replay ``path`` into it:
    (set-up seconds, parse + replay seconds, events replayed)."""
    from memdesc.driver.boot import new_allocator
    from memdesc.driver.runner import Runner
    from memdesc.machine import parse_machine

    t0 = time.perf_counter()
    a = new_allocator(parse_machine(f"zoneinfo:{START_ZONEINFO}"), design, kernel="6.1")
    t1 = time.perf_counter()
    res = Runner(a).run(trace_events(path, kernel="6.1"))
    return t1 - t0, time.perf_counter() - t1, res.ops


def _best_full(path: Path, design: str, repeat: int) -> tuple[float, float]:
    """Best set-up and best parse + replay seconds of ``repeat`` runs."""
    runs = [_run_full(path, design) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _head(src: Path, dst: Path, lines: int) -> Path:
    with lzma.open(src, "rt") as f, open(dst, "w") as g:
        g.writelines(itertools.islice(f, lines))
    return dst


def _rss_child(path: str, design: str) -> None:
    setup, dt, ops = _run_full(Path(path), design)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ops": ops, "seconds": round(dt, 3), "peak_rss_mib": round(rss, 1)}))


def _rss_runs(sizes: list[int], design: str, tmp: Path) -> list[dict[str, object]]:
    out = []
    for n in sizes:
        path = _head(DEFAULT_TRACE, tmp / f"rss-{n}.txt", n)
        lines = sum(1 for _ in open(path))
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
               f"import bench_trace_parse as b; b._rss_child({str(path)!r}, {design!r})"
        r = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                      text=True).stdout)
        r["lines"] = lines
        out.append(r)
        path.unlink()
        print(f"rss {design:12s} {lines:>10,} lines  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mib']:7.1f} MiB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="trace file (default: head of the shared plain trace)")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines taken from the default trace")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runner", action="store_true", help="also time parse + replay into each design")
    ap.add_argument("--designs", default="linked", help="comma-separated designs for --runner / --rss")
    ap.add_argument("--rss", default="", help="comma-separated line counts: peak RSS of full runs")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    designs = [d for d in args.designs.split(",") if d]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else _head(DEFAULT_TRACE, Path(tmp) / "head.txt", args.lines)
        ps = ParseStats()
        collections.deque(read_trace(path, stats=ps), maxlen=0)
        rs = ReplayStats()
        n_events = sum(1 for _ in trace_events(path, stats=rs))
        t_parse = _best(lambda: collections.deque(read_trace(path), maxlen=0), args.repeat)
        t_replay = _best(lambda: collections.deque(trace_events(path), maxlen=0), args.repeat)
        full = {d: _best_full(path, d, args.repeat) for d in designs} if args.runner else {}
        rss = _rss_runs([int(x) for x in args.rss.split(",") if x], designs[0], Path(tmp)) if args.rss else []

    n_recs = sum(ps.records.values()) + sum(ps.other.values())
    result: dict[str, object] = {
        "file": str(args.file or f"{DEFAULT_TRACE} (first {args.lines} lines, decompressed)"),
        "python": sys.version.split()[0],
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
        "full": {d: {"setup_s": round(su, 4), "s": round(t, 4), "lines_per_s": round(ps.lines / t),
                     "events_per_s": round(n_events / t)} for d, (su, t) in full.items()},
        "rss": rss,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(f"{result['file']}: {ps.lines:,} lines, format {ps.format}, compression {ps.compression}")
    print(f"read_trace          {t_parse:8.3f} s  {result['parse_lines_per_s']:>10,} lines/s"
          f"  {result['parse_records_per_s']:>10,} records/s")
    print(f"trace_events        {t_replay:8.3f} s  {result['replay_lines_per_s']:>10,} lines/s"
          f"  {result['replay_events_per_s']:>10,} events/s")
    for d, r in result["full"].items():  # type: ignore[union-attr]
        print(f"full {d:14s} {r['s']:8.3f} s  {r['lines_per_s']:>10,} lines/s  {r['events_per_s']:>10,} events/s"
              f"  (+ set-up {r['setup_s']:.3f} s)")
    print(f"peak RSS (this process) {result['peak_rss_mib']} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
