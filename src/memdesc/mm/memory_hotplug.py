"""Memory offline/online: offline_pages() / online_pages() of mm/memory_hotplug.c.

offline_pages(start, nr): the range must be pageblock aligned, inside one zone
and without holes; its pageblocks are isolated (MEMORY_OFFLINE semantics of
has_unmovable_pages), movable blocks are migrated out (targets come from the
normal allocator: other movable memory; isolated pages cannot be chosen),
test_pages_isolated() must then see only free pages, and
__offline_isolated_pages() takes them out of the buddy allocator.

Model of offlined memory (keeps the checker's conservation law
free + pcp + allocated + metadata + reserved == present): offlined pages become
reserved-like -- ``alloc.reserved_np`` is set, the design marks them
PageReserved (``design.set_reserved``), and the count moves from managed to
reserved; watermarks are recomputed (init_per_zone_wmark_min). The pageblocks
get their saved types back (the kernel leaves them isolated but stops counting
them in nr_isolate_pageblock; the model's checker counts ISOLATE pageblocks).

online_pages() reverses it: the design un-reserves the pages
(``Design.clear_reserved``), the pageblocks become MOVABLE (memmap_init_range), the
pages are freed like memblock frees them at boot (``free_pages_memory``, FPI_TO_TAIL)
and watermarks are recomputed. The offline ranges are kept in ``alloc.offlined``
(the memory blocks' state).

Memory blocks are 128 MiB sections (PAGES_PER_SECTION); a zone whose edges are
not section aligned gives clipped blocks (see :func:`movable_memory_blocks`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm.cma import contig_chunks
from memdesc.mm.internal import NO_ZONE
from memdesc.mm.migrate import allocated_heads, migrate_block
from memdesc.mm.mmzone import MIGRATE_CMA, MIGRATE_MOVABLE, PAGES_PER_SECTION, ZoneType
from memdesc.mm.page_isolation import (
    MEMORY_OFFLINE,
    REPORT_FAILURE,
    start_isolate_page_range,
    test_pages_isolated,
    undo_isolate_page_range,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

@dataclass
class OfflineResult:
    ok: bool
    start_pfn: int
    nr_pages: int
    failed_pfn: int = -1
    blocker_kind: str | None = None
    reason: str | None = None  # 'invalid', 'isolate', 'migrate', 'busy', 'nomem', 'not-offline'
    migrated: int = 0
    seconds: float = 0.0


def movable_memory_blocks(alloc: PageAllocator) -> list[tuple[int, int]]:
    """ZONE_MOVABLE memory blocks as (start_pfn, nr_pages): each section
    intersected with the zone, clipped to whole pageblocks (a zone edge that is
    not section aligned -- e.g. movablecore= on a small machine -- gives a short
    first/last block; a partial pageblock at the zone end is left out)."""
    pbn = alloc.pageblock_nr_pages
    out = []
    for z in alloc.zones:
        if z.ztype != ZoneType.MOVABLE or not z.spanned:
            continue
        sec = z.start_pfn & ~(PAGES_PER_SECTION - 1)
        while sec < z.end_pfn:
            s = max(sec, z.start_pfn)
            e = min(sec + PAGES_PER_SECTION, z.end_pfn)
            s = -(-s // pbn) * pbn
            e = e & ~(pbn - 1)
            if e > s:
                out.append((s, e - s))
            sec += PAGES_PER_SECTION
    return out


def _validate(alloc: PageAllocator, start: int, nr: int) -> tuple[int, str] | None:
    """offline_pages()' argument checks and test_pages_in_a_zone()."""
    pbn = alloc.pageblock_nr_pages
    end = start + nr
    if nr <= 0 or start < 0 or end > alloc.nr_pfns or start % pbn or end % pbn:
        return max(start, 0), "invalid"
    zid = np.frombuffer(alloc.zid_of_pfn, dtype=np.uint8)[start:end]
    if zid[0] == NO_ZONE:
        return start, "hole"
    bad = np.nonzero(zid != zid[0])[0]
    if len(bad):
        return start + int(bad[0]), "zone"
    holes = np.nonzero(~alloc.present_mask[start:end])[0]
    if len(holes):
        return start + int(holes[0]), "hole"
    for s, n in alloc.offlined.items():
        if s < end and start < s + n:
            return max(s, start), "offline"
    return None


def offline_pages(alloc: PageAllocator, start_pfn: int, nr_pages: int) -> OfflineResult:
    """offline_pages(): take [start_pfn, start_pfn + nr_pages) out of the allocator."""
    t0 = time.perf_counter()
    end = start_pfn + nr_pages
    bad = _validate(alloc, start_pfn, nr_pages)
    if bad is not None:
        return OfflineResult(False, start_pfn, nr_pages, bad[0], bad[1], "invalid")
    fail = start_isolate_page_range(alloc, start_pfn, end, MIGRATE_MOVABLE, MEMORY_OFFLINE | REPORT_FAILURE)
    if fail is not None:
        return OfflineResult(False, start_pfn, nr_pages, fail.pfn, fail.kind, "isolate",
                             seconds=time.perf_counter() - t0)
    alloc.drain_all_pages()
    migrated = 0
    # scan_movable_pages() + do_migrate_range()
    for head in allocated_heads(alloc, start_pfn, end):
        r = migrate_block(alloc, head)
        if not r.ok:
            undo_isolate_page_range(alloc, start_pfn, end, MIGRATE_MOVABLE)
            return OfflineResult(False, start_pfn, nr_pages, head, r.kind,
                                 "nomem" if r.reason == "nomem" else "migrate", migrated,
                                 time.perf_counter() - t0)
        migrated += 1 << r.order
    alloc.drain_all_pages()
    fail = test_pages_isolated(alloc, start_pfn, end, MEMORY_OFFLINE)
    if fail is not None:
        undo_isolate_page_range(alloc, start_pfn, end, MIGRATE_MOVABLE)
        return OfflineResult(False, start_pfn, nr_pages, fail.pfn, fail.kind, "busy", migrated,
                             time.perf_counter() - t0)
    _offline_isolated_pages(alloc, start_pfn, end)
    undo_isolate_page_range(alloc, start_pfn, end, MIGRATE_MOVABLE)  # no free pages left to move
    z = alloc.zone_of(start_pfn)
    z.managed -= nr_pages
    z.reserved += nr_pages
    alloc.offlined[start_pfn] = nr_pages
    alloc.setup_per_zone_wmarks()  # init_per_zone_wmark_min()
    return OfflineResult(True, start_pfn, nr_pages, migrated=migrated, seconds=time.perf_counter() - t0)


def _offline_isolated_pages(alloc: PageAllocator, start: int, end: int) -> None:
    """__offline_isolated_pages(): remove the (isolated, free) pages from buddy
    and mark them reserved."""
    for pfn, order in contig_chunks(start, end):
        alloc.isolate_free_range(pfn, order)
    alloc.reserved_np[start:end] = True
    alloc.design.set_reserved(start, end)


def online_pages(alloc: PageAllocator, start_pfn: int, nr_pages: int) -> OfflineResult:
    """online_pages(): give an offlined range back to the buddy allocator."""
    t0 = time.perf_counter()
    ranges = alloc.offlined
    if ranges.get(start_pfn) != nr_pages:
        return OfflineResult(False, start_pfn, nr_pages, start_pfn, "online", "not-offline")
    end = start_pfn + nr_pages
    alloc.design.clear_reserved(start_pfn, end)
    del ranges[start_pfn]
    alloc.reserved_np[start_pfn:end] = False
    z = alloc.zone_of(start_pfn)
    pbo = alloc.pageblock_order
    for b in range(start_pfn >> pbo, end >> pbo):
        if alloc.pb_mt[b] != MIGRATE_CMA:
            alloc.pb_mt[b] = MIGRATE_MOVABLE  # memmap_init_range(): MIGRATE_MOVABLE
    z.reserved -= nr_pages
    z.managed += nr_pages
    alloc.free_pages_memory(z, start_pfn, end)
    alloc.setup_per_zone_wmarks()
    return OfflineResult(True, start_pfn, nr_pages, seconds=time.perf_counter() - t0)


__all__ = ["OfflineResult", "offline_pages", "online_pages", "movable_memory_blocks"]
