"""The runner: drives an event stream into a PageAllocator.

Maps stable workload handles to the pfns the model chose (migration updates the
map through ``PageAllocator.on_migrate``), runs the invariant checker every N
operations, samples metrics over time, and collects everything a report needs.
Contract with workloads: a Free of a handle whose Alloc failed is ignored (and
counted); a Free of a handle never allocated is a workload error.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from memdesc import __version__
from memdesc.driver.mmops import MmOps
from memdesc.mm.debug_vm import CheckReport, check_allocator
from memdesc.mm.internal import BadCall, MemdescError
from memdesc.mm.mmzone import NR_PAGE_ORDERS, PAGE_SHIFT
from memdesc.mm.page_alloc import PageAllocator
from memdesc.mm.vmstat import fragmentation_summary
from memdesc.workloads.events import Alloc, Compact, ContigAlloc, ContigFree, Free, Mark, Offline, Online

GC_THRESHOLD0 = 50_000  # cyclic GC generation-0 threshold while Runner.run() replays


class RunError(MemdescError):
    """A workload event the model rejected, with where it came from."""


@dataclass
class RunResult:
    ops: int = 0
    allocs: int = 0
    alloc_failures: int = 0
    frees: int = 0
    ignored_frees: int = 0
    pfn_exact_hits: int = 0
    pfn_exact_divergences: int = 0
    bad_events: Counter = field(default_factory=Counter)
    violations: Counter = field(default_factory=Counter)
    violation_messages: list[str] = field(default_factory=list)
    checks_run: int = 0
    elapsed: float = 0.0
    marks: list[tuple[int, str]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    alloc_attempts_order: list[int] = field(default_factory=lambda: [0] * NR_PAGE_ORDERS)
    alloc_success_order: list[int] = field(default_factory=lambda: [0] * NR_PAGE_ORDERS)
    unsupported_events: Counter = field(default_factory=Counter)
    peak_live_handles: int = 0


class Runner:
    """Replays events into ``alloc``. ``check_every`` 0 disables periodic checks."""

    def __init__(self, alloc: PageAllocator, check_every: int = 0, sample_every: int = 0,
                 pfn_exact: bool = False, lenient: bool = False,
                 on_mark: Callable[[Runner, Mark], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.alloc = alloc
        self.check_every = check_every
        self.sample_every = sample_every
        self.pfn_exact = pfn_exact
        self.lenient = lenient
        self.on_mark = on_mark
        self.progress = progress
        self.handles: dict[int, int] = {}  # handle -> pfn << 4 | order
        self.rev: dict[int, int] = {}  # pfn -> handle
        self.result = RunResult()
        self.mmops: Any = None
        alloc.on_migrate = self._on_migrate

    def _on_migrate(self, old: int, new: int, order: int) -> None:
        h = self.rev.pop(old, None)
        if h is not None:
            self.handles[h] = new << 4 | order
            self.rev[new] = h

    def mm_ops(self) -> MmOps:
        """The mm-operations driver of this run (created on first use)."""
        if self.mmops is None:
            self.mmops = MmOps(self.alloc)
        return self.mmops

    def _bad(self, ev: Any, kind: str, msg: str) -> None:
        self.result.bad_events[kind] += 1
        if not self.lenient:
            where = f"{ev.src}: " if ev.src else ""
            raise RunError(f"{where}{msg}")

    def check(self) -> CheckReport:
        rep = check_allocator(self.alloc, raise_on_error=False)
        res = self.result
        res.checks_run += 1
        for k, v in rep.counts.items():
            res.violations[k] += v
        if rep.messages and len(res.violation_messages) < 50:
            res.violation_messages.extend(f"op {res.ops}: {m}" for m in rep.messages[:10])
        return rep

    def sample(self) -> None:
        a = self.alloc
        per_order = [0] * NR_PAGE_ORDERS
        free = 0
        for z in a.zones:
            free += z.free_pages
            for o in range(NR_PAGE_ORDERS):
                per_order[o] += z.nr_free[o]
        md = a.design.metadata()
        self.result.samples.append({
            "ops": self.result.ops, "free_pages": free, "free_blocks_per_order": per_order,
            "live_handles": len(self.handles), "alloc_failures": self.result.alloc_failures,
            "dynamic_metadata_bytes": md.get("dynamic_bytes", 0),
        })

    def _next_stop(self, ops: int, max_ops: int | None) -> int:
        """The next op count at which the loop has something to do besides replaying:
        a check, a sample, a progress report or the end (one compare per op)."""
        nxt = [max_ops if max_ops is not None else 1 << 62]
        for every in (self.check_every, self.sample_every, 0x4000 if self.progress is not None else 0):
            if every:
                nxt.append((ops // every + 1) * every)
        return min(nxt)

    def _at_stop(self, ops: int) -> None:
        res = self.result
        if self.check_every and ops % self.check_every == 0:
            self.check()
        if self.sample_every and ops % self.sample_every == 0:
            if len(self.handles) > res.peak_live_handles:
                res.peak_live_handles = len(self.handles)
            self.sample()
        if self.progress is not None and ops & 0x3FFF == 0:
            self.progress(ops)

    def run(self, events: Iterable[Any], max_ops: int | None = None) -> RunResult:
        """Replay ``events`` (until ``max_ops`` ops in total have run).

        The loop keeps its counters in locals and writes them back to ``result``
        before anything that may read them (checks, samples, progress, other events)
        and when it ends, also by an exception.  The cyclic GC's generation-0 threshold
        is raised to ``GC_THRESHOLD0`` while it runs and restored after."""
        a = self.alloc
        res = self.result
        handles = self.handles
        rev = self.rev
        alloc_pages = a.alloc_pages
        free_pages = a.free_pages
        pfn_exact = self.pfn_exact
        attempts = res.alloc_attempts_order
        success = res.alloc_success_order
        ops = res.ops
        allocs = res.allocs
        frees = res.frees
        ignored = res.ignored_frees
        if max_ops is not None and ops >= max_ops:
            return res
        stop = self._next_stop(ops, max_ops)
        # The replay makes millions of short-lived acyclic objects (events, regex
        # match tuples); at the default threshold the cyclic GC runs every 700 of
        # them and walks the young ones each time, ~5 % of a trace replay.
        gc_threshold = gc.get_threshold()
        gc.set_threshold(max(gc_threshold[0], GC_THRESHOLD0), *gc_threshold[1:])
        t0 = time.perf_counter()
        try:
            for ev in events:
                t = type(ev)
                if t is Alloc:
                    h = ev.handle
                    if h in handles:
                        self._bad(ev, "duplicate_handle", f"alloc of handle {h} which is still live")
                        continue
                    order = ev.order
                    try:
                        if pfn_exact and ev.pfn >= 0:
                            pfn = a.alloc_pages_at(ev.gfp, order, ev.pfn, ev.kind)
                            if pfn >= 0:
                                res.pfn_exact_hits += 1
                            else:
                                res.pfn_exact_divergences += 1
                                pfn = alloc_pages(ev.gfp, order, ev.nid, ev.cpu, ev.kind)
                        else:
                            pfn = alloc_pages(ev.gfp, order, ev.nid, ev.cpu, ev.kind)
                    except BadCall as e:
                        self._bad(ev, "bad_alloc", str(e))
                        continue
                    attempts[order] += 1
                    allocs += 1
                    if pfn >= 0:
                        handles[h] = pfn << 4 | order
                        rev[pfn] = h
                        success[order] += 1
                    else:
                        res.alloc_failures += 1
                elif t is Free:
                    h = ev.handle
                    v = handles.pop(h, None)
                    if v is None:
                        ignored += 1
                    else:
                        pfn = v >> 4
                        order = v & 15
                        if ev.order >= 0 and ev.order != order:
                            handles[h] = v
                            self._bad(ev, "free_order_mismatch",
                                      f"free of handle {h} with order {ev.order}, allocated with order {order}")
                            continue
                        del rev[pfn]
                        try:
                            free_pages(pfn, order, ev.cpu)
                        except BadCall as e:
                            handles[h] = v
                            rev[pfn] = h
                            self._bad(ev, "bad_free", str(e))
                            continue
                        frees += 1
                else:
                    res.ops, res.allocs, res.frees, res.ignored_frees = ops, allocs, frees, ignored
                    self._other(ev)
                    continue
                ops += 1
                if ops >= stop:
                    res.ops, res.allocs, res.frees, res.ignored_frees = ops, allocs, frees, ignored
                    self._at_stop(ops)
                    if max_ops is not None and ops >= max_ops:
                        break
                    stop = self._next_stop(ops, max_ops)
        finally:
            gc.set_threshold(*gc_threshold)
            res.ops, res.allocs, res.frees, res.ignored_frees = ops, allocs, frees, ignored
            res.elapsed += time.perf_counter() - t0
            if len(handles) > res.peak_live_handles:
                res.peak_live_handles = len(handles)
        return res

    def _other(self, ev: Any) -> None:
        t = type(ev)
        if t is Mark:
            self.result.marks.append((self.result.ops, ev.text))
            if self.on_mark is not None:
                self.on_mark(self, ev)
            return
        handler = _MMOPS_HANDLERS.get(t)
        if handler is None:
            self.result.unsupported_events[t.__name__] += 1
            return
        handler(self.mm_ops(), ev)


#: the MmOps handler of each mm-operation event type
_MMOPS_HANDLERS: dict[type, Callable[[MmOps, Any], Any]] = {
    ContigAlloc: MmOps.handle_contig_alloc, ContigFree: MmOps.handle_contig_free, Offline: MmOps.handle_offline,
    Online: MmOps.handle_online, Compact: MmOps.handle_compact,
}


def run_summary(runner: Runner, config: dict[str, Any]) -> dict[str, Any]:
    """Everything about a run as one JSON-able dict (config, metrics, violations)."""
    a = runner.alloc
    res = runner.result
    c = a.counters
    zones = []
    for z in a.zones:
        if not z.present:
            continue
        zones.append({
            "node": z.nid, "zone": z.name, "start_pfn": z.start_pfn, "spanned": z.spanned, "present": z.present,
            "managed": z.managed, "reserved": z.reserved, "free_pages": z.free_pages, "nr_free_cma": z.nr_free_cma,
            "pcp_pages": sum(p.count for p in z.pcp), "nr_free": list(z.nr_free),
            "watermark": {"min": z.watermark[0], "low": z.watermark[1], "high": z.watermark[2]},
            "nr_reserved_highatomic": z.nr_reserved_highatomic,
        })
    totals = a.totals()
    conservation = {f"{z.nid}:{z.name}": totals[z.zid] for z in a.zones if z.present}
    high_order = {}
    for o in range(NR_PAGE_ORDERS):
        att = res.alloc_attempts_order[o]
        if att:
            high_order[o] = {"attempts": att, "succeeded": res.alloc_success_order[o],
                             "success_rate": res.alloc_success_order[o] / att}
    violations = {k: 0 for k in ("state", "free_block", "buddy_marker", "nr_free", "counters", "unmerged",
                                 "pcp", "pageblock", "conservation", "alloc_in_free_path")}
    violations.update(res.violations)
    out = {
        "memdesc_version": __version__,
        "config": config,
        "machine": {"spec": a.machine.spec, "arch": a.machine.arch, "present_pages": a.machine.present_pages,
                    "present_bytes": a.machine.present_pages << PAGE_SHIFT, "nodes": a.machine.nr_nodes,
                    "cpus": a.machine.nr_cpus, "min_free_kbytes": a.min_free_kbytes},
        "ops": res.ops, "allocs": res.allocs, "frees": res.frees, "alloc_failures": res.alloc_failures,
        "alloc_failures_by_cause": dict(c.alloc_fail),
        "ignored_frees": res.ignored_frees, "peak_live_handles": res.peak_live_handles,
        "live_handles": len(runner.handles),
        "high_order": high_order,
        "pfn_exact": {"hits": res.pfn_exact_hits, "divergences": res.pfn_exact_divergences},
        "fallback": {"extfrag_events": c.extfrag, "change_ownership": c.extfrag_change_ownership,
                     "pageblock_claims": c.pageblock_claims},
        "counters": {"pgalloc": c.pgalloc, "pgfree": c.pgfree, "zone_locked": c.zone_locked,
                     "pcp_drain": c.pcp_drain, "slowpath": c.slowpath, "drain_all": c.drain_all,
                     "highatomic_reserved": c.highatomic_reserved, "max_recursion_depth": c.max_recursion,
                     "allocs_in_free_path": a.allocs_in_free_path},
        "metadata": a.metadata_summary(),
        "zones": zones,
        "conservation": conservation,
        "violations": violations,
        "violation_messages": res.violation_messages,
        "checks_run": res.checks_run,
        "bad_events": dict(res.bad_events),
        "unsupported_events": dict(res.unsupported_events),
        "marks": res.marks,
        "elapsed_s": res.elapsed,
        "ops_per_s": res.ops / res.elapsed if res.elapsed else 0.0,
        "samples": res.samples,
    }
    if runner.mmops is not None:
        out["mm_ops"] = runner.mmops.metrics()
    out["fragmentation"] = fragmentation_summary(a)
    return out
