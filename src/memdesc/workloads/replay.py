"""Turn a kernel page-allocator trace into memdesc events (Alloc / Free / Mark).

Replay semantics (also in docs/workloads-traces.md):

* **API-level events only.** ``mm_page_alloc`` becomes an :class:`Alloc` and
  ``mm_page_free`` a :class:`Free`.  ``mm_page_free_batched`` duplicates an
  ``mm_page_free`` of the same page and is skipped (``batched_skipped``).
  ``mm_page_alloc_zone_locked`` / ``mm_page_pcpu_drain`` are the kernel's internal
  buddy <-> per-CPU-list traffic: counted (``zone_locked``, ``pcpu_drain``,
  ``pcp_events``) but not replayed, because the model runs its own pcp lists.
  ``mm_page_alloc_extfrag`` is counted (``extfrag_events``,
  ``extfrag_change_ownership``) for validating fallback behaviour.
  ``tracing_mark_write`` lines become :class:`Mark` events; other events
  (compaction, migrate) are counted by the reader and dropped.
* **Handles.** Every replayed allocation gets a fresh integer handle (1, 2, ...),
  remembered under the *traced* head pfn with its order and gfp.  The model takes
  pages from its own free lists, so its pfns differ from the traced ones; the handle
  connects the two.  ``Alloc.pfn`` always carries the traced pfn (for --pfn-exact).
* **Failed allocations** (``page=0000000000000000 pfn=0x0`` / ``page=(nil)``) are
  counted (``failed_allocs``) and not replayed.
* **Frees of unknown pfns** (pages allocated before tracing began, deferred
  struct-page init handing memory to the buddy allocator, pages taken silently by
  compaction) are counted (``unmatched_frees`` / ``unmatched_pages``), not fatal.  If
  the pfn was itself freed earlier in the trace and not allocated since, the free is
  counted as ``double_frees`` instead (line numbers in ``double_free_lines``): a trace
  anomaly, though compaction's silent free-page isolation produces it legitimately.
* **Split frees keep conservation exact.** A free of ``2^j`` pages at pfn ``p``
  inside a live block ``(H, K)`` with ``j < K`` (``split_page()`` /
  ``alloc_pages_exact()`` freeing page by page, or a smaller-order free of a live
  head) is replayed as ``Free`` of the whole block followed by one ``Alloc`` per
  remaining buddy piece: for each level ``l`` in ``j .. K-1`` the sibling of ``p``'s
  level-``l`` ancestor, an order-``l`` block, under a new handle with the original
  gfp.  Live pages drop by exactly ``2^j``.  Counted as ``partial_frees`` (sub-page)
  or ``order_mismatch_frees`` (at the traced head), pieces as ``split_allocs``.  A free of a
  live head with a *larger* order frees every live block in its range and counts the
  uncovered pages as unmatched.
* **Missed frees.** An allocation overlapping a live block (the trace still believes
  the pfn live) first frees the overlap implicitly (``implicit_frees``,
  ``implicit_free_pages``): blocks inside the new range are freed, a block containing
  it is split as above so that only the re-allocated range leaves it.
* Only text that does not parse is fatal (:class:`~memdesc.workloads.trace.TraceParseError`).

Events carry ``src=None`` on the hot path (set ``with_src=True`` for
``"file:line"`` strings); ``stats.last_lineno`` always names the line of the event
most recently yielded, so a runner can report ``stats.where()`` on error.  The
``records`` counts, the counters of lines that are only counted (batched frees, pcp
traffic) and ``allocs``/``frees`` (with their ``*_events``) are added once per block
of input (~1 MiB) and are exact once the stream ends or is closed; ``live_pages`` and
the other counters are current at every event.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from memdesc.mm.gfp import format_gfp
from memdesc.mm.mmzone import MIGRATETYPE_NAMES
from memdesc.workloads.events import Alloc, Event, Free, Mark
from memdesc.workloads.trace import COUNTED_MARKS, ORDER_OF, ParseStats, TraceRecord, _BlockSource, read_trace

__all__ = ["ReplayStats", "trace_events", "trace_stats"]

_MAX_LINES_KEPT = 20


@dataclass(slots=True)
class ReplayStats(ParseStats):
    """Parse counters (inherited) plus what the replay did with each event."""

    allocs: int = 0  # traced allocations replayed as Alloc
    frees: int = 0  # traced frees that released (part of) a live block
    alloc_events: int = 0  # Alloc events emitted (allocs + split_allocs)
    free_events: int = 0  # Free events emitted (frees, implicit frees, ...)
    unmatched_frees: int = 0
    unmatched_pages: int = 0
    double_frees: int = 0
    double_free_lines: list[int] = field(default_factory=list)
    failed_allocs: int = 0
    batched_skipped: int = 0
    zone_locked: int = 0
    pcpu_drain: int = 0
    pcp_events: int = 0
    extfrag_events: int = 0
    extfrag_change_ownership: int = 0
    implicit_frees: int = 0
    implicit_free_pages: int = 0
    partial_frees: int = 0
    order_mismatch_frees: int = 0
    split_allocs: int = 0
    filtered: int = 0
    live_pages: int = 0
    peak_live_pages: int = 0
    live_blocks: int = 0


_REGION_SHIFT = 10  # blocks of order <= 10 (MAX_PAGE_ORDER of 6.x) lie in one region


class _Replay:
    """The handle map: traced head pfn -> (handle, order, gfp, head pfn of the traced
    allocation it came from), blocks never overlapping.

    ``regions`` counts the live blocks of order 1.._REGION_SHIFT per aligned
    2^_REGION_SHIFT-page region and ``huge`` the larger ones, so that "is this pfn
    inside some live multi-page block?" is one dict lookup in the common case.  Every
    change of ``live`` goes through :meth:`put` / :meth:`pop` (or keeps the counts by
    hand on the hot path of :func:`trace_events`)."""

    def __init__(self, st: ReplayStats) -> None:
        self.st = st
        self.live: dict[int, tuple[int, int, int, int]] = {}
        self.freed: set[int] = set()
        self.next_handle = 1
        self.top = 0  # highest order ever live: bound of the containment search
        self.regions: dict[int, int] = {}
        self.huge = 0

    def new_handle(self) -> int:
        h = self.next_handle
        self.next_handle = h + 1
        return h

    def count(self, head: int, order: int, d: int) -> None:
        """Adjust the multi-page block counts for a block (``order`` >= 1) put (+1) or
        removed (-1)."""
        if order > _REGION_SHIFT:
            self.huge += d
            return
        r = head >> _REGION_SHIFT
        n = self.regions.get(r, 0) + d
        if n:
            self.regions[r] = n
        else:
            del self.regions[r]

    def put(self, head: int, e: tuple[int, int, int, int]) -> None:
        self.live[head] = e
        if e[1]:
            self.count(head, e[1], 1)
        if e[1] > self.top:
            self.top = e[1]

    def pop(self, head: int) -> tuple[int, int, int, int] | None:
        e = self.live.pop(head, None)
        if e is not None and e[1]:
            self.count(head, e[1], -1)
        return e

    def containing(self, pfn: int) -> tuple[int, tuple[int, int, int, int]] | None:
        """The live block whose range holds ``pfn`` (its head is an aligned ancestor)."""
        live = self.live
        e = live.get(pfn)
        if e is not None:
            return pfn, e
        if not self.huge and (pfn >> _REGION_SHIFT) not in self.regions:
            return None
        for lvl in range(1, self.top + 1):
            h = pfn >> lvl << lvl
            if h != pfn:
                e = live.get(h)
                if e is not None and e[1] >= lvl:
                    return h, e
        return None

    def any_inside(self, pfn: int, order: int) -> bool:
        """Is any live block headed inside ``(pfn, pfn + 2^order)``?"""
        live = self.live
        end = pfn + (1 << order)
        if (1 << order) <= len(live):
            return any(q in live for q in range(pfn + 1, end))
        return any(pfn < q < end for q in live)

    def carve(self, head: int, e: tuple[int, int, int, int], pfn: int, order: int, cpu: int,
              src: str | None) -> list[Event]:
        """Free block ``e`` at ``head`` and re-allocate all of it except
        ``[pfn, pfn + 2^order)`` as buddy pieces under new handles."""
        st = self.st
        handle, korder, gfp, orig = e
        self.pop(head)
        out: list[Event] = [Free(handle, korder, cpu, src)]
        rel = pfn - head
        for lvl in range(order, korder):
            sib = head + (((rel >> lvl) ^ 1) << lvl)
            h = self.new_handle()
            self.put(sib, (h, lvl, gfp, orig))
            out.append(Alloc(h, lvl, gfp, None, -1, cpu, sib, src))
        n = korder - order
        st.split_allocs += n
        st.alloc_events += n
        st.free_events += 1
        st.live_pages -= 1 << order
        return out

    def free_range(self, pfn: int, order: int, cpu: int, src: str | None) -> tuple[list[Event], int]:
        """Free every live block starting inside ``[pfn, pfn + 2^order)``; returns the
        events and the number of pages covered."""
        st = self.st
        live = self.live
        out: list[Event] = []
        covered = 0
        end = pfn + (1 << order)
        if (1 << order) <= len(live):
            heads = [q for q in range(pfn, end) if q in live]
        else:
            heads = [q for q in live if pfn <= q < end]
        for q in heads:
            e = self.pop(q)
            if e is not None:
                out.append(Free(e[0], e[1], cpu, src))
                covered += 1 << e[1]
                self.freed.add(q)
        st.free_events += len(out)
        st.live_pages -= covered
        return out, covered

    def alloc_overlap(self, pfn: int, order: int, cpu: int, src: str | None) -> list[Event]:
        """Implicitly free whatever live blocks overlap a new allocation."""
        st = self.st
        out: list[Event] = []
        c = self.containing(pfn)
        if c is not None:
            head, e = c
            korder = e[1]
            if head == pfn and korder <= order:
                pass  # inside the new range: freed by free_range below
            elif korder > order and (pfn - head) % (1 << order) == 0 and (
                pfn + (1 << order) <= head + (1 << korder)
            ):
                st.implicit_frees += 1
                st.implicit_free_pages += 1 << order
                return self.carve(head, e, pfn, order, cpu, src)
            else:  # unaligned: drop the whole stale block
                st.implicit_frees += 1
                st.implicit_free_pages += 1 << korder
                self.pop(head)
                st.live_pages -= 1 << korder
                st.free_events += 1
                out.append(Free(e[0], korder, cpu, src))
        evs, covered = self.free_range(pfn, order, cpu, src)
        if evs:
            st.implicit_frees += len(evs)
            st.implicit_free_pages += covered
        out.extend(evs)
        return out

    def alloc(self, pfn: int, order: int, gfp: int, cpu: int, src: str | None) -> list[Event]:
        """A traced allocation (not failed, not filtered): implicit frees, then the Alloc."""
        st = self.st
        out: list[Event] = []
        if self.containing(pfn) is not None or (order and self.any_inside(pfn, order)):
            out = self.alloc_overlap(pfn, order, cpu, src)
        h = self.next_handle
        self.next_handle = h + 1
        self.put(pfn, (h, order, gfp, pfn))
        self.freed.discard(pfn)
        st.allocs += 1
        st.alloc_events += 1
        lp = st.live_pages + (1 << order)
        st.live_pages = lp
        if lp > st.peak_live_pages:
            st.peak_live_pages = lp
        out.append(Alloc(h, order, gfp, None, -1, cpu, pfn, src))
        return out

    def free(self, pfn: int, order: int, cpu: int, lineno: int, src: str | None) -> list[Event]:
        """A traced free (not filtered)."""
        e = self.live.get(pfn)
        if e is not None and e[1] == order:
            st = self.st
            self.pop(pfn)
            self.freed.add(pfn)
            st.frees += 1
            st.free_events += 1
            st.live_pages -= 1 << order
            return [Free(e[0], order, cpu, src)]
        return self.free_slow(pfn, order, cpu, lineno, src)

    def free_slow(self, pfn: int, order: int, cpu: int, lineno: int, src: str | None) -> list[Event]:
        """A free that is not an exact match of a live head and order."""
        st = self.st
        c = self.containing(pfn)
        if c is not None:
            head, e = c
            korder = e[1]
            end = pfn + (1 << order)
            if order < korder and (pfn - head) % (1 << order) == 0 and end <= head + (1 << korder):
                st.frees += 1
                if pfn == e[3]:  # the head of the traced allocation itself
                    st.order_mismatch_frees += 1
                else:
                    st.partial_frees += 1
                self.freed.add(pfn)
                return self.carve(head, e, pfn, order, cpu, src)
            if head != pfn:  # inconsistent sub-range: release the whole containing block
                st.frees += 1
                st.order_mismatch_frees += 1
                self.pop(head)
                st.live_pages -= 1 << korder
                st.free_events += 1
                return [Free(e[0], korder, cpu, src)]
            st.order_mismatch_frees += 1  # a larger free at a live head: falls through
        evs, covered = self.free_range(pfn, order, cpu, src) if order else ([], 0)
        if evs:
            st.frees += 1
            if c is None:
                st.order_mismatch_frees += 1
            st.unmatched_pages += (1 << order) - covered
            return evs
        if pfn in self.freed:
            st.double_frees += 1
            if len(st.double_free_lines) < _MAX_LINES_KEPT:
                st.double_free_lines.append(lineno)
        else:
            st.unmatched_frees += 1
            st.unmatched_pages += 1 << order
        return []

    def record(self, rec: TraceRecord, src: str | None,
               pfn_filter: Callable[[int], bool] | None) -> list[Event]:
        """Replay one parsed record (the general path: any event, any shape)."""
        st = self.st
        ev = rec.event
        if ev == "mm_page_alloc":
            if rec.failed:
                st.failed_allocs += 1
                return _NONE
            if pfn_filter is not None and not pfn_filter(rec.pfn):
                st.filtered += 1
                return _NONE
            return self.alloc(rec.pfn, rec.order, rec.gfp, rec.cpu, src)  # type: ignore[arg-type]
        if ev == "mm_page_free":
            if pfn_filter is not None and not pfn_filter(rec.pfn):
                st.filtered += 1
                return _NONE
            return self.free(rec.pfn, rec.order, rec.cpu, rec.lineno, src)
        if ev == "mm_page_free_batched":
            st.batched_skipped += 1
        elif ev == "mm_page_alloc_zone_locked":
            st.zone_locked += 1
            st.pcp_events += 1
        elif ev == "mm_page_pcpu_drain":
            st.pcpu_drain += 1
            st.pcp_events += 1
        elif ev == "mm_page_alloc_extfrag":
            st.extfrag_events += 1
            if rec.extra and rec.extra.get("change_ownership"):
                st.extfrag_change_ownership += 1
        elif ev == "tracing_mark_write":
            text = rec.extra["text"] if rec.extra else ""
            return [Mark(text, src or f"{os.path.basename(st.path)}:{rec.lineno}")]
        return _NONE


_NONE: list[Event] = []  # shared empty result (never mutated)


def trace_events(
    path: str | os.PathLike[str],
    kernel: str = "6.1",
    config_cma: bool = False,
    lenient: bool = False,
    stats: ReplayStats | None = None,
    pfn_filter: Callable[[int], bool] | None = None,
    with_src: bool = False,
    on_record: Callable[[TraceRecord], None] | None = None,
) -> Iterator[Event]:
    """Stream a trace as memdesc events with stable integer handles (module doc).

    ``pfn_filter(pfn)`` False drops an allocation or free (``filtered``), e.g. to
    replay one zone; ``on_record`` sees every parsed record before it is replayed.

    Without ``on_record`` the trace is read a block (about 1 MiB) at a time and the
    common lines are matched for the whole block by one regex (``_BlockSource``);
    ``on_record`` needs a :class:`TraceRecord` per line and takes the record path."""
    st = stats if stats is not None else ReplayStats()
    if on_record is not None:
        yield from _record_events(path, kernel, config_cma, lenient, st, pfn_filter, with_src, on_record)
        return
    src_ = _BlockSource(path, kernel, config_cma, lenient, st)
    rp = _Replay(st)
    live = rp.live
    freed = rp.freed
    regions = rp.regions
    reader = src_.reader
    slow = reader.slow
    gfp_cache = reader.gfp_cache
    order_of = ORDER_OF
    rshift = _REGION_SHIFT
    marks = [m for _, m in COUNTED_MARKS]
    cpus: dict[str, int] = {}
    name = ""
    src: str | None = None
    n_alloc = n_free = 0  # mm_page_alloc / mm_page_free lines taken by the block pattern
    hot_allocs = hot_frees = 0  # of those, order-0 ones replayed inline (no _Replay call)
    in_slow = [0] * len(marks)  # counted-event names inside lines of this block given to the line parser
    block = ""
    base = lineno = 0
    block_done = True
    try:
        for base, block in src_.blocks():
            lineno = base
            block_done = False
            block_lines: list[str] | None = None
            for cpu_s, apfn, aord, gfp_s, fpfn, ford, rest in src_.findall(block):
                lineno += 1
                if with_src:
                    name = name or os.path.basename(st.path)
                    src = f"{name}:{lineno}"
                if apfn:
                    gfp = gfp_cache.get(gfp_s)
                    pfn = int(apfn, 16)
                    if gfp is None or not pfn:  # first sight of this gfp string, or a NULL page
                        if block_lines is None:
                            block_lines = block.split("\n")
                        rest = block_lines[lineno - base - 1]
                    else:
                        n_alloc += 1
                        if pfn_filter is not None and not pfn_filter(pfn):
                            st.filtered += 1
                            continue
                        order = order_of[aord]
                        cpu = cpus.get(cpu_s)
                        if cpu is None:
                            cpu = cpus[cpu_s] = int(cpu_s)
                        st.last_lineno = lineno
                        if order or pfn in live or (pfn >> rshift) in regions or rp.huge:
                            for ev in rp.alloc(pfn, order, gfp, cpu, src):
                                yield ev
                            continue
                        h = rp.next_handle
                        rp.next_handle = h + 1
                        live[pfn] = (h, 0, gfp, pfn)
                        freed.discard(pfn)
                        hot_allocs += 1
                        lp = st.live_pages + 1
                        st.live_pages = lp
                        if lp > st.peak_live_pages:
                            st.peak_live_pages = lp
                        yield Alloc(h, 0, gfp, None, -1, cpu, pfn, src)
                        continue
                elif fpfn:
                    n_free += 1
                    pfn = int(fpfn, 16)
                    if pfn_filter is not None and not pfn_filter(pfn):
                        st.filtered += 1
                        continue
                    order = order_of[ford]
                    cpu = cpus.get(cpu_s)
                    if cpu is None:
                        cpu = cpus[cpu_s] = int(cpu_s)
                    st.last_lineno = lineno
                    e = live.get(pfn)
                    if e is not None and e[1] == 0 and order == 0:
                        del live[pfn]
                        freed.add(pfn)
                        hot_frees += 1
                        st.live_pages -= 1
                        yield Free(e[0], 0, cpu, src)
                    else:
                        for ev in rp.free(pfn, order, cpu, lineno, src):
                            yield ev
                    continue
                elif not rest:
                    continue  # a counted-only line: counted for the whole block below
                # any other line: the line parser, then the general replay
                for i, m in enumerate(marks):
                    in_slow[i] += rest.count(m)
                rec = slow(rest, lineno)
                if rec is not None:
                    st.last_lineno = lineno
                    for ev in rp.record(rec, src, pfn_filter):
                        yield ev
            block_done = True
            _flush(st, n_alloc, n_free, hot_allocs, hot_frees, block, in_slow)
            n_alloc = n_free = hot_allocs = hot_frees = 0
        st.live_blocks = len(live)
    finally:
        if not block_done:  # stopped inside a block: count the lines handed out so far
            end_ = 0
            for _ in range(lineno - base):
                end_ = block.index("\n", end_) + 1
            block = block[:end_]
        _flush(st, n_alloc, n_free, hot_allocs, hot_frees, block if not block_done else "", in_slow)
        st.lines = lineno


def _flush(st: ReplayStats, n_alloc: int, n_free: int, hot_allocs: int, hot_frees: int, text: str,
           in_slow: list[int]) -> None:
    """Add the hot-path counters and the counted-only lines of ``text`` (a block or
    the part of it handed out) to ``st``; resets ``in_slow``."""
    rc = st.records
    rc["mm_page_alloc"] += n_alloc
    rc["mm_page_free"] += n_free
    st.allocs += hot_allocs
    st.alloc_events += hot_allocs
    st.frees += hot_frees
    st.free_events += hot_frees
    if text:
        n = [text.count(m) - k for (_, m), k in zip(COUNTED_MARKS, in_slow, strict=True)]
        for (event, _), k in zip(COUNTED_MARKS, n, strict=True):
            rc[event] += k
        n_batched, n_locked, n_drain = n
        st.batched_skipped += n_batched
        st.zone_locked += n_locked
        st.pcpu_drain += n_drain
        st.pcp_events += n_locked + n_drain
    in_slow[:] = [0] * len(in_slow)


def _record_events(
    path: str | os.PathLike[str],
    kernel: str,
    config_cma: bool,
    lenient: bool,
    st: ReplayStats,
    pfn_filter: Callable[[int], bool] | None,
    with_src: bool,
    on_record: Callable[[TraceRecord], None],
) -> Iterator[Event]:
    """trace_events over :func:`read_trace` records (with ``on_record``)."""
    rp = _Replay(st)
    name = ""
    src: str | None = None
    for rec in read_trace(path, kernel=kernel, lenient=lenient, stats=st, config_cma=config_cma):
        on_record(rec)
        st.last_lineno = rec.lineno
        if with_src:
            name = name or os.path.basename(st.path)
            src = f"{name}:{rec.lineno}"
        yield from rp.record(rec, src, pfn_filter)
    st.live_blocks = len(rp.live)


# --- trace stats ------------------------------------------------------------------


def trace_stats(
    path: str | os.PathLike[str],
    kernel: str = "6.1",
    config_cma: bool = False,
    lenient: bool = False,
    samples: int = 200,
    top: int = 10,
    max_markers: int = 1000,
) -> dict[str, Any]:
    """Read a whole trace once and summarise it: events by type, order histogram,
    top gfp masks (as printed for ``kernel``), migratetypes, a sampled live-page
    curve (about ``samples`` points, memory bounded), replay counters, markers."""
    st = ReplayStats()
    orders: Counter[int] = Counter()
    gfps: Counter[int] = Counter()
    mts: Counter[int] = Counter()
    markers: list[dict[str, Any]] = []
    curve: list[tuple[int, float, int]] = []
    state = {"n": 0, "interval": 1, "first_ts": None, "last_ts": 0.0}
    samples = max(samples, 2)

    def on_record(rec: TraceRecord) -> None:
        n = state["n"] + 1
        state["n"] = n
        if state["first_ts"] is None:
            state["first_ts"] = rec.ts
        state["last_ts"] = rec.ts
        if rec.event == "mm_page_alloc" and not rec.failed:
            orders[rec.order] += 1
            gfps[rec.gfp or 0] += 1
            if rec.migratetype is not None:
                mts[rec.migratetype] += 1
        elif rec.event == "tracing_mark_write" and len(markers) < max_markers:
            markers.append({"line": rec.lineno, "ts": rec.ts, "text": (rec.extra or {}).get("text", "")})
        if n % state["interval"] == 0:
            curve.append((rec.lineno, rec.ts, st.live_pages))
            if len(curve) >= 2 * samples:
                del curve[1::2]
                state["interval"] *= 2

    for _ in trace_events(path, kernel=kernel, config_cma=config_cma, lenient=lenient, stats=st,
                          on_record=on_record):
        pass
    curve.append((st.lines, float(state["last_ts"] or 0.0), st.live_pages))
    replay_keys = (
        "allocs", "frees", "alloc_events", "free_events", "unmatched_frees", "unmatched_pages",
        "double_frees", "failed_allocs", "batched_skipped", "zone_locked", "pcpu_drain", "pcp_events",
        "extfrag_events", "extfrag_change_ownership", "implicit_frees", "implicit_free_pages",
        "partial_frees", "order_mismatch_frees", "split_allocs", "live_pages", "peak_live_pages",
        "live_blocks",
    )
    mt_names = {i: n for i, n in enumerate(MIGRATETYPE_NAMES)}
    return {
        "path": st.path,
        "format": st.format,
        "compression": st.compression,
        "lines": st.lines,
        "header_lines": st.header_lines,
        "lost_events": st.lost_events,
        "events": dict(sorted(((k, v) for k, v in st.records.items() if v), key=lambda kv: -kv[1])),
        "other_events": dict(st.other),
        "orders": dict(sorted(orders.items())),
        "gfp_top": [(format_gfp(m, kernel), c) for m, c in gfps.most_common(top)],
        "gfp_distinct": len(gfps),
        "migratetypes": {mt_names.get(k, str(k)): v for k, v in sorted(mts.items())},
        "live_curve": curve,
        "first_ts": state["first_ts"],
        "last_ts": state["last_ts"],
        "markers": markers,
        "marker_count": st.markers,
        "replay": {k: getattr(st, k) for k in replay_keys},
        "double_free_lines": list(st.double_free_lines),
        "skipped": dict(st.skipped),
        "skipped_examples": list(st.skipped_examples),
    }


