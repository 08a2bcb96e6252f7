"""Analysis layer: the standard scenarios of docs/findings.md and the loop that runs every
design on each of them (memdesc.report.html.write_findings writes the document)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from memdesc import __version__
from memdesc.analysis.compare import Variant, describe_run, make_jobs, run_jobs

#: (title, machine, workload, ops, mm_probe)
Scenario = tuple[str, str | None, str, int, bool]

#: the scenarios of docs/findings.md
FINDINGS_SCENARIOS: list[Scenario] = [
    ("Bundled real trace (Debian 6.1 under qemu) on its own machine", None, "default", 0, False),
    ("Synthetic mixed workload, x86_64 with 16 GiB", "x86_64:16G", "synthetic:mixed", 300_000, False),
    ("ZONE_MOVABLE: movablecore=25% (tree nodes and descriptors must stay out of it)",
     "x86_64:16G,movablecore=25%", "synthetic:mixed", 300_000, True),
    ("CMA: a 256 MiB CMA area (only movable data may sit in it)", "x86_64:16G,cma=256M", "synthetic:mixed",
     300_000, True),
    ("CMA-heavy workload: periodic contiguous allocations from a 512 MiB CMA area", "x86_64:2G,cma=512M",
     "synthetic:cma", 200_000, True),
    ("i386 with HIGHMEM (not permanently mapped: no metadata there)", "i386:2G", "synthetic:mixed", 200_000, False),
]
#: small machines and few ops (``memdesc findings --quick``, a smoke test)
QUICK_SCENARIOS: list[Scenario] = [
    ("Bundled real trace, first 20k ops", None, "default", 20_000, False),
    ("Synthetic mixed, x86_64:64M", "x86_64:64M", "synthetic:mixed", 5_000, False),
    ("movablecore", "x86_64:128M,movablecore=50%", "synthetic:mixed", 5_000, True),
    ("CMA", "x86_64:128M,cma=32M", "synthetic:cma", 5_000, True),
    ("i386 HIGHMEM", "i386:1G", "synthetic:mixed", 5_000, False),
]
FINDINGS_DESIGNS = ("linked,embedded,buddy-desc,radix-deque,radix-deque:self,radix-deque:borrow,"
                    "radix-deque:defer,radix-deque:movable-nodes,radix-deque:words=1")


def run_findings(variants: Sequence[Variant], scenarios: Sequence[Scenario], *, timeout: float,
                 n_jobs: int | None = None, on_scenario: Callable[[str], None] | None = None,
                 on_done: Callable[[dict[str, Any]], None] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run every variant on each scenario; yields (title, compare document) as each finishes."""
    for title, machine, workload, ops, probe in scenarios:
        jobs = make_jobs(variants, machine=machine, workload=workload, ops=ops, seed=1, mm_probe=probe,
                         timeout=timeout, sample_every=1000)
        t0 = time.perf_counter()
        if on_scenario:
            on_scenario(title)
        results = run_jobs(jobs, n_jobs, on_done=on_done)
        wall = time.perf_counter() - t0
        meta = describe_run(results, jobs)
        yield title, {"memdesc_version": __version__, "title": title, "run": meta, "wall_s": wall,
                      "results": results,
                      "command": "memdesc compare " + " ".join(
                          ([f"--machine '{machine}'"] if machine else []) + [f"--workload {workload}"]
                          + ([f"--ops {ops}"] if ops else []) + (["--mm-probe"] if probe else [])
                          + [f"--designs {','.join(v.label for v in variants)}"])}


def load_sections(report_dir: Path, scenarios: Sequence[Scenario]) -> list[tuple[str, dict[str, Any]]]:
    """(title, compare document) of every ``scenarioN/results.json`` a previous run wrote."""
    dirs = sorted(report_dir.glob("scenario*"), key=lambda p: int(p.name[8:] or 0))
    sections = []
    for i, d in enumerate(dirs):
        doc = json.loads((d / "results.json").read_text())
        sections.append((doc.get("title") or (scenarios[i][0] if i < len(scenarios) else d.name), doc))
    return sections


__all__ = ["FINDINGS_DESIGNS", "FINDINGS_SCENARIOS", "QUICK_SCENARIOS", "Scenario", "load_sections", "run_findings"]
