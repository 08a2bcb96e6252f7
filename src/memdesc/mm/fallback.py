"""Migratetype fallback of mm/page_alloc.c, 6.1 and 6.19 side by side.

When no free block of the requested migratetype exists, __rmqueue() takes one from a
fallback type (``fallbacks[]``) and may claim the whole pageblock for the requested
type. The two modelled kernels do this differently:

* 6.1 (:class:`Fallback61`): __rmqueue_fallback() finds the largest fallback block,
  steal_suitable_fallback() moves it -- and, when it may steal the whole pageblock,
  every free page of the pageblock -- to the requested type's list, then __rmqueue()
  retries __rmqueue_smallest() from the top.
* 6.19 (:class:`Fallback619`): __rmqueue_claim() tries to claim a whole pageblock
  (try_to_claim_block(), counting free and compatible pages first with
  prep_move_freepages_block()), else __rmqueue_steal() takes a single fallback block
  without changing any pageblock; rmqueue_bulk() keeps an ``enum rmqueue_mode`` across
  its iterations so that a refill that had to fall back does not repeat failed searches.

Each class provides ``_rmqueue(zone, order, migratetype, alloc_flags, mode)`` returning
``(pfn, migratetype of the list the block came from, mode)``; PageAllocator is built with
one of them (memdesc.mm.page_alloc).

Upstream commits between the two (docs/model.md has the full list and the evidence):
e0932b6c1f94 "mm: page_alloc: consolidate free page accounting", c0cd6f557b90 .. fd919a85cd55
(Johannes Weiner's "freelist migratetype hygiene" series, 6.10: prep_move_freepages_block
counting before the move, move_freepages_block accounting), 90abee6d7895 "mm: page_alloc:
speed up fallbacks in rmqueue_bulk()" (6.15: __rmqueue_claim / __rmqueue_steal and
enum rmqueue_mode), c2f6ea38fc1b "don't steal single pages from biggest buddy",
a4138a2702a4 "group fallback functions together", e47f1f56dd82 "clarify terminology in
migratetype fallback code" (steal_suitable_fallback -> try_to_claim_block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memdesc.mm.internal import (
    ALLOC_CMA,
    ALLOC_KSWAPD,
    ALLOC_NOFRAGMENT,
    AS_MOVABLE,
    AS_ORDER_MASK,
    AS_PCP,
    RMQUEUE_CLAIM,
    RMQUEUE_CMA,
    RMQUEUE_NORMAL,
    RMQUEUE_STEAL,
)
from memdesc.mm.mmzone import (
    FALLBACKS,
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_PAGE_ORDERS,
    WMARK_HIGH,
    Zone,
    list_id,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

WATERMARK_BOOST_FACTOR = 15000
NOT_FOUND = (-1, -1)


class Fallback:
    """The fallback helpers both kernels share."""

    def should_try_claim_block(self: PageAllocator, order: int, start_mt: int) -> bool:
        """should_try_claim_block() (6.19; should_try_claim_block() in 6.1): whole pageblocks
        are claimed for large orders, and for unmovable/reclaimable requests."""
        if order >= self.pageblock_order:
            return True
        return (order >= self.pageblock_order // 2 or start_mt == MIGRATE_RECLAIMABLE
                or start_mt == MIGRATE_UNMOVABLE)

    def find_suitable_fallback(self: PageAllocator, z: Zone, order: int, mt: int) -> int:
        """find_suitable_fallback(): the first fallback migratetype with a free block of
        exactly ``order``, or -1."""
        if not z.nr_free[order]:
            return -1
        first = self.design.first_in_list
        for fmt in FALLBACKS[mt]:
            if first(list_id(z.zid, order, fmt)) >= 0:
                return fmt
        return -1

    def trace_mm_page_alloc_extfrag(self: PageAllocator, pfn: int, alloc_mt: int) -> None:
        """The mm_page_alloc_extfrag event (change_ownership: the pageblock now has the
        allocation's type)."""
        c = self.counters
        c.extfrag += 1
        if self.get_pageblock_migratetype(pfn) == alloc_mt:
            c.extfrag_change_ownership += 1

    def boost_watermark(self: PageAllocator, z: Zone) -> bool:
        """boost_watermark(): raise the zone's watermark by a pageblock after a fallback
        (kswapd then reclaims and compacts; the model decays the boost instead)."""
        if not WATERMARK_BOOST_FACTOR or self.pageblock_nr_pages * 4 > z.managed:
            return False
        max_boost = max(self.pageblock_nr_pages, z.watermark[WMARK_HIGH] * WATERMARK_BOOST_FACTOR // 10000)
        z.watermark_boost = min(z.watermark_boost + self.pageblock_nr_pages, max_boost)
        return True

    def prep_move_freepages_block(self: PageAllocator, start: int) -> tuple[int, int]:
        """prep_move_freepages_block(): free and movable pages in the pageblock at start."""
        free = movable = 0
        pfn = start
        end = start + self.pageblock_nr_pages
        bo = self.design.buddy_order
        astate = self.alloc_state
        while pfn < end:
            o = bo(pfn)
            if o >= 0:
                free += 1 << o
                pfn += 1 << o
                continue
            st = astate[pfn]
            if st and not st & AS_PCP:
                size = 1 << ((st & AS_ORDER_MASK) - 1)
                if st & AS_MOVABLE:
                    movable += min(size, end - pfn)
                pfn += size
                continue
            pfn += 1
        return free, movable

    def move_freepages_block(self: PageAllocator, z: Zone, pfn: int, mt: int) -> tuple[int, int]:
        """move_freepages_block(): every free buddy of the pageblock to the tail of mt's
        lists (move_to_free_list(), with the free-page accounting of both types), returning
        (pages moved, movable pages seen); (0, 0) if the block crosses the zone end."""
        start = pfn & ~(self.pageblock_nr_pages - 1)
        end = start + self.pageblock_nr_pages
        if start < z.start_pfn:
            start = pfn
        if end > z.end_pfn:
            return 0, 0
        moved = movable = 0
        p = start
        d = self.design
        bo = d.buddy_order
        astate = self.alloc_state
        zid = z.zid
        while p < end:
            o = bo(p)
            if o < 0:
                st = astate[p]
                if st and not st & AS_PCP:
                    size = 1 << ((st & AS_ORDER_MASK) - 1)
                    if st & AS_MOVABLE:
                        movable += min(size, end - p)
                    p += size
                else:
                    p += 1
                continue
            old = self.get_pageblock_migratetype(p)
            d.move_to_free_list(p, o, list_id(zid, o, mt))
            if old != mt:
                self.account_freepages(z, -(1 << o), old)
                self.account_freepages(z, 1 << o, mt)
            p += 1 << o
            moved += 1 << o
        return moved, movable

    def change_pageblock_range(self: PageAllocator, pfn: int, order: int, mt: int) -> None:
        """change_pageblock_range(): every pageblock of a block >= pageblock_order."""
        n = 1 << max(0, order - self.pageblock_order)
        b = pfn >> self.pageblock_order
        for i in range(n):
            if self.pb_mt[b + i] != mt:
                self.counters.pageblock_claims += 1
            self.pb_mt[b + i] = mt


class Fallback61(Fallback):
    """6.1: __rmqueue() with __rmqueue_fallback() and steal_suitable_fallback()."""

    def _rmqueue(self: PageAllocator, z: Zone, order: int, mt: int, alloc_flags: int, mode: int
                 ) -> tuple[int, int, int]:
        """__rmqueue() (6.1): CMA balancing, the requested type, CMA, then steal from a
        fallback type and retry. ``mode`` (6.19's rmqueue_mode) passes through unchanged."""
        if alloc_flags & ALLOC_CMA and z.nr_free_cma > z.free_pages // 2:
            pfn = self._rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn, MIGRATE_CMA, mode
        while True:
            pfn = self._rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn, mt, mode
            if alloc_flags & ALLOC_CMA:
                pfn = self._rmqueue_smallest(z, order, MIGRATE_CMA)
                if pfn >= 0:
                    return pfn, MIGRATE_CMA, mode
            if not self._rmqueue_fallback(z, order, mt, alloc_flags):
                return -1, -1, mode

    def _rmqueue_fallback(self: PageAllocator, z: Zone, order: int, start_mt: int, alloc_flags: int) -> bool:
        """__rmqueue_fallback() (6.1): steal from the largest fallback block (the
        smallest for movable requests that may not steal the whole pageblock)."""
        min_order = order
        if order < self.pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = self.pageblock_order
        found = -1
        co = MAX_PAGE_ORDER
        can_steal = False
        while co >= min_order:
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt != -1:
                can_steal = self.should_try_claim_block(co, start_mt)
                if not can_steal and start_mt == MIGRATE_MOVABLE and co > order:
                    # find_smallest
                    for co2 in range(order, NR_PAGE_ORDERS):
                        fmt = self.find_suitable_fallback(z, co2, start_mt)
                        if fmt != -1:
                            co = co2
                            can_steal = self.should_try_claim_block(co, start_mt)
                            break
                found = fmt
                break
            co -= 1
        if found == -1:
            return False
        pfn = self.design.first_in_list(list_id(z.zid, co, found))
        self.steal_suitable_fallback(z, pfn, co, alloc_flags, start_mt, can_steal)
        self.trace_mm_page_alloc_extfrag(pfn, start_mt)
        return True

    def steal_suitable_fallback(self: PageAllocator, z: Zone, pfn: int, co: int, alloc_flags: int,
                                start_mt: int, whole_block: bool) -> None:
        """steal_suitable_fallback() (6.1): claim the pageblock if enough of it is free
        or compatible, else move just this block to the requested type's list."""
        old = self.get_pageblock_migratetype(pfn)
        if old != MIGRATE_HIGHATOMIC:
            if co >= self.pageblock_order:
                self.change_pageblock_range(pfn, co, start_mt)
            else:
                if self.boost_watermark(z) and alloc_flags & ALLOC_KSWAPD:
                    z.boosted = True
                if whole_block:
                    free, movable = self.move_freepages_block(z, pfn, start_mt)
                    if free:
                        if start_mt == MIGRATE_MOVABLE:
                            alike = movable
                        elif old == MIGRATE_MOVABLE:
                            alike = self.pageblock_nr_pages - (free + movable)
                        else:
                            alike = 0
                        if free + alike >= 1 << (self.pageblock_order - 1):
                            self.set_pageblock_migratetype(pfn, start_mt)
                        return
        self.design.move_to_free_list(pfn, co, list_id(z.zid, co, start_mt))


class Fallback619(Fallback):
    """6.19: __rmqueue() with __rmqueue_claim(), __rmqueue_steal() and rmqueue_mode."""

    def _rmqueue(self: PageAllocator, z: Zone, order: int, mt: int, alloc_flags: int, mode: int
                 ) -> tuple[int, int, int]:
        """__rmqueue() (6.19): CMA balancing, then the searches from ``mode`` on (the
        requested type, CMA, claim, steal), returning the mode a refill continues with:
        CMA mode starts at the CMA fallback, steal mode goes straight to stealing, a
        claim resets it (the preferred free list is replenished)."""
        if alloc_flags & ALLOC_CMA and z.nr_free_cma > z.free_pages // 2:
            pfn = self._rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn, MIGRATE_CMA, mode
        if mode <= RMQUEUE_NORMAL:
            pfn = self._rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn, mt, mode
        if mode <= RMQUEUE_CMA and alloc_flags & ALLOC_CMA:
            pfn = self._rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn, MIGRATE_CMA, RMQUEUE_CMA
        if mode <= RMQUEUE_CLAIM:
            pfn = self._rmqueue_claim(z, order, mt, alloc_flags)
            if pfn >= 0:
                return pfn, mt, RMQUEUE_NORMAL
        if not alloc_flags & ALLOC_NOFRAGMENT:
            pfn, fmt = self._rmqueue_steal(z, order, mt)
            if pfn >= 0:
                return pfn, fmt, RMQUEUE_STEAL
        return -1, -1, mode

    def _rmqueue_claim(self: PageAllocator, z: Zone, order: int, start_mt: int, alloc_flags: int) -> int:
        """__rmqueue_claim() (90abee6d7895): claim a whole pageblock of a fallback type and
        take the block from the requested type's (now replenished) list."""
        min_order = order
        if order < self.pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = self.pageblock_order
        for co in range(MAX_PAGE_ORDER, min_order - 1, -1):
            if not self.should_try_claim_block(co, start_mt):
                return -1
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt == -1:
                continue
            pfn = self.design.first_in_list(list_id(z.zid, co, fmt))
            got = self.try_to_claim_block(z, pfn, co, order, start_mt, fmt, alloc_flags)
            if got >= 0:
                self.trace_mm_page_alloc_extfrag(got, start_mt)
                return got
        return -1

    def try_to_claim_block(self: PageAllocator, z: Zone, pfn: int, co: int, order: int, start_mt: int,
                           block_mt: int, alloc_flags: int) -> int:
        """try_to_claim_block() (6.1's steal_suitable_fallback(), renamed by e47f1f56dd82;
        counting first with prep_move_freepages_block() since the 6.10 hygiene series): a
        block >= pageblock_order changes type whole; a smaller one claims its pageblock if
        free + compatible pages are at least half of it. Returns the pfn taken from
        start_mt's lists, or -1."""
        if co >= self.pageblock_order:
            self.del_page_from_free_list(z, pfn, co)
            self.account_freepages(z, -(1 << co), block_mt)
            self.change_pageblock_range(pfn, co, start_mt)
            self.account_freepages(z, 1 << co, start_mt)
            self.expand(z, pfn, order, co, start_mt)
            return pfn
        if self.boost_watermark(z) and alloc_flags & ALLOC_KSWAPD:
            z.boosted = True
        start = pfn & ~(self.pageblock_nr_pages - 1)
        if not (z.start_pfn <= start and start + self.pageblock_nr_pages <= z.end_pfn):
            return -1
        free, movable = self.prep_move_freepages_block(start)
        if start_mt == MIGRATE_MOVABLE:
            alike = movable
        elif block_mt == MIGRATE_MOVABLE:
            alike = self.pageblock_nr_pages - (free + movable)
        else:
            alike = 0
        if free + alike >= 1 << (self.pageblock_order - 1):
            self.move_freepages_block(z, pfn, start_mt)
            self.set_pageblock_migratetype(pfn, start_mt)
            self.counters.pageblock_claims += 1
            return self._rmqueue_smallest(z, order, start_mt)
        return -1

    def _rmqueue_steal(self: PageAllocator, z: Zone, order: int, start_mt: int) -> tuple[int, int]:
        """__rmqueue_steal() (90abee6d7895, c2f6ea38fc1b): the smallest fallback block, no
        ownership change; returns (pfn, the fallback type it came from)."""
        for co in range(order, NR_PAGE_ORDERS):
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt == -1:
                continue
            pfn = self.design.first_in_list(list_id(z.zid, co, fmt))
            self.del_page_from_free_list(z, pfn, co)
            self.expand(z, pfn, order, co, fmt)
            self.trace_mm_page_alloc_extfrag(pfn, start_mt)
            return pfn, fmt
        return NOT_FOUND
