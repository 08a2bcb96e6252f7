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
most recently yielded, so a runner can report ``stats.where()`` on error.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..gfp import format_gfp
from ..mmzone import MIGRATETYPE_NAMES
from .events import Alloc, Event, Free, Mark
from .trace import ParseStats, TraceRecord, read_trace

__all__ = ["ReplayStats", "render_trace_stats", "trace_events", "trace_stats"]

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


class _Replay:
    """The handle map: traced head pfn -> (handle, order, gfp, head pfn of the traced
    allocation it came from), blocks never overlapping."""

    def __init__(self, st: ReplayStats) -> None:
        self.st = st
        self.live: dict[int, tuple[int, int, int, int]] = {}
        self.freed: set[int] = set()
        self.next_handle = 1
        self.top = 0  # highest order ever live: bound of the containment search

    def new_handle(self) -> int:
        h = self.next_handle
        self.next_handle = h + 1
        return h

    def containing(self, pfn: int) -> tuple[int, tuple[int, int, int, int]] | None:
        """The live block whose range holds ``pfn`` (its head is an aligned ancestor)."""
        live = self.live
        e = live.get(pfn)
        if e is not None:
            return pfn, e
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
        del self.live[head]
        out: list[Event] = [Free(handle, korder, cpu, src)]
        rel = pfn - head
        for lvl in range(order, korder):
            sib = head + (((rel >> lvl) ^ 1) << lvl)
            h = self.new_handle()
            self.live[sib] = (h, lvl, gfp, orig)
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
        heads = range(pfn, end) if (1 << order) <= len(live) else [q for q in live if pfn <= q < end]
        for q in heads:
            e = live.pop(q, None)
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
                del self.live[head]
                st.live_pages -= 1 << korder
                st.free_events += 1
                out.append(Free(e[0], korder, cpu, src))
        evs, covered = self.free_range(pfn, order, cpu, src)
        if evs:
            st.implicit_frees += len(evs)
            st.implicit_free_pages += covered
        out.extend(evs)
        return out

    def free_slow(self, rec: TraceRecord, src: str | None) -> list[Event]:
        """A free that is not an exact match of a live head and order."""
        st = self.st
        pfn, order, cpu = rec.pfn, rec.order, rec.cpu
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
                del self.live[head]
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
                st.double_free_lines.append(rec.lineno)
        else:
            st.unmatched_frees += 1
            st.unmatched_pages += 1 << order
        return []


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
    replay one zone; ``on_record`` sees every parsed record before it is replayed."""
    st = stats if stats is not None else ReplayStats()
    rp = _Replay(st)
    live = rp.live
    freed = rp.freed
    name = ""
    src: str | None = None
    for rec in read_trace(path, kernel=kernel, lenient=lenient, stats=st, config_cma=config_cma):
        if on_record is not None:
            on_record(rec)
        ev = rec.event
        st.last_lineno = rec.lineno
        if with_src:
            name = name or os.path.basename(st.path)
            src = f"{name}:{rec.lineno}"
        if ev == "mm_page_alloc":
            if rec.failed:
                st.failed_allocs += 1
                continue
            pfn = rec.pfn
            if pfn_filter is not None and not pfn_filter(pfn):
                st.filtered += 1
                continue
            order = rec.order
            if order > rp.top:
                rp.top = order
            if rp.containing(pfn) is not None or (order and rp.any_inside(pfn, order)):
                yield from rp.alloc_overlap(pfn, order, rec.cpu, src)
            h = rp.next_handle
            rp.next_handle = h + 1
            live[pfn] = (h, order, rec.gfp, pfn)  # type: ignore[assignment]
            freed.discard(pfn)
            st.allocs += 1
            st.alloc_events += 1
            lp = st.live_pages + (1 << order)
            st.live_pages = lp
            if lp > st.peak_live_pages:
                st.peak_live_pages = lp
            yield Alloc(h, order, rec.gfp, None, -1, rec.cpu, pfn, src)  # type: ignore[arg-type]
        elif ev == "mm_page_free":
            pfn = rec.pfn
            if pfn_filter is not None and not pfn_filter(pfn):
                st.filtered += 1
                continue
            e = live.get(pfn)
            if e is not None and e[1] == rec.order:
                del live[pfn]
                freed.add(pfn)
                st.frees += 1
                st.free_events += 1
                st.live_pages -= 1 << e[1]
                yield Free(e[0], e[1], rec.cpu, src)
            else:
                yield from rp.free_slow(rec, src)
        elif ev == "mm_page_free_batched":
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
            yield Mark(text, src or f"{os.path.basename(st.path)}:{rec.lineno}")
    st.live_blocks = len(live)


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


def render_trace_stats(stats: dict[str, Any], width: int = 100) -> str:
    """Render :func:`trace_stats` output as text tables (rich) for the CLI."""
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=False, color_system=None)
    t = Table(title=f"trace {stats['path']}", show_header=False)
    t.add_column("key")
    t.add_column("value")
    t.add_row("format", str(stats["format"]))
    t.add_row("compression", str(stats["compression"]))
    t.add_row("lines", f"{stats['lines']:,}")
    if stats.get("first_ts") is not None:
        t.add_row("time span", f"{stats['first_ts']:.6f} .. {stats['last_ts']:.6f} s")
    t.add_row("markers", str(stats["marker_count"]))
    if stats.get("lost_events"):
        t.add_row("lost events", f"{stats['lost_events']:,}")
    con.print(t)

    def table(title: str, cols: tuple[str, str], rows: list[tuple[Any, Any]]) -> None:
        tb = Table(title=title)
        tb.add_column(cols[0])
        tb.add_column(cols[1], justify="right")
        for k, v in rows:
            tb.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
        con.print(tb)

    table("events by type", ("event", "count"), list(stats["events"].items()) + list(
        stats["other_events"].items()))
    table("allocation orders", ("order", "count"), list(stats["orders"].items()))
    table(f"top gfp masks ({stats['gfp_distinct']} distinct)", ("gfp_flags", "count"), stats["gfp_top"])
    table("allocation migratetypes", ("migratetype", "count"), list(stats["migratetypes"].items()))
    table("replay", ("counter", "value"), list(stats["replay"].items()))
    if stats["skipped"]:
        table("skipped lines (lenient)", ("kind", "count"), list(stats["skipped"].items()))
    curve = stats["live_curve"]
    if curve:
        step = max(1, len(curve) // 10)
        table("live pages (sampled)", ("line", "live pages"),
              [(f"{ln:,} @ {ts:.3f}s", lp) for ln, ts, lp in curve[::step]])
    if stats["markers"]:
        tb = Table(title="markers")
        tb.add_column("line", justify="right")
        tb.add_column("ts", justify="right")
        tb.add_column("text")
        for m in stats["markers"][:50]:
            tb.add_row(f"{m['line']:,}", f"{m['ts']:.6f}", m["text"])
        con.print(tb)
    return buf.getvalue()
