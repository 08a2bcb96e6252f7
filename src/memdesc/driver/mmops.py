"""The mm operations the runner drives: contiguous allocation / CMA, memory
offline/online and compaction, with their metrics.

``MmOps(alloc)`` has one handler per event type of memdesc.workloads.events
(ContigAlloc, ContigFree, Offline, Online, Compact) and two whole-machine
questions: :meth:`MmOps.cma_alloc_all` ("can cma_alloc take the whole CMA
area?") and :meth:`MmOps.offline_all_movable` ("can every ZONE_MOVABLE memory
block be offlined?"); both give everything back afterwards.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from memdesc.mm.cma import CmaArea, ContigResult, alloc_contig_pages, cma_areas_of, free_contig_range
from memdesc.mm.compaction import compact_zone
from memdesc.mm.memory_hotplug import OfflineResult, movable_memory_blocks, offline_pages, online_pages
from memdesc.mm.mmzone import PAGES_PER_SECTION, ZONE_NAMES

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator
    from memdesc.workloads.events import Compact, ContigAlloc, ContigFree, Offline, Online


class MmOps:
    """Handlers for the mm-operation events, with counters for reports."""

    def __init__(self, alloc: PageAllocator) -> None:
        self.alloc = alloc
        self.cma: list[CmaArea] = cma_areas_of(alloc)
        # handle -> (area index or -1, pfn, nr_pages)
        self.contig: dict[int, tuple[int, int, int]] = {}
        self.c: Counter = Counter()
        self.blockers: Counter = Counter()
        self.contig_pages_migrated = 0
        self.offline_pages_migrated = 0

    # -- contiguous allocations ----------------------------------------------------------
    def _blocker(self, kind: str | None) -> None:
        self.blockers[kind or "unknown"] += 1

    def handle_contig_alloc(self, ev: ContigAlloc) -> ContigResult:
        """cma_alloc on the CMA area(s) (ev.cma) or alloc_contig_pages()."""
        if ev.handle in self.contig:
            raise ValueError(f"contiguous allocation handle {ev.handle} is already live")
        if ev.cma:
            self.c["cma_attempted"] += 1
            r = ContigResult(False, -1, ev.nr_pages, reason="no-cma", blocker_kind="no-cma")
            migrated = 0
            for i, area in enumerate(self.cma):
                r = area.cma_alloc(ev.nr_pages, ev.align_order)
                migrated += r.migrated
                if r.ok:
                    self.contig[ev.handle] = (i, r.pfn, ev.nr_pages)
                    break
            r.migrated = migrated
            self.c["cma_succeeded" if r.ok else "cma_failed"] += 1
        else:
            self.c["contig_attempted"] += 1
            r = alloc_contig_pages(self.alloc, ev.nr_pages, ev.align_order)
            if r.ok:
                self.contig[ev.handle] = (-1, r.pfn, ev.nr_pages)
            self.c["contig_succeeded" if r.ok else "contig_failed"] += 1
        self.contig_pages_migrated += r.migrated
        if not r.ok:
            self._blocker(r.blocker_kind)
        return r

    def handle_contig_free(self, ev: ContigFree) -> bool:
        """cma_release() / free_contig_range() of a live handle; False if unknown."""
        ent = self.contig.pop(ev.handle, None)
        if ent is None:
            self.c["contig_free_unknown"] += 1
            return False
        area, pfn, nr = ent
        if area >= 0:
            self.cma[area].cma_release(pfn, nr)
        else:
            free_contig_range(self.alloc, pfn, nr)
        self.c["contig_freed"] += 1
        return True

    # -- memory offline/online --------------------------------------------------------------
    def _resolve(self, start_pfn: int, nr_pages: int, block: int) -> tuple[int, int] | None:
        if start_pfn >= 0:
            if nr_pages > 0:
                return start_pfn, nr_pages
            for s, n in movable_memory_blocks(self.alloc):
                if s == start_pfn:
                    return s, n
            return start_pfn, PAGES_PER_SECTION - start_pfn % PAGES_PER_SECTION
        blocks = movable_memory_blocks(self.alloc)
        if 0 <= block < len(blocks):
            return blocks[block]
        return None

    def handle_offline(self, ev: Offline) -> OfflineResult:
        self.c["offline_attempted"] += 1
        rng = self._resolve(ev.start_pfn, ev.nr_pages, ev.block)
        if rng is None:
            r = OfflineResult(False, ev.start_pfn, ev.nr_pages, -1, "no-block", "invalid")
        else:
            r = offline_pages(self.alloc, *rng)
        self.offline_pages_migrated += r.migrated
        self.c["offline_succeeded" if r.ok else "offline_failed"] += 1
        if not r.ok:
            self._blocker(r.blocker_kind)
        return r

    def handle_online(self, ev: Online) -> OfflineResult:
        self.c["online_attempted"] += 1
        rng = self._resolve(ev.start_pfn, ev.nr_pages, ev.block)
        if rng is None:
            r = OfflineResult(False, ev.start_pfn, ev.nr_pages, -1, "no-block", "invalid")
        else:
            r = online_pages(self.alloc, *rng)
        self.c["online_succeeded" if r.ok else "online_failed"] += 1
        return r

    # -- compaction -------------------------------------------------------------------------
    def handle_compact(self, ev: Compact) -> list[Any]:
        """compact_memory (all zones) or one node's zone (ev.zone name)."""
        out = []
        for z in self.alloc.zones:
            if not z.populated:
                continue
            if ev.nid >= 0 and z.nid != ev.nid:
                continue
            if ev.zone is not None and ZONE_NAMES[z.ztype].lower() != ev.zone.lower():
                continue
            out.append(compact_zone(self.alloc, z, ev.order))
        self.c["compact_requests"] += 1
        return out

    # -- whole-machine questions ------------------------------------------------------------
    def cma_alloc_all(self) -> dict[str, Any]:
        """Does cma_alloc of every whole CMA area succeed? Released right after."""
        t0 = time.perf_counter()
        res = {"areas": len(self.cma), "ok": bool(self.cma), "pages": 0, "migrated": 0, "failures": []}
        for area in self.cma:
            self.c["cma_attempted"] += 1
            r = area.cma_alloc(area.count)
            res["migrated"] += r.migrated
            self.contig_pages_migrated += r.migrated
            if r.ok:
                self.c["cma_succeeded"] += 1
                res["pages"] += r.nr
                area.cma_release(r.pfn, r.nr)
            else:
                self.c["cma_failed"] += 1
                self._blocker(r.blocker_kind)
                res["ok"] = False
                res["failures"].append({"area": area.name, "pfn": r.failed_pfn, "kind": r.blocker_kind,
                                        "reason": r.reason})
        res["seconds"] = time.perf_counter() - t0
        return res

    def offline_all_movable(self) -> dict[str, Any]:
        """Does offline of every ZONE_MOVABLE memory block succeed? The blocks
        that went offline are onlined again afterwards."""
        t0 = time.perf_counter()
        blocks = movable_memory_blocks(self.alloc)
        res: dict[str, Any] = {"blocks": len(blocks), "offlined": 0, "migrated": 0, "failures": []}
        done = []
        for i, (s, n) in enumerate(blocks):
            self.c["offline_attempted"] += 1
            r = offline_pages(self.alloc, s, n)
            res["migrated"] += r.migrated
            self.offline_pages_migrated += r.migrated
            if r.ok:
                self.c["offline_succeeded"] += 1
                res["offlined"] += 1
                done.append((s, n))
            else:
                self.c["offline_failed"] += 1
                self._blocker(r.blocker_kind)
                res["failures"].append({"block": i, "pfn": r.failed_pfn, "kind": r.blocker_kind,
                                        "reason": r.reason})
        res["ok"] = bool(blocks) and res["offlined"] == len(blocks)
        for s, n in done:
            self.c["online_attempted"] += 1
            r = online_pages(self.alloc, s, n)
            self.c["online_succeeded" if r.ok else "online_failed"] += 1
        res["seconds"] = time.perf_counter() - t0
        return res

    # -- metrics ----------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        c = self.c

        def rate(ok: str, tried: str) -> float | None:
            return c[ok] / c[tried] if c[tried] else None

        cs = self.alloc.compact_stats
        ms = self.alloc.migrate_stats
        out: dict[str, Any] = {}
        for op in ("contig", "cma", "offline", "online"):
            for what in ("attempted", "succeeded", "failed"):
                out[f"{op}_{what}"] = c[f"{op}_{what}"]
            out[f"{op}_success_rate"] = rate(f"{op}_succeeded", f"{op}_attempted")
        out["contig_live"] = len(self.contig)
        out["pages_migrated"] = ms.pgmigrate_success
        out["pages_migrate_failed"] = ms.pgmigrate_fail
        out["contig_pages_migrated"] = self.contig_pages_migrated
        out["offline_pages_migrated"] = self.offline_pages_migrated
        out["compaction"] = {"runs": cs.runs, "pages_scanned": cs.pages_scanned, "free_scanned": cs.free_scanned,
                             "pages_migrated": cs.pages_migrated, "successes": cs.success,
                             "stalls": cs.stall, "failures": cs.fail, "deferred": cs.deferred,
                             "skipped": cs.skipped}
        out["blockers_by_kind"] = dict(sorted(self.blockers.items()))
        return out


__all__ = ["MmOps"]
