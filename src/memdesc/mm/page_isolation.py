"""Pageblock isolation: mm/page_isolation.c.

A pageblock of type MIGRATE_ISOLATE keeps its free pages on the ISOLATE free
lists, out of NR_FREE_PAGES (the core's _account ignores ISOLATE), so nothing
allocates them while alloc_contig_range / offline_pages migrate the rest of
the range away. The type it had is kept in ``alloc.pb_saved`` and restored on
undo (6.19's separate PB_migrate_isolate bit; 6.1 restored the caller's type).

Model choices (see docs/mm-ops.md):

* isolating takes every free block of the pageblock off the lists and frees it
  again with type ISOLATE; a free block larger than a pageblock that straddles
  the pageblock (order > pageblock_order) is split first (isolate_free_page keeps
  the other pieces on their own lists), as 6.19 split_large_buddy() /
  6.1 isolate_single_pageblock() do. Re-freeing merges isolated buddies, as the
  kernel's isolated free pages merge with each other.
* undo takes the isolated free blocks off again and frees them with the
  restored type, so they merge with non-isolated buddies (the kernel re-frees
  blocks >= pageblock_order through __putback_isolated_page and moves the rest).
* only pageblocks lying entirely inside one zone can be isolated (the kernel's
  move_freepages_block refuses blocks crossing the zone end); others fail as
  'hole'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memdesc.mm.internal import AS_META, AS_MOVABLE, AS_ORDER_MASK, AS_PCP, FPI_TO_TAIL, NO_ZONE
from memdesc.mm.migrate import meta_kind, migrate_refusal
from memdesc.mm.mmzone import MIGRATE_CMA, MIGRATE_ISOLATE, ZoneType

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator, Zone

# isol_flags (include/linux/page-isolation.h, 6.1)
MEMORY_OFFLINE = 0x1
REPORT_FAILURE = 0x2


@dataclass(slots=True)
class IsolationFailure:
    """The first page that prevented isolation (has_unmovable_pages' result)."""

    pfn: int
    kind: str  # 'unmovable', 'metadata:<kind>', 'reserved', 'hole', 'cma', 'isolated'

    def __str__(self) -> str:
        return f"{self.kind} page at pfn {self.pfn:#x}"


def _pb_range(alloc: PageAllocator, start: int, end: int) -> tuple[int, int]:
    """The pageblock-aligned range covering [start, end)."""
    pbn = alloc.pageblock_nr_pages
    return start & ~(pbn - 1), -(-end // pbn) * pbn


def pageblock_in_zone(alloc: PageAllocator, pfn: int) -> Zone | None:
    """The zone holding the whole pageblock of pfn, or None (crosses a zone edge
    or lies outside every zone)."""
    pbn = alloc.pageblock_nr_pages
    s = pfn & ~(pbn - 1)
    if s + pbn > alloc.nr_pfns:
        return None
    zid = alloc.zid_of_pfn[s]
    if zid == NO_ZONE:
        return None
    z = alloc.zones[zid]
    if s < z.start_pfn or s + pbn > z.end_pfn:
        return None
    return z


def has_unmovable_pages(alloc: PageAllocator, start: int, end: int, migratetype: int, flags: int = 0
                        ) -> IsolationFailure | None:
    """has_unmovable_pages() over [start, end) (within one pageblock).

    CMA pageblocks are unmovable unless isolating for CMA (then nothing is
    checked, as in the kernel: migration finds the problems); reserved pages and
    holes are unmovable; in ZONE_MOVABLE everything else is assumed movable
    EXCEPT allocator metadata, which the model detects (the point of memdesc);
    free buddy / pcp pages and movable allocations are fine; anything else is
    unmovable."""
    if alloc.get_pageblock_migratetype(start) == MIGRATE_CMA:
        if migratetype == MIGRATE_CMA:
            return None
        return IsolationFailure(start, "cma")
    z = pageblock_in_zone(alloc, start)
    movable_zone = z is not None and z.ztype == ZoneType.MOVABLE
    astate = alloc.alloc_state
    bo = alloc.design.buddy_order
    present = alloc.present_mask
    reserved = alloc.reserved_np
    pfn = start
    # a block reaching in from before start
    if pfn & (alloc.pageblock_nr_pages - 1) == 0:
        h = alloc.free_block_containing(pfn)
        if 0 <= h < pfn:
            pfn = h + (1 << bo(h))
        else:
            h = alloc.allocated_block_containing(pfn)
            if 0 <= h < pfn:
                st = astate[h]
                if st & AS_META and not _meta_movable(alloc, h):
                    return IsolationFailure(h, meta_kind(alloc, h))
                if not (movable_zone or st & AS_MOVABLE):
                    return IsolationFailure(h, "unmovable")
                pfn = h + (1 << ((st & AS_ORDER_MASK) - 1))
    while pfn < end:
        if not present[pfn]:
            return IsolationFailure(pfn, "hole")
        if reserved[pfn]:
            return IsolationFailure(pfn, "reserved")
        o = bo(pfn)
        if o >= 0:
            pfn += 1 << o
            continue
        st = astate[pfn]
        if st & AS_PCP:
            pfn += 1 << ((st & AS_ORDER_MASK) - 1)
            continue
        if st:
            if st & AS_META and not _meta_movable(alloc, pfn):
                return IsolationFailure(pfn, meta_kind(alloc, pfn))
            if not (movable_zone or st & AS_MOVABLE):
                return IsolationFailure(pfn, "unmovable")
            pfn += 1 << ((st & AS_ORDER_MASK) - 1)
            continue
        # inside a free block whose head we skipped past (cannot happen) or a tail
        pfn += 1
    return None


def _meta_movable(alloc: PageAllocator, pfn: int) -> bool:
    """Allocator metadata the design can relocate (like __PageMovable): radix-deque's
    node pages under its movable-nodes policy (``Design.meta_movable``)."""
    return alloc.design.meta_movable(pfn)


def _free_blocks_of_pageblock(alloc: PageAllocator, start: int) -> list[tuple[int, int]]:
    """Free buddy blocks (head, order) inside the pageblock at start; a free
    block that covers the whole pageblock and more is returned as the
    pageblock-order piece (head = start) for isolate_free_page to split out."""
    pbo = alloc.pageblock_order
    end = start + (1 << pbo)
    bo = alloc.design.buddy_order
    astate = alloc.alloc_state
    h = alloc.free_block_containing(start)
    if h >= 0 and bo(h) >= pbo:
        return [(start, pbo)]
    out = []
    pfn = start
    while pfn < end:
        o = bo(pfn)
        if o >= 0:
            out.append((pfn, o))
            pfn += 1 << o
            continue
        st = astate[pfn]
        pfn += 1 << ((st & AS_ORDER_MASK) - 1) if st else 1
    return out


def set_migratetype_isolate(alloc: PageAllocator, pfn: int, migratetype: int, flags: int = 0
                            ) -> IsolationFailure | None:
    """set_migratetype_isolate(): one pageblock to MIGRATE_ISOLATE, or why not."""
    pbo = alloc.pageblock_order
    start = pfn & ~((1 << pbo) - 1)
    z = pageblock_in_zone(alloc, start)
    if z is None:
        return IsolationFailure(start, "hole")
    b = start >> pbo
    old = alloc.pb_mt[b]
    if old == MIGRATE_ISOLATE:
        return IsolationFailure(start, "isolated")  # -EBUSY: someone else isolated it
    fail = has_unmovable_pages(alloc, start, start + (1 << pbo), migratetype, flags)
    if fail is not None:
        return fail
    blocks = _free_blocks_of_pageblock(alloc, start)
    for head, o in blocks:
        if not alloc.isolate_free_page(head, o):  # accounts them out of their old type
            raise AssertionError(f"free block {head:#x} order {o} vanished")
    alloc.pb_saved[b] = old
    alloc.pb_mt[b] = MIGRATE_ISOLATE
    z.nr_isolate_pageblock += 1
    for head, o in blocks:
        alloc.free_one_page(z, head, o, MIGRATE_ISOLATE, FPI_TO_TAIL)
    return None


def unset_migratetype_isolate(alloc: PageAllocator, pfn: int) -> None:
    """unset_migratetype_isolate(): restore the saved type; the free pages go
    back to its lists and merge with free buddies outside the pageblock."""
    pbo = alloc.pageblock_order
    start = pfn & ~((1 << pbo) - 1)
    b = start >> pbo
    if alloc.pb_mt[b] != MIGRATE_ISOLATE:
        return
    z = alloc.zones[alloc.zid_of_pfn[start]]
    blocks = _free_blocks_of_pageblock(alloc, start)
    for head, o in blocks:
        if not alloc.isolate_free_page(head, o):  # ISOLATE: no accounting
            raise AssertionError(f"isolated free block {head:#x} order {o} vanished")
    mt = alloc.pb_saved[b]
    alloc.pb_mt[b] = mt
    alloc.pb_saved[b] = 0
    z.nr_isolate_pageblock -= 1
    for head, o in blocks:
        alloc.free_one_page(z, head, o, mt, FPI_TO_TAIL)


def start_isolate_page_range(alloc: PageAllocator, start: int, end: int, migratetype: int, flags: int = 0
                             ) -> IsolationFailure | None:
    """start_isolate_page_range(): isolate every pageblock covering [start, end);
    on failure undo what was isolated and return the offending page.
    Drains the pcp lists first so their pages are visible as free buddies."""
    s, e = _pb_range(alloc, start, end)
    alloc.drain_all_pages()
    done = []
    pbn = alloc.pageblock_nr_pages
    for p in range(s, e, pbn):
        fail = set_migratetype_isolate(alloc, p, migratetype, flags)
        if fail is not None:
            for q in done:
                unset_migratetype_isolate(alloc, q)
            return fail
        done.append(p)
    return None


def undo_isolate_page_range(alloc: PageAllocator, start: int, end: int, migratetype: int = -1) -> None:
    """undo_isolate_page_range(): every isolated pageblock of the range back to
    its saved type (``migratetype`` is accepted for the kernel's signature)."""
    s, e = _pb_range(alloc, start, end)
    for p in range(s, e, alloc.pageblock_nr_pages):
        unset_migratetype_isolate(alloc, p)


def test_pages_isolated(alloc: PageAllocator, start: int, end: int, flags: int = 0) -> IsolationFailure | None:
    """test_pages_isolated(): every pageblock isolated and every page of
    [start, end) free on an ISOLATE list; else the first page that is not."""
    pbo = alloc.pageblock_order
    s, e = _pb_range(alloc, start, end)
    for p in range(s, e, 1 << pbo):
        if alloc.pb_mt[p >> pbo] != MIGRATE_ISOLATE:
            return IsolationFailure(p, "not-isolated")
    bo = alloc.design.buddy_order
    pfn = start
    h = alloc.free_block_containing(pfn)
    if h >= 0:
        pfn = h + (1 << bo(h))
    while pfn < end:
        o = bo(pfn)
        if o < 0:
            st = alloc.alloc_state[pfn]
            if alloc.reserved_np[pfn]:
                return IsolationFailure(pfn, "reserved")
            if not alloc.present_mask[pfn]:
                return IsolationFailure(pfn, "hole")
            if st & AS_PCP:
                return IsolationFailure(pfn, "pcp")
            why = migrate_refusal(alloc, pfn) if st else None
            return IsolationFailure(pfn, why[1] if why else "busy")
        pfn += 1 << o
    return None


__all__ = ["IsolationFailure", "MEMORY_OFFLINE", "REPORT_FAILURE", "has_unmovable_pages",
           "set_migratetype_isolate", "unset_migratetype_isolate", "start_isolate_page_range",
           "undo_isolate_page_range", "test_pages_isolated", "pageblock_in_zone"]
