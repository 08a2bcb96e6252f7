"""memdesc validate: replay a real kernel trace and hold the model's state against the
kernel's own /proc snapshots (fidelity check; docs/validation.md).

A trace directory (the layout of ``/work/shared/traces/*``, written by
``tools/record-trace.sh``) holds ``trace.txt.xz`` and ``zoneinfo``/``buddyinfo``/
``pagetypeinfo`` ``-start.txt`` / ``-end.txt``.  :func:`validate` builds the machine
from ``zoneinfo-start.txt``, replays the trace, and at two snapshot points compares the
model with the kernel, per zone:

* **start**: the ``CAPTURE: snapshot-start end`` marker, against ``*-start.txt``;
* **end**: the ``CAPTURE: snapshot-end`` marker (or the end of the trace), against
  ``*-end.txt``.

Metrics (pure functions below, unit-tested): free-page accounting with every known
difference named (:func:`free_page_accounting`), per-order and per-(migratetype, order)
free-block L1 distances normalised by free pages (:func:`order_l1`), pageblock counts per
migratetype (:func:`pageblock_diff`), migratetype fallback counts (:func:`fallback_ratio`).

The start state (``start=``):

* ``"calibrate"`` (default): boot with every managed page free (memblock_free_all),
  replay to the start snapshot treating frees of never-allocated pfns as no-ops (the
  deferred-init ``pgdatinit0`` frees land on pages the model already has free), then take
  *placeholder* blocks off the model's free lists until its free blocks per zone,
  migratetype and order match ``pagetypeinfo-start``: they stand for the memory the kernel
  allocated before tracing began (early boot, the ring buffer grown while tracing was
  stopped) and are released, page for page in the same zone, when the trace later frees a
  pfn it never saw allocated.  Compaction's silent free-page isolation is modelled too:
  each ``mm_migrate_pages reason=compaction`` takes ``nr_succeeded`` order-0 migration
  targets in the zone being compacted, downwards from the zone end like the free scanner;
  they are released when the trace frees a compaction target: a double free (or an
  unmatched free inside a range ``mm_compaction_isolate_freepages`` took from, outside a
  compaction run) by the page's owner.  A double free by a ``kworker`` outside those
  ranges is a page of the other silent path, ``__alloc_pages_bulk()`` (vmalloc: vfree runs
  from a workqueue), and changes nothing.
* ``"boot"``: the replay's default, no placeholders: the model keeps the pre-trace memory
  free; the difference at the start snapshot is carried forward as a calibrated term.

With ``x86_low=True`` (the default) the machine's DMA zone gets the x86 low-memory
layout the traces show (x86_low_memory_layout()); the two boot-state corrections
validation found (pageblocks whose first pfn memmap_init never visits stay UNMOVABLE;
x86 memory below 1 MiB is reserved) are in the core (memdesc.mm.mm_init).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memdesc.driver.boot import new_allocator
from memdesc.driver.runner import Runner
from memdesc.machine import machine_from_zoneinfo
from memdesc.mm import gfp as G
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_PAGE_ORDERS,
    list_id,
)
from memdesc.mm.vmstat import (
    FREE_LIST_CAP,
    kernel_migratetypes,
    pageblock_counts,
    parse_buddyinfo,
    parse_pagetypeinfo,
    parse_zoneinfo,
)
from memdesc.workloads.events import Alloc, Free, Mark
from memdesc.workloads.replay import ReplayStats, trace_events
from memdesc.workloads.trace import TraceRecord

__all__ = [
    "TOLERANCES",
    "fallback_ratio",
    "free_page_accounting",
    "order_l1",
    "pageblock_diff",
    "validate",
    "verdicts",
]

# Tolerances (docs/validation.md explains each one)
TOLERANCES: dict[str, float] = {
    "unexplained_free_pct": 0.5,  # |unexplained free pages| / managed pages, percent
    "order_l1": 0.20,  # per-order free pages, L1 / kernel free pages
    "mt_order_l1": 0.30,  # per (migratetype, order), L1 / kernel free pages (reported, looser)
    "pageblock_l1": 0.10,  # pageblocks of a different type / pageblocks
    "fallback_factor": 2.0,  # model / trace fallback (extfrag) events, either way
    "min_pageblocks": 64,  # shape verdicts only for zones of >= 64 pageblocks (128 MiB)
}

SNAP_START = "snapshot-start end"
SNAP_END = "snapshot-end"
SNAP_START_BEGIN = "snapshot-start begin"

_MIGRATE_RE = re.compile(r"nr_succeeded=(\d+).*reason=(\w+)")
_ZSTART_RE = re.compile(r"zone_start=(0x[0-9a-f]+)")


# ------------------------------------------------------------------------------------
# metrics (pure)
# ------------------------------------------------------------------------------------
def pages_of(counts: Sequence[int]) -> int:
    """Free pages held by per-order block counts."""
    return sum(c << o for o, c in enumerate(counts))


def order_l1(model: Sequence[int], kernel: Sequence[int], norm: int | None = None) -> float:
    """L1 distance of two per-order free-block histograms, in pages (a block of order o
    weighs 2^o), divided by ``norm`` (default: the kernel's free pages)."""
    n = max(len(model), len(kernel))
    m = list(model) + [0] * (n - len(model))
    k = list(kernel) + [0] * (n - len(kernel))
    d = sum(abs(a - b) << o for o, (a, b) in enumerate(zip(m, k, strict=True)))
    den = pages_of(k) if norm is None else norm
    if den <= 0:
        return 0.0 if d == 0 else math.inf
    return d / den


def mt_order_l1(
    model: Mapping[str, Sequence[int]], kernel: Mapping[str, Sequence[int]], norm: int | None = None
) -> float:
    """L1 over (migratetype, order) free-block counts, in pages / kernel free pages."""
    d = 0
    tot = 0
    for mt in set(model) | set(kernel):
        m = model.get(mt, [])
        k = kernel.get(mt, [])
        n = max(len(m), len(k))
        m = list(m) + [0] * (n - len(m))
        k = list(k) + [0] * (n - len(k))
        d += sum(abs(a - b) << o for o, (a, b) in enumerate(zip(m, k, strict=True)))
        tot += pages_of(k)
    den = tot if norm is None else norm
    if den <= 0:
        return 0.0 if d == 0 else math.inf
    return d / den


def pageblock_diff(model: Mapping[str, int], kernel: Mapping[str, int]) -> dict[str, Any]:
    """Pageblock counts per migratetype: per-type difference and relative error, and
    ``l1`` = half the L1 distance / kernel pageblocks (the fraction of pageblocks whose
    type would have to change to turn one distribution into the other)."""
    names = list(dict.fromkeys([*kernel, *model]))
    per = {}
    d = 0
    for n in names:
        m, k = int(model.get(n, 0)), int(kernel.get(n, 0))
        d += abs(m - k)
        per[n] = {"model": m, "kernel": k, "diff": m - k, "rel": (m - k) / k if k else (0.0 if m == 0 else math.inf)}
    total = sum(int(v) for v in kernel.values())
    return {
        "per_type": per,
        "l1": (d / 2 / total) if total else (0.0 if d == 0 else math.inf),
        "total_model": sum(int(v) for v in model.values()),
        "total_kernel": total,
    }


def fallback_ratio(model: int, kernel: int) -> float:
    """max(model/kernel, kernel/model); 1.0 when both are 0, inf when only one is."""
    if model == kernel:
        return 1.0
    if model == 0 or kernel == 0:
        return math.inf
    return max(model / kernel, kernel / model)


def free_page_accounting(model_free: int, kernel_free: int, terms: Mapping[str, int], managed: int) -> dict[str, Any]:
    """The free-page identity ``model_free - kernel_free = sum(terms) + unexplained``.

    Each term is a number of pages by which a known effect makes the model's free count
    exceed the kernel's (negative: falls short).  Returns the difference, the terms, the
    unexplained rest and that rest as % of managed pages."""
    diff = model_free - kernel_free
    explained = sum(terms.values())
    unexplained = diff - explained
    return {
        "model_free": model_free,
        "kernel_free": kernel_free,
        "diff": diff,
        "terms": dict(terms),
        "explained": explained,
        "unexplained": unexplained,
        "unexplained_pct": 100.0 * unexplained / managed if managed else 0.0,
        "managed": managed,
    }


def verdicts(end: Mapping[str, Any], tol: Mapping[str, float] = TOLERANCES) -> dict[str, dict[str, Any]]:
    """One verdict per metric (worst zone) for a snapshot comparison."""
    out: dict[str, dict[str, Any]] = {}
    zones = end.get("zones", {})

    def worst(key: str, sub: str | None = None, shape: bool = False) -> tuple[float, str]:
        best = (0.0, "")
        for zname, z in zones.items():
            if shape and z.get("pageblocks", {}).get("total_kernel", 1 << 30) < tol["min_pageblocks"]:
                continue  # one block is > 1.5 % of such a zone: reported, not judged
            v = z[key] if sub is None else z[key][sub]
            if abs(v) >= abs(best[0]):
                best = (v, zname)
        return best

    if zones:
        # verdict, (zone key, sub-key), shape metric (small zones not judged), tolerance, unit
        for name, key, shape, t, unit in (
            ("free_pages", ("free", "unexplained_pct"), False, "unexplained_free_pct", "% managed"),
            ("per_order", ("order_l1", None), True, "order_l1", "L1/free"),
            ("per_migratetype", ("mt_order_l1", None), True, "mt_order_l1", "L1/free"),
            ("pageblocks", ("pageblocks", "l1"), True, "pageblock_l1", "blocks moved/total"),
        ):
            v, zn = worst(*key, shape=shape)
            out[name] = {"value": v, "zone": zn, "tolerance": tol[t], "unit": unit, "pass": abs(v) <= tol[t]}
    fb = end.get("fallback")
    if fb:
        r = fb["ratio"]
        out["fallbacks"] = {
            "value": r,
            "zone": "all",
            "tolerance": tol["fallback_factor"],
            "unit": "factor",
            "model": fb["model"],
            "kernel": fb["kernel"],
            "pass": r <= tol["fallback_factor"],
        }
    return out


# ------------------------------------------------------------------------------------
# the replay with snapshots
# ------------------------------------------------------------------------------------
@dataclass
class _ZoneBook:
    """Per-zone counters of pages the kernel and the model hold outside the trace."""

    placeholders: list[list[int]] = field(default_factory=lambda: [[] for _ in range(NR_PAGE_ORDERS)])
    placeholder_pages: int = 0  # live placeholder pages (model)
    placeholders_taken: int = 0
    placeholders_released: int = 0
    pretrace_freed: int = 0  # kernel: pages allocated before tracing, freed in the trace
    pretrace_unreleased: int = 0  # ... with no placeholder left to release
    deferred_init: int = 0  # pgdatinit0 frees of never-allocated pfns
    targets: list[int] = field(default_factory=list)  # model compaction-target handles
    target_pages_kernel: int = 0  # kernel: compaction targets (nr_succeeded)
    target_pages_model: int = 0  # model: target placeholders taken
    target_freed_kernel: int = 0  # kernel: target pages freed later (double / unmatched in range)
    target_released_model: int = 0
    isolation_returned: int = 0  # unmatched frees inside a compaction run (returned free pages)
    silent_freed: int = 0  # double frees with no compaction target outstanding (bulk allocator)
    failed_live: int = 0  # pages of allocations the model failed and the trace has not freed
    ambiguous_target_frees: int = 0  # target frees outside the traced isolate ranges
    overreleased: int = 0  # placeholder pages freed beyond the trace's free (split failed)


X86_LOW_RESERVE_END = 0x100  # x86 reserve_real_mode()/setup_arch(): memblock_reserve(0, SZ_1M)
X86_ISA_HOLE = (0x9F, 0x100)  # e820: 640 KiB .. 1 MiB is not RAM


def x86_low_memory_layout(machine: Any) -> Any:
    """``machine_from_zoneinfo`` puts a zone's holes at the top of its span; on x86 the
    DMA zone's hole is the legacy ISA/VGA/BIOS window 0x9f..0x100 (640 KiB - 1 MiB),
    which is exactly ``spanned - present`` pages on these machines.  Returns the machine
    with that hole moved (unchanged when the numbers do not fit)."""

    if machine.arch not in ("x86_64", "i386"):
        return machine
    lo, hi = X86_ISA_HOLE
    holes = list(machine.holes)
    for z in machine.zones:
        if z.spanned_pages and z.start_pfn < lo and z.end_pfn >= hi and z.spanned_pages - z.present_pages == hi - lo:
            top = (z.start_pfn + z.present_pages, z.end_pfn)
            if top in holes:
                holes[holes.index(top)] = (lo, hi)
    return dataclasses.replace(machine, holes=tuple(holes))


class _Validation:
    def __init__(
        self,
        trace_dir: Path,
        design: str,
        kernel: str,
        pfn_exact: bool,
        design_options: dict | None,
        start: str,
        check_every: int,
        x86_low: bool = True,
    ) -> None:
        self.dir = trace_dir
        self.start_mode = start
        self.machine = machine_from_zoneinfo(trace_dir / "zoneinfo-start.txt")
        if x86_low:
            self.machine = x86_low_memory_layout(self.machine)
        self.alloc = new_allocator(self.machine, design, kernel=kernel, design_options=design_options)
        self.kernel = kernel
        self.config_cma = self.machine.config_cma
        self.mts = kernel_migratetypes(self.config_cma)
        self.st = ReplayStats()
        self.runner = Runner(self.alloc, check_every=check_every, pfn_exact=pfn_exact, lenient=True)
        self.books = {z.zid: _ZoneBook() for z in self.alloc.zones}
        self.zone_ranges = sorted((z.start_pfn, z.end_pfn, z.zid) for z in self.alloc.zones if z.spanned)
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.calibrated = False
        self.calibration: dict[str, Any] = {}
        self.next_ph = -1  # placeholder handles are negative
        self.pending: list[tuple[str, Any, int]] = []
        self._prev: TraceRecord | None = None
        self._prev_um = 0
        self._prev_df = 0
        self.isolated: list[tuple[int, int]] = []  # kernel pfn ranges compaction took pages from
        self.compacting: dict[int, int] = {}  # pid -> zone start pfn of the running compaction
        self.last_compact_zone: int | None = None
        self.compact_zone_of: dict[int, int] = {}  # pid -> zid it compacts
        self.ambiguous_comms: dict[str, int] = {}
        self.target_cursor: dict[int, int] = {}  # zid -> free scanner position
        self.failed: dict[int, tuple[int, int]] = {}  # handle -> (kernel zid, pages) of failed allocs
        self.in_snap_segment = False
        self.snap_net = 0
        self.snap_peak = 0
        self.classified: dict[str, int] = {
            "deferred_init": 0,
            "pretrace": 0,
            "compaction_target": 0,
            "isolation_returned": 0,
            "silent_alloc": 0,
        }

    # --- helpers ---------------------------------------------------------------------
    def zid_of(self, pfn: int) -> int | None:
        for s, e, zid in self.zone_ranges:
            if s <= pfn < e:
                return zid
        return None

    def in_isolated(self, pfn: int) -> bool:
        for s, e in self.isolated:
            if s <= pfn < e:
                return True
        return False

    def _register(self, pfn: int, order: int) -> int:
        h = self.next_ph
        self.next_ph -= 1
        self.runner.handles[h] = pfn << 4 | order
        self.runner.rev[pfn] = h
        return h

    # --- record hook: classify what the replay could not match ----------------------
    def on_record(self, rec: TraceRecord) -> None:
        st = self.st
        prev = self._prev
        if prev is not None:
            if st.unmatched_pages != self._prev_um:
                self.pending.append(("unmatched", prev, st.unmatched_pages - self._prev_um))
            if st.double_frees != self._prev_df:
                self.pending.append(("double", prev, (1 << prev.order) * (st.double_frees - self._prev_df)))
        self._prev = rec
        self._prev_um = st.unmatched_pages
        self._prev_df = st.double_frees
        ev = rec.event
        if self.in_snap_segment and rec.pfn >= 0 and not rec.failed:
            if ev == "mm_page_alloc":
                self.snap_net += 1 << rec.order
                self.snap_peak = max(self.snap_peak, self.snap_net)
            elif ev == "mm_page_free":
                self.snap_net -= 1 << rec.order
        if ev.startswith("mm_compaction") or ev == "mm_migrate_pages":
            self.pending.append((ev, rec, 0))

    def finish_records(self) -> None:
        self.on_record(TraceRecord("eof", -1, -1, None, None, 0, 0.0, 0, "", 0))

    def process_pending(self) -> Iterator[Free]:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        for kind, rec, pages in items:
            if kind == "mm_compaction_begin":
                m = _ZSTART_RE.search((rec.extra or {}).get("body", ""))
                zs = int(m.group(1), 16) if m else 0
                self.compacting[rec.pid] = zs
                self.last_compact_zone = self.zid_of(zs)
                if self.last_compact_zone is not None:  # the free scanner restarts at the top
                    self.target_cursor.pop(self.last_compact_zone, None)
                if self.last_compact_zone is not None:
                    self.compact_zone_of[rec.pid] = self.last_compact_zone
            elif kind == "mm_compaction_end":
                self.compacting.pop(rec.pid, None)
            elif kind == "mm_compaction_isolate_freepages":
                ex = rec.extra or {}
                if ex.get("nr_taken") and "start_pfn" in ex:
                    self.isolated.append((ex["start_pfn"], ex["end_pfn"]))
                    z = self.zid_of(ex["start_pfn"])
                    if z is not None:
                        self.last_compact_zone = z
                        self.compact_zone_of[rec.pid] = z
            elif kind == "mm_migrate_pages":
                m = _MIGRATE_RE.search((rec.extra or {}).get("body", ""))
                zone = self.compact_zone_of.get(rec.pid, self.last_compact_zone)
                if m and m.group(2) == "compaction" and zone is not None:
                    n = int(m.group(1))
                    self.books[zone].target_pages_kernel += n
                    if self.calibrated:
                        self.take_targets(zone, n)
            else:
                yield from self.unknown_free(kind, rec, pages)

    def unknown_free(self, kind: str, rec: TraceRecord, pages: int) -> Iterator[Free]:
        zid = self.zid_of(rec.pfn)
        if zid is None or pages <= 0:
            return
        b = self.books[zid]
        if rec.comm == "pgdatinit0":
            self.classified["deferred_init"] += pages
            b.deferred_init += pages
            return
        isolated = self.in_isolated(rec.pfn)
        if kind == "double" or isolated:
            if self.compacting and kind == "unmatched":
                self.classified["isolation_returned"] += pages
                b.isolation_returned += pages
                return
            bulk = not isolated and rec.comm.startswith("kworker")
            if bulk or b.target_pages_kernel - b.target_freed_kernel < pages:
                # a page taken by another silent path: __alloc_pages_bulk() has no
                # mm_page_alloc event; its main user, vmalloc, frees from a workqueue
                # (kworker: vfree deferred / kernel stacks of exited tasks), whereas
                # compaction targets hold user data freed by its owner.  Allocated and
                # freed unseen by the model: no net effect
                self.classified["silent_alloc"] += pages
                b.silent_freed += pages
                return
            self.classified["compaction_target"] += pages
            b.target_freed_kernel += pages
            if not isolated:
                # outside every traced isolate_freepages range: a target found by
                # fast_isolate_freepages() (no traced range) or a bulk-allocated page
                b.ambiguous_target_frees += pages
                comm = rec.comm.rstrip("0123456789:/-")
                self.ambiguous_comms[comm] = self.ambiguous_comms.get(comm, 0) + pages
            if not self.calibrated:
                return
            n = min(pages, len(b.targets))
            for _ in range(n):
                h = b.targets.pop()
                b.target_released_model += 1
                yield Free(h, 0)
            return
        self.classified["pretrace"] += pages
        b.pretrace_freed += pages
        if not self.calibrated:
            return
        yield from self.release_placeholders(zid, pages)

    # --- placeholders -----------------------------------------------------------------
    def release_placeholders(self, zid: int, pages: int) -> Iterator[Free]:
        b = self.books[zid]
        ph = b.placeholders
        need = pages
        # exact order first, then smaller blocks largest-first, then any larger block
        o = pages.bit_length() - 1 if pages & (pages - 1) == 0 else -1
        if 0 <= o < NR_PAGE_ORDERS and ph[o]:
            h = ph[o].pop()
            b.placeholder_pages -= 1 << o
            b.placeholders_released += 1 << o
            yield Free(h, o)
            return
        for o in range(NR_PAGE_ORDERS - 1, -1, -1):
            while ph[o] and need >= 1 << o:
                h = ph[o].pop()
                need -= 1 << o
                b.placeholder_pages -= 1 << o
                b.placeholders_released += 1 << o
                yield Free(h, o)
        if need > 0:
            for o in range(NR_PAGE_ORDERS):
                if ph[o] and (1 << o) > need:
                    # release a larger block: free it, re-take all but `need` pages
                    h = ph[o].pop()
                    pfn = self.runner.handles[h] >> 4
                    b.placeholder_pages -= 1 << o
                    b.placeholders_released += 1 << o
                    yield Free(h, o)
                    self._retake(zid, pfn, o, need)
                    need = 0
                    break
        if need > 0:
            b.pretrace_unreleased += need

    def _retake(self, zid: int, pfn: int, order: int, give: int) -> None:
        """After freeing placeholder (pfn, order), take back everything but ``give`` pages
        (the lowest pages of the block stay free) as new placeholders."""
        a = self.alloc
        b = self.books[zid]
        off = give
        end = 1 << order
        while off < end:
            o = min((off & -off).bit_length() - 1, order)
            while off + (1 << o) > end:
                o -= 1
            p = pfn + off
            if not self._take_placeholder(zid, p, o, a.get_pageblock_migratetype(p)):
                # the freed block went to a per-CPU list (or merged away): these pages
                # stay free, more than the trace freed
                b.overreleased += 1 << o
            off += 1 << o

    def take_targets(self, zid: int, n: int) -> None:
        """Compaction's free scanner (isolate_freepages): n order-0 pages taken silently,
        scanning down from the zone end (the free scanner's cursor, reset at each
        mm_compaction_begin), in MOVABLE/CMA pageblocks only and never out of free blocks
        of pageblock order or more (suitable_migration_target(), 6.1 mm/compaction.c)."""
        a = self.alloc
        b = self.books[zid]
        z = a.zones[zid]
        cur = self.target_cursor.get(zid, z.end_pfn - 1)
        bo = a.design.buddy_order
        pbo = a.pageblock_order
        pbn = 1 << pbo
        state = a.alloc_state
        got = 0
        while got < n and cur >= z.start_pfn:
            if cur & (pbn - 1) == pbn - 1 and a.get_pageblock_migratetype(cur) not in (MIGRATE_MOVABLE, MIGRATE_CMA):
                cur -= pbn  # unsuitable pageblock: skip it whole
                continue
            if state[cur] == 0:
                head = a.free_block_containing(cur)
                if (
                    head >= 0
                    and bo(head) < pbo
                    and a.alloc_pages_at(G.GFP_HIGHUSER_MOVABLE, 0, cur, "compaction-target") >= 0
                ):
                    b.targets.append(self._register(cur, 0))
                    b.target_pages_model += 1
                    got += 1
            cur -= 1
        self.target_cursor[zid] = cur
        if got < n:  # the scanner met the bottom: fall back to any free movable page
            design = a.design
            for _ in range(n - got):
                p = -1
                for mt in (MIGRATE_MOVABLE, MIGRATE_CMA, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE):
                    for o in range(NR_PAGE_ORDERS):
                        q = design.first_in_list(list_id(zid, o, mt))
                        if q >= 0 and a.alloc_pages_at(G.GFP_HIGHUSER_MOVABLE, 0, q, "compaction-target") >= 0:
                            p = q
                            break
                    if p >= 0:
                        break
                if p < 0:
                    return
                b.targets.append(self._register(p, 0))
                b.target_pages_model += 1

    def _take_placeholder(self, zid: int, pfn: int, order: int, mt: int) -> bool:
        a = self.alloc
        gfp = G.GFP_HIGHUSER_MOVABLE if mt == MIGRATE_CMA else G.GFP_KERNEL
        if a.alloc_pages_at(gfp, order, pfn, "placeholder") < 0:
            return False
        b = self.books[zid]
        b.placeholders[order].append(self._register(pfn, order))
        b.placeholder_pages += 1 << order
        b.placeholders_taken += 1 << order
        return True

    def calibrate(self, kernel_pt: Mapping[str, Any], kernel_zi: Mapping[Any, Any]) -> dict[str, Any]:
        """Take placeholder blocks off the model's free lists so that, per zone, its free
        pages (buddy + per-CPU lists) equal the kernel's and its free blocks per
        (migratetype, order) come as close as that budget allows to pagetypeinfo; then
        retype whole-pageblock placeholders so that the pageblock counts per migratetype
        match (see module doc and docs/validation.md)."""
        a = self.alloc
        design = a.design
        report: dict[str, Any] = {}
        totals = a.totals()
        for z in a.zones:
            if not z.present:
                continue
            kz = kernel_zi.get((z.nid, z.name))
            if kz is None:
                continue
            k_total = int(kz.get("nr_free_pages", kz.get("pages free", 0))) + sum(
                int(p.get("count", 0)) for p in kz.get("pagesets", [])
            )
            # the design's own differences stay: a smaller memmap leaves more pages managed
            # (and free), descriptor/metadata pages are the design's own allocations
            meta = int(totals[z.zid]["metadata"])
            budget = z.free_pages + a.pcp_pages(z) - k_total - (z.managed - int(kz.get("managed", z.managed))) + meta
            # 1. excess blocks, largest first, while the budget allows
            excess: list[tuple[int, int, int]] = []  # (order, mt, count)
            for mt, name in self.mts:
                target = kernel_pt["free"].get((z.nid, z.name, name))
                if target is None:
                    continue
                for o in range(NR_PAGE_ORDERS):
                    have = a.free_count(z, o, mt)
                    want = target[o] if o < len(target) else 0
                    if have > want:
                        excess.append((o, mt, have - want))
            excess.sort(key=lambda t: -t[0])
            for o, mt, n in excess:
                lid = list_id(z.zid, o, mt)
                while n > 0 and budget >= 1 << o:
                    p = design.first_in_list(lid)
                    if p < 0 or not self._take_placeholder(z.zid, p, o, mt):
                        break
                    budget -= 1 << o
                    n -= 1
            # 2. the rest of the budget from the largest free blocks, as aligned pieces
            guard = 0
            while budget > 0 and guard < 10000:
                guard += 1
                took = False
                for o in range(NR_PAGE_ORDERS - 1, -1, -1):
                    for mt, _name in self.mts:
                        p = design.first_in_list(list_id(z.zid, o, mt))
                        if p < 0:
                            continue
                        po = min(o, budget.bit_length() - 1)
                        if self._take_placeholder(z.zid, p, po, mt):
                            budget -= 1 << po
                            took = True
                            break
                    if took:
                        break
                if not took:
                    break
            # 3. pageblock types: whole-pageblock placeholders take the types the kernel has
            #    more of (the pre-trace allocations that claimed them)
            k_blocks = kernel_pt["blocks"].get((z.nid, z.name), {})
            pbc = pageblock_counts(a, z)
            name_of = dict(self.mts)
            delta = {
                mt: int(k_blocks.get(name_of[mt], pbc.get(mt, 0))) - pbc.get(mt, 0)
                for mt, _ in self.mts
                if mt in (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
            }
            retyped = 0
            b = self.books[z.zid]
            pbo = a.pageblock_order
            for o in range(NR_PAGE_ORDERS - 1, pbo - 1, -1):
                for h in b.placeholders[o]:
                    pfn = self.runner.handles[h] >> 4
                    for blk in range(pfn, pfn + (1 << o), 1 << pbo):
                        cur = a.get_pageblock_migratetype(blk)
                        if delta.get(cur, 0) >= 0:
                            continue
                        dst = next((m for m, dd in delta.items() if dd > 0), None)
                        if dst is None:
                            break
                        a.set_pageblock_migratetype(blk, dst)
                        delta[cur] += 1
                        delta[dst] -= 1
                        retyped += 1
            report[f"{z.nid}:{z.name}"] = {
                "placeholder_pages": b.placeholder_pages,
                "unspent_budget": budget,
                "retyped_pageblocks": retyped,
            }
        self.calibrated = True
        self.calibration = report
        return report

    # --- events -----------------------------------------------------------------------
    def events(self, path: Path) -> Iterator[Any]:
        st = self.st
        handles = self.runner.handles
        last: Alloc | None = None
        failed = self.failed
        for ev in trace_events(
            path, kernel=self.kernel, config_cma=self.config_cma, lenient=True, stats=st, on_record=self.on_record
        ):
            if last is not None:
                if last.handle not in handles:  # the model failed an allocation the kernel made
                    z = self.zid_of(last.pfn)
                    if z is not None:
                        failed[last.handle] = (z, 1 << last.order)
                        self.books[z].failed_live += 1 << last.order
                last = None
            t = type(ev)
            if t is Alloc:
                last = ev
            elif t is Free and failed:
                f = failed.pop(ev.handle, None)
                if f is not None:
                    self.books[f[0]].failed_live -= f[1]
            if self.pending:
                yield from self.process_pending()
            if type(ev) is Mark:
                text = ev.text
                if SNAP_START_BEGIN in text:
                    self.in_snap_segment = True
                elif SNAP_START in text:
                    self.in_snap_segment = False
                    self.snapshot("start")
                elif SNAP_END in text:
                    self.snapshot("end", marker=True)
                    continue
            yield ev
        self.finish_records()
        yield from self.process_pending()

    def snapshot(self, which: str, marker: bool = True) -> None:
        if which in self.snapshots:
            return
        if which == "start" and self.start_mode == "calibrate" and not self.calibrated:
            pt = _read(self.dir / "pagetypeinfo-start.txt", parse_pagetypeinfo)
            zi = _read(self.dir / "zoneinfo-start.txt", parse_zoneinfo)
            if pt is not None and zi is not None:
                self.calibrate(pt, zi)
        self.snapshots[which] = self.capture(which, marker)

    def capture(self, which: str, marker: bool) -> dict[str, Any]:
        a = self.alloc
        st = self.st
        zones = {}
        totals = a.totals()
        for z in a.zones:
            if not z.present:
                continue
            b = self.books[z.zid]
            per_mt = {
                name: [min(a.free_count(z, o, mt), FREE_LIST_CAP) for o in range(NR_PAGE_ORDERS)]
                for mt, name in self.mts
            }
            pbc = pageblock_counts(a, z)
            zones[f"{z.nid}:{z.name}"] = {
                "nid": z.nid,
                "zone": z.name,
                "managed": z.managed,
                "free_pages": z.free_pages,
                "pcp_pages": a.pcp_pages(z),
                "nr_free": list(z.nr_free),
                "free_by_mt": per_mt,
                "metadata_pages": int(totals[z.zid]["metadata"]),
                "pageblocks": {name: pbc.get(mt, 0) for mt, name in self.mts},
                "book": {k: v for k, v in vars(b).items() if k not in ("placeholders", "targets")},
            }
        c = a.counters
        return {
            "marker": marker,
            "trace_line": st.last_lineno,
            "ops": self.runner.result.ops,
            "model_fallback": {
                "extfrag": c.extfrag,
                "change_ownership": c.extfrag_change_ownership,
                "pageblock_claims": c.pageblock_claims,
            },
            "trace_fallback": {"extfrag": st.extfrag_events, "change_ownership": st.extfrag_change_ownership},
            "classified": dict(self.classified),
            "zones": zones,
            "snap_segment_peak_pages": self.snap_peak,
        }


def _read(path: Path, parser: Any) -> Any:
    try:
        return parser(path.read_text())
    except OSError:
        return None


def _ringbuffer_lost(path: Path) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    lost = 0
    for m in re.finditer(r"^(overrun|commit overrun|dropped events):\s*(\d+)", text, re.M):
        lost += int(m.group(2))
    return lost


def compare(
    model: Mapping[str, Any],
    kdir: Path,
    suffix: str,
    start: Mapping[str, Any] | None,
    extra_terms: Mapping[str, int],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Compare one model snapshot with the kernel's ``*-{suffix}.txt`` files."""
    zi = _read(kdir / f"zoneinfo-{suffix}.txt", parse_zoneinfo) or {}
    bi = _read(kdir / f"buddyinfo-{suffix}.txt", parse_buddyinfo) or {}
    pt = _read(kdir / f"pagetypeinfo-{suffix}.txt", parse_pagetypeinfo) or {"free": {}, "blocks": {}}
    out_zones = {}
    for key, mz in model["zones"].items():
        nid, name = mz["nid"], mz["zone"]
        kz = zi.get((nid, name), {})
        k_orders = bi.get((nid, name))
        if k_orders is None:
            continue
        k_free = int(kz.get("nr_free_pages", kz.get("pages free", pages_of(k_orders))))
        k_pcp = sum(int(p.get("count", 0)) for p in kz.get("pagesets", []))
        k_managed = int(kz.get("managed", mz["managed"]))
        book = mz["book"]
        terms: dict[str, int] = {}
        # the kernel's per-CPU lists hold free pages that buddy does not count; so do the model's
        terms["pcp_lists"] = k_pcp - mz["pcp_pages"]
        terms["managed_diff"] = mz["managed"] - k_managed
        terms["design_metadata"] = -mz.get("metadata_pages", 0)
        if start is not None and key in start["zones"]:
            s = start["zones"][key]
            s_unexpl = s["free"]["unexplained"]
            sb = s["book"]
            # carried from the start snapshot: what calibration did not remove (calibrate) or
            # the whole pre-trace memory (boot)
            terms["start_residual"] = s_unexpl
            if config["start"] == "boot":
                # pre-trace pages freed since the start: the kernel gained them, the model had them
                terms["pretrace_freed"] = -(book["pretrace_freed"] - sb["pretrace_freed"])
                terms["compaction_targets"] = (book["target_pages_kernel"] - sb["target_pages_kernel"]) - (
                    book["target_freed_kernel"] - sb["target_freed_kernel"]
                )
            else:
                terms["pretrace_unreleased"] = -(book["pretrace_unreleased"] - sb["pretrace_unreleased"])
                terms["placeholder_overrelease"] = book.get("overreleased", 0) - sb.get("overreleased", 0)
                k_live = (book["target_pages_kernel"] - sb["target_pages_kernel"]) - (
                    book["target_freed_kernel"] - sb["target_freed_kernel"]
                )
                m_live = (book["target_pages_model"] - sb["target_pages_model"]) - (
                    book["target_released_model"] - sb["target_released_model"]
                )
                terms["compaction_targets"] = k_live - m_live
            terms["model_alloc_failures"] = book.get("failed_live", 0) - sb.get("failed_live", 0)
            for k, v in extra_terms.items():
                terms[k] = v
        fa = free_page_accounting(mz["free_pages"], k_free, terms, k_managed)
        if start is not None and key in start["zones"]:
            amb = book.get("ambiguous_target_frees", 0) - start["zones"][key]["book"].get("ambiguous_target_frees", 0)
            # if those frees were bulk-allocated pages, not compaction targets, the kernel
            # still holds that many targets: the unexplained rest would be smaller by this
            fa["ambiguous_target_frees"] = amb
            fa["unexplained_if_bulk"] = fa["unexplained"] - amb
        k_mt = {mt: c for (n2, z2, mt), c in pt["free"].items() if n2 == nid and z2 == name}
        m_mt = {mt: c for mt, c in mz["free_by_mt"].items() if mt in k_mt}
        k_blocks = pt["blocks"].get((nid, name), {})
        m_blocks = {n: v for n, v in mz["pageblocks"].items() if n in k_blocks}
        out_zones[key] = {
            "free": fa,
            "kernel_pcp": k_pcp,
            "model_pcp": mz["pcp_pages"],
            "kernel_nr_free": k_orders,
            "model_nr_free": mz["nr_free"],
            "order_l1": order_l1(mz["nr_free"], k_orders),
            "mt_order_l1": mt_order_l1(m_mt, k_mt, norm=pages_of(k_orders)),
            "pageblocks": pageblock_diff(m_blocks, k_blocks),
            "kernel_free_by_mt": k_mt,
            "model_free_by_mt": m_mt,
        }
    mf, tf = model["model_fallback"], model["trace_fallback"]
    if start is not None:
        smf, stf = start["model_fallback"], start["trace_fallback"]
        win = {
            "model": mf["extfrag"] - smf["extfrag"],
            "kernel": tf["extfrag"] - stf["extfrag"],
            "model_change_ownership": mf["change_ownership"] - smf["change_ownership"],
            "kernel_change_ownership": tf["change_ownership"] - stf["change_ownership"],
            "model_pageblock_claims": mf["pageblock_claims"] - smf["pageblock_claims"],
        }
    else:
        win = {
            "model": mf["extfrag"],
            "kernel": tf["extfrag"],
            "model_change_ownership": mf["change_ownership"],
            "kernel_change_ownership": tf["change_ownership"],
            "model_pageblock_claims": mf["pageblock_claims"],
        }
    win["ratio"] = fallback_ratio(win["model"], win["kernel"])
    win["total_model"] = mf["extfrag"]
    win["total_kernel"] = tf["extfrag"]
    return {"zones": out_zones, "fallback": win, "trace_line": model["trace_line"], "marker": model["marker"]}


def validate(
    trace_dir: str | Path,
    design: str = "linked",
    kernel: str = "6.1",
    pfn_exact: bool = False,
    design_options: dict | None = None,
    max_events: int | None = None,
    start: str = "calibrate",
    check_every: int = 0,
    trace_file: str | None = None,
    x86_low: bool = True,
) -> dict[str, Any]:
    """Replay ``trace_dir``'s trace on ``design`` and compare with the kernel snapshots
    (module doc).  Returns a JSON-able dict: config, per-snapshot comparisons, verdicts."""
    d = Path(trace_dir)
    if start not in ("calibrate", "boot"):
        raise ValueError(f"start must be 'calibrate' or 'boot', not {start!r}")
    path = (
        d / trace_file
        if trace_file
        else next(
            (d / n for n in ("trace.txt.xz", "trace.txt.zst", "trace.txt.gz", "trace.txt") if (d / n).exists()), None
        )
    )
    if path is None or not path.exists():
        raise FileNotFoundError(f"{d}: no trace.txt[.xz|.zst|.gz]")
    v = _Validation(d, design, kernel, pfn_exact, design_options, start, check_every, x86_low)
    t0 = time.perf_counter()
    v.runner.run(v.events(path), max_ops=max_events)
    if "end" not in v.snapshots:
        v.snapshots["end"] = v.capture("end", marker=False)
    # diagnostic: the model's end state with its per-CPU lists drained (drain_all_pages),
    # to show how much of the per-order difference the pcp contents make
    v.alloc.drain_all_pages()
    drained = {f"{z.nid}:{z.name}": list(z.nr_free) for z in v.alloc.zones if z.present}
    elapsed = time.perf_counter() - t0
    config = {
        "trace_dir": str(d),
        "design": design,
        "kernel": kernel,
        "pfn_exact": pfn_exact,
        "design_options": design_options or {},
        "max_events": max_events,
        "start": start,
        "x86_low_memory": x86_low,
        "machine": v.machine.spec,
    }
    st = v.st
    lost = _ringbuffer_lost(d / "ringbuffer-stats.txt") + st.lost_events
    result: dict[str, Any] = {"config": config, "elapsed_s": elapsed}
    start_cmp = None
    if "start" in v.snapshots:
        start_cmp = compare(v.snapshots["start"], d, "start", None, {}, config)
        result["start"] = start_cmp
    end_extra = {"snapshot_commands": -0}  # filled below
    end_model = v.snapshots["end"]
    complete = bool(end_model["marker"]) and start_cmp is not None
    if start_cmp is not None:
        # the end snapshot's own commands ran with tracing off: the kernel holds their
        # pages, the model does not (estimated from the traced start snapshot)
        end_extra = {"snapshot_commands": 0}
        start_for_end = dict(v.snapshots["start"])
        start_for_end["zones"] = {
            k: {**z, "free": start_cmp["zones"][k]["free"]}
            for k, z in v.snapshots["start"]["zones"].items()
            if k in start_cmp["zones"]
        }
        result["end"] = compare(end_model, d, "end", start_for_end, end_extra, config)
        # attribute the snapshot estimate to the zone with the largest unexplained rest
        est = v.snap_peak
        if est and result["end"]["zones"]:
            key = max(result["end"]["zones"], key=lambda k: result["end"]["zones"][k]["free"]["managed"])
            fa = result["end"]["zones"][key]["free"]
            fa["terms"]["snapshot_commands"] = est
            fa.update(free_page_accounting(fa["model_free"], fa["kernel_free"], fa["terms"], fa["managed"]))
    if "end" in result:
        for key, z in result["end"]["zones"].items():
            if key in drained:
                z["model_nr_free_pcp_drained"] = drained[key]
                z["order_l1_pcp_drained"] = order_l1(drained[key], z["kernel_nr_free"])
    result["complete"] = complete
    runres = v.runner.result
    result["replay"] = {
        "lines": st.lines,
        "ops": runres.ops,
        "allocs": runres.allocs,
        "frees": runres.frees,
        "alloc_failures": runres.alloc_failures,
        "ignored_frees": runres.ignored_frees,
        "pfn_exact_hits": runres.pfn_exact_hits,
        "pfn_exact_divergences": runres.pfn_exact_divergences,
        "bad_events": dict(runres.bad_events),
        "trace_failed_allocs": st.failed_allocs,
        "unmatched_frees": st.unmatched_frees,
        "unmatched_pages": st.unmatched_pages,
        "double_frees": st.double_frees,
        "implicit_frees": st.implicit_frees,
        "implicit_free_pages": st.implicit_free_pages,
        "partial_frees": st.partial_frees,
        "extfrag_events": st.extfrag_events,
        "extfrag_change_ownership": st.extfrag_change_ownership,
        "lost_events": lost,
        "classified_unknown_frees": dict(v.classified),
        "ambiguous_target_free_comms": dict(sorted(v.ambiguous_comms.items(), key=lambda kv: -kv[1])[:12]),
        "violations": dict(runres.violations),
    }
    if v.calibrated:
        result["calibration"] = v.calibration
    result["verdicts"] = (
        verdicts(result["end"]) if complete else (verdicts(result["start"]) if start_cmp is not None else {})
    )
    result["verdict_on"] = "end" if complete else ("start" if start_cmp is not None else "none")
    return result


# ------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------


def summary_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One line of docs/validation.md's results table (re-judged with the current
    TOLERANCES, so older JSON files can be summarised too)."""
    cfg = result["config"]
    which = "end" if result.get("complete") else "start"
    cmp_ = result.get(which) or {"zones": {}}
    v = verdicts(cmp_) if cmp_.get("zones") else {}
    frees = {k: z["free"] for k, z in cmp_["zones"].items()}
    worst = max(frees.items(), key=lambda kv: abs(kv[1]["unexplained_pct"]), default=(None, None))
    return {
        "trace": Path(cfg["trace_dir"]).name,
        "design": cfg["design"],
        "pfn_exact": cfg["pfn_exact"],
        "start": cfg["start"],
        "snapshot": which,
        "unexplained": {k: (f["unexplained"], round(f["unexplained_pct"], 3)) for k, f in frees.items()},
        "worst_unexplained_pct": worst[1]["unexplained_pct"] if worst[1] else None,
        "order_l1": {k: round(z["order_l1"], 3) for k, z in cmp_["zones"].items()},
        "mt_order_l1": {k: round(z["mt_order_l1"], 3) for k, z in cmp_["zones"].items()},
        "pageblock_l1": {k: round(z["pageblocks"]["l1"], 3) for k, z in cmp_["zones"].items()},
        "fallback": (cmp_.get("fallback", {}).get("model"), cmp_.get("fallback", {}).get("kernel")),
        "verdicts": {k: bool(x["pass"]) for k, x in v.items()},
        "elapsed_s": round(result.get("elapsed_s", 0)),
    }
