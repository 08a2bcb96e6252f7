"""Contiguous allocation and CMA: alloc_contig_range() / alloc_contig_pages() /
free_contig_range() of mm/page_alloc.c and the CMA areas of mm/cma.c.

A contiguous allocation ``[start, end)`` is recorded in the core as a list of
naturally aligned chunks (largest aligned power of two that fits, at most
MAX_PAGE_ORDER), each an allocated block in ``alloc_state``: the core tracks
allocations per block head with order <= 10, and the same deterministic
decomposition (:func:`contig_chunks`) lets free_contig_range() give it back
block by block, so page conservation holds at every step. The chunks are
unmovable (kind ``"contig"``), like a DMA buffer.

alloc_contig_range() follows the kernel: isolate the covering pageblocks
(start_isolate_page_range, which splits free blocks straddling the edges),
drain pcp lists, migrate every allocated block of the range elsewhere
(__alloc_contig_migrate_range; targets come from the normal allocator and cannot
land in the range because its free pages sit on the ISOLATE lists),
test_pages_isolated, take the pages off the free lists (isolate_freepages_range),
undo the isolation. On failure it reports the first page that could not move and
its kind ('unmovable', 'pinned', 'metadata:<design kind>', 'reserved', 'hole',
'cma', 'nomem', ...).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm import gfp as G
from memdesc.mm.internal import NO_ZONE
from memdesc.mm.migrate import allocated_heads, migrate_block, migrate_refusal
from memdesc.mm.mmzone import MAX_PAGE_ORDER, MIGRATE_CMA, MIGRATE_MOVABLE
from memdesc.mm.page_isolation import (
    start_isolate_page_range,
    test_pages_isolated,
    undo_isolate_page_range,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

CONTIG_KIND = "contig"


@dataclass
class ContigResult:
    """Outcome of alloc_contig_range / cma_alloc / alloc_contig_pages."""

    ok: bool
    pfn: int = -1
    nr: int = 0
    failed_pfn: int = -1
    blocker_kind: str | None = None
    reason: str | None = None  # 'isolate', 'migrate', 'busy', 'invalid', 'nomem', 'no-range'
    migrated: int = 0  # pages migrated (including attempts that later failed)
    attempts: int = 1
    seconds: float = 0.0
    chunks: list[tuple[int, int]] = field(default_factory=list)


def contig_chunks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) as naturally aligned (pfn, order) chunks, largest first fit."""
    out = []
    pfn = start
    while pfn < end:
        order = min(MAX_PAGE_ORDER, (pfn & -pfn).bit_length() - 1 if pfn else MAX_PAGE_ORDER)
        while pfn + (1 << order) > end:
            order -= 1
        out.append((pfn, order))
        pfn += 1 << order
    return out


def _range_problem(alloc: PageAllocator, start: int, end: int) -> tuple[int, str] | None:
    """pfn_range_valid_contig()-like checks: one zone, no holes, nothing reserved."""
    if start < 0 or end > alloc.nr_pfns or start >= end:
        return max(start, 0), "hole"
    zid = np.frombuffer(alloc.zid_of_pfn, dtype=np.uint8)[start:end]
    bad = np.nonzero(zid != zid[0])[0]
    if zid[0] == NO_ZONE:
        return start, "hole"
    if len(bad):
        return start + int(bad[0]), "zone"
    holes = np.nonzero(~alloc.present_mask[start:end])[0]
    if len(holes):
        return start + int(holes[0]), "hole"
    res = np.nonzero(alloc.reserved_np[start:end])[0]
    if len(res):
        return start + int(res[0]), "reserved"
    return None


def _take_range(alloc: PageAllocator, start: int, end: int) -> list[tuple[int, int]]:
    """isolate_freepages_range(): take every page of [start, end) off the free
    lists and record it allocated, chunk by chunk; returns the chunks."""
    chunks = contig_chunks(start, end)
    for pfn, order in chunks:
        alloc.isolate_free_range(pfn, order)
        alloc.mark_allocated(pfn, order, CONTIG_KIND, movable=False)
    return chunks


def alloc_contig_range(alloc: PageAllocator, start: int, end: int, migratetype: int = MIGRATE_MOVABLE
                       ) -> ContigResult:
    """alloc_contig_range(start, end, migratetype): every page of [start, end)
    allocated, or the first pfn (and its kind) that could not be had."""
    t0 = time.perf_counter()
    nr = end - start
    prob = _range_problem(alloc, start, end)
    if prob is not None:
        return ContigResult(False, start, nr, prob[0], prob[1], "invalid", seconds=time.perf_counter() - t0)
    fail = start_isolate_page_range(alloc, start, end, migratetype)
    if fail is not None:
        return ContigResult(False, start, nr, fail.pfn, fail.kind, "isolate", seconds=time.perf_counter() - t0)
    alloc.drain_all_pages()
    migrated = 0
    gfp = G.GFP_HIGHUSER_MOVABLE if migratetype == MIGRATE_CMA else None
    for head in allocated_heads(alloc, start, end):
        r = migrate_block(alloc, head, gfp=gfp)
        if not r.ok:
            undo_isolate_page_range(alloc, start, end, migratetype)
            reason = "nomem" if r.reason == "nomem" else "migrate"
            return ContigResult(False, start, nr, head, r.kind, reason, migrated,
                                seconds=time.perf_counter() - t0)
        migrated += 1 << r.order
    alloc.drain_all_pages()
    fail = test_pages_isolated(alloc, start, end)
    if fail is not None:
        undo_isolate_page_range(alloc, start, end, migratetype)
        return ContigResult(False, start, nr, fail.pfn, fail.kind, "busy", migrated,
                            seconds=time.perf_counter() - t0)
    chunks = _take_range(alloc, start, end)
    undo_isolate_page_range(alloc, start, end, migratetype)
    return ContigResult(True, start, nr, migrated=migrated, chunks=chunks, seconds=time.perf_counter() - t0)


def free_contig_range(alloc: PageAllocator, pfn: int, nr_pages: int) -> None:
    """free_contig_range(): give back a contiguous allocation chunk by chunk."""
    for p, order in contig_chunks(pfn, pfn + nr_pages):
        alloc.free_pages(p, order)


def _quick_blocker(alloc: PageAllocator, start: int, end: int, cma: bool) -> tuple[int, str] | None:
    """A cheap pre-check (pfn_range_valid_contig plus a scan for allocations that
    migration would refuse), to skip hopeless candidates in alloc_contig_pages."""
    prob = _range_problem(alloc, start, end)
    if prob is not None:
        return prob
    pbo = alloc.pageblock_order
    if not cma:
        pb = np.frombuffer(alloc.pb_mt, dtype=np.uint8)[start >> pbo:((end - 1) >> pbo) + 1]
        hit = np.nonzero(pb == MIGRATE_CMA)[0]
        if len(hit):
            return ((start >> pbo) + int(hit[0])) << pbo, "cma"
    for h in allocated_heads(alloc, start, end):
        why = migrate_refusal(alloc, h)
        if why is not None:
            return h, why[1]
    return None


def alloc_contig_pages(alloc: PageAllocator, nr_pages: int, align_order: int = 0,
                       gfp: int = G.GFP_HIGHUSER_MOVABLE, nid: int = 0) -> ContigResult:
    """alloc_contig_pages(): try aligned candidate ranges zone by zone (the gfp's
    zonelist, highest zone first) until alloc_contig_range() succeeds.

    Candidates start at ALIGN(zone_start, align) and step by nr_pages rounded up
    to the alignment (the kernel aligns to nr_pages; here 2^align_order)."""
    t0 = time.perf_counter()
    align = 1 << align_order
    step = -(-nr_pages // align) * align
    info = alloc.alloc_context(gfp)
    first: tuple[int, str] | None = None
    attempts = 0
    migrated = 0
    for z in alloc.zonelist(nid, info.highest):
        pfn = -(-z.start_pfn // align) * align
        while pfn + nr_pages <= z.end_pfn:
            quick = _quick_blocker(alloc, pfn, pfn + nr_pages, cma=False)
            if quick is not None:
                if first is None:
                    first = quick
                pfn += step
                continue
            attempts += 1
            r = alloc_contig_range(alloc, pfn, pfn + nr_pages, MIGRATE_MOVABLE)
            migrated += r.migrated
            if r.ok:
                r.migrated = migrated
                r.attempts = attempts
                r.seconds = time.perf_counter() - t0
                return r
            if first is None:
                first = (r.failed_pfn, r.blocker_kind or "busy")
            pfn += step
    fp, fk = first if first is not None else (-1, "no-range")
    return ContigResult(False, -1, nr_pages, fp, fk, "no-range" if first is None else "busy", migrated,
                        attempts, time.perf_counter() - t0)


class CmaArea:
    """struct cma (mm/cma.c) over [start_pfn, end_pfn): a bitmap with one bit per
    2^order_per_bit pages (order_per_bit 0 here) of pages handed out by cma_alloc."""

    def __init__(self, alloc: PageAllocator, start_pfn: int, end_pfn: int, name: str = "cma",
                 order_per_bit: int = 0) -> None:
        if order_per_bit != 0:
            raise ValueError("only order_per_bit 0 is modelled")
        self.alloc = alloc
        self.base_pfn = start_pfn
        self.count = end_pfn - start_pfn
        self.name = name
        self.order_per_bit = order_per_bit
        self.bitmap = np.zeros(self.count, dtype=bool)
        self.alloc_success = 0  # CMA_ALLOC_SUCCESS
        self.alloc_fail = 0  # CMA_ALLOC_FAIL
        self.pages_migrated = 0
        self.last: ContigResult | None = None

    @property
    def end_pfn(self) -> int:
        return self.base_pfn + self.count

    @property
    def used(self) -> int:
        return int(self.bitmap.sum())

    def _find_zero_area(self, start: int, count: int, mask: int, offset: int) -> int:
        """bitmap_find_next_zero_area_off(): first index >= start with
        (index + offset) & mask == 0 and count clear bits, or -1."""
        bm = self.bitmap
        idx = ((start + offset + mask) & ~mask) - offset
        while idx + count <= self.count:
            seg = np.nonzero(bm[idx:idx + count])[0]
            if not len(seg):
                return idx
            nxt = idx + int(seg[-1]) + 1
            idx = ((nxt + offset + mask) & ~mask) - offset
        return -1

    def cma_alloc(self, count: int, align_order: int = 0) -> ContigResult:
        """cma_alloc(cma, count, align): search the bitmap, mark, try
        alloc_contig_range(MIGRATE_CMA); on -EBUSY clear the bits and retry at the
        next aligned position (bitmap_no + mask + 1); -ENOMEM stops."""
        t0 = time.perf_counter()
        if count <= 0 or count > self.count:
            self.alloc_fail += 1
            self.last = ContigResult(False, -1, count, reason="invalid", blocker_kind="size")
            return self.last
        mask = (1 << align_order) - 1
        offset = (-self.base_pfn) & mask  # cma_bitmap_aligned_offset(): pfn aligned, not index
        start = 0
        attempts = 0
        migrated = 0
        first: ContigResult | None = None
        while True:
            bitmap_no = self._find_zero_area(start, count, mask, offset)
            if bitmap_no < 0:
                break
            self.bitmap[bitmap_no:bitmap_no + count] = True
            pfn = self.base_pfn + bitmap_no
            attempts += 1
            r = alloc_contig_range(self.alloc, pfn, pfn + count, MIGRATE_CMA)
            migrated += r.migrated
            if r.ok:
                r.attempts = attempts
                r.migrated = migrated
                r.seconds = time.perf_counter() - t0
                self.alloc_success += 1
                self.pages_migrated += migrated
                self.last = r
                return r
            self.bitmap[bitmap_no:bitmap_no + count] = False
            if first is None:
                first = r
            if r.reason == "nomem":
                break
            start = bitmap_no + mask + 1
        self.alloc_fail += 1
        self.pages_migrated += migrated
        if first is None:
            first = ContigResult(False, -1, count, reason="no-range", blocker_kind="cma-bitmap")
        first.attempts = attempts
        first.migrated = migrated
        first.seconds = time.perf_counter() - t0
        self.last = first
        return first

    def cma_release(self, pfn: int, count: int) -> bool:
        """cma_release(): free the pages and clear their bitmap bits. False if the
        range is not (entirely) an allocation of this area."""
        if pfn < self.base_pfn or pfn + count > self.end_pfn or count <= 0:
            return False
        i = pfn - self.base_pfn
        if not self.bitmap[i:i + count].all():
            return False
        free_contig_range(self.alloc, pfn, count)
        self.bitmap[i:i + count] = False
        return True


def cma_areas_of(alloc: PageAllocator) -> list[CmaArea]:
    """One CmaArea per machine.cma_areas entry (cma_init_reserved_mem)."""
    return [CmaArea(alloc, s, e, f"cma{i}") for i, (s, e) in enumerate(alloc.machine.cma_areas)]


__all__ = ["ContigResult", "CmaArea", "alloc_contig_range", "free_contig_range", "alloc_contig_pages",
           "contig_chunks", "cma_areas_of", "CONTIG_KIND"]
