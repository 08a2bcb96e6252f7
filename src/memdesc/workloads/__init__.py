"""Workload sources, all producing the event model of memdesc.workloads.events.

``open_workload(spec, ...)`` resolves what the CLI's ``--workload`` names:
``synthetic:NAME``, a ``.toml`` workload spec, a trace file (plain, .gz, .xz,
.zst; ftrace, trace-cmd report or perf script text), ``-`` for stdin, or
``default`` for the bundled real trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memdesc.workloads.replay import ReplayStats, trace_events
from memdesc.workloads.spec import load_workload_spec, spec_events
from memdesc.workloads.synthetic import synthetic_events

DEFAULT_TRACE_DIR = "default-trace"


def bundled_trace_dir() -> Path:
    """Directory of the bundled real trace (trace + zoneinfo/buddyinfo snapshots)."""
    return Path(str(resources.files("memdesc") / "data" / DEFAULT_TRACE_DIR))


def default_machine_spec() -> str:
    return f"zoneinfo:{bundled_trace_dir() / 'zoneinfo-start.txt'}"


@dataclass
class Workload:
    """An opened workload: its events and what produced them."""

    events: Iterator[Any]
    kind: str  # synthetic | spec | trace
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    stats: Any = None  # trace replay statistics, filled while streaming


def open_workload(spec: str, total_pages: int, ops: int, seed: int, kernel: str = "6.1",
                  config_cma: bool = False, lenient: bool = False) -> Workload:
    if spec in ("default", "", None):
        d = bundled_trace_dir()
        spec = str(next(iter(sorted(d.glob("trace.txt*")))))
    if spec.startswith("synthetic:"):
        name = spec.split(":", 1)[1]
        return Workload(synthetic_events(name, ops, seed, total_pages, {"kernel": kernel}), "synthetic", name,
                        {"ops": ops, "seed": seed})
    if spec.endswith(".toml"):
        ws = load_workload_spec(spec)
        return Workload(spec_events(ws, total_pages, ops_override=ops or None, seed_override=seed),
                        "spec", spec, {"seed": seed})
    stats = ReplayStats()
    ev = trace_events(spec, kernel=kernel, config_cma=config_cma, lenient=lenient, stats=stats)
    return Workload(ev, "trace", spec, {"kernel": kernel}, stats)
