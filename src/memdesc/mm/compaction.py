"""Memory compaction: mm/compaction.c.

Two scanners per zone (compact_zone): the migrate scanner walks pageblocks from
the zone start upward isolating movable allocated blocks
(isolate_migratepages), the free scanner walks pageblocks from the zone end
downward collecting free blocks in MOVABLE/CMA pageblocks as migration targets
(isolate_freepages / suitable_migration_target, skipping free blocks of order
>= pageblock_order); blocks move in batches of COMPACT_CLUSTER_MAX; the run ends
when the scanners meet (COMPACT_COMPLETE) or, for a real order, when
__compact_finished() sees a suitable free page (COMPACT_SUCCESS).

Simplifications (docs/mm-ops.md): migration is per allocated block (a block of
order k needs an aligned free 2^k target; the kernel migrates order-0 folios
and skips compound pages, here blocks of order >= pageblock_order are skipped);
no pageblock skip bits and no cached scanner positions (every run scans the
zone from both ends, as compact_memory's full reset does); free targets are
taken lazily (isolate_free_page at migration time) instead of being held on a
private list; the pcp lists are drained when the migrate scanner leaves a
pageblock where it migrated something (the kernel drains the local CPU's).
Deferral (defer_compaction / compaction_deferred) is modelled per zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm.internal import ALLOC_CMA, AS_ORDER_MASK, AS_PCP, FPI_NONE, CompactStats, Op
from memdesc.mm.migrate import migrate_block, migrate_refusal
from memdesc.mm.mmzone import (
    FALLBACKS,
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    WMARK_LOW,
    WMARK_MIN,
    list_id,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator, Zone

COMPACT_CLUSTER_MAX = 32  # SWAP_CLUSTER_MAX
SYSCTL_EXTFRAG_THRESHOLD = 500
COMPACT_MAX_DEFER_SHIFT = 6

# enum compact_result (include/linux/compaction.h), as strings
COMPACT_NOT_SUITABLE_ZONE = "not_suitable_zone"
COMPACT_SKIPPED = "skipped"
COMPACT_DEFERRED = "deferred"
COMPACT_CONTINUE = "continue"
COMPACT_COMPLETE = "complete"
COMPACT_PARTIAL_SKIPPED = "partial_skipped"
COMPACT_SUCCESS = "success"


@dataclass
class CompactResult:
    """What one compact_zone() run did."""

    pages_scanned: int = 0  # compact_migrate_scanned
    pages_migrated: int = 0  # compact_success pages (pgmigrate_success during the run)
    free_scanned: int = 0  # compact_free_scanned
    success: bool = False  # a suitable free page exists at the end (order > 0)
    status: str = COMPACT_CONTINUE
    migrate_failed: int = 0  # blocks whose migration failed


def _record(alloc: PageAllocator, r: CompactResult) -> None:
    s = alloc.compact_stats
    s.runs += 1
    s.pages_scanned += r.pages_scanned
    s.free_scanned += r.free_scanned
    s.pages_migrated += r.pages_migrated
    if r.success:
        s.success += 1
    s.by_status[r.status] = s.by_status.get(r.status, 0) + 1


# -- fragmentation index, suitability -------------------------------------------------
def fragmentation_index(z: Zone, order: int) -> int:
    """__fragmentation_index() from fill_contig_page_info(): -1000 if a block of
    the order is free, 0 if nothing is free, else 0..1000 (1000 = fragmented)."""
    total = free_pages = suitable = 0
    for o in range(NR_PAGE_ORDERS):
        n = z.nr_free[o]
        total += n
        free_pages += n << o
        if o >= order:
            suitable += n << (o - order)
    if not total:
        return 0
    if suitable:
        return -1000
    return 1000 - (1000 + free_pages * 1000 // (1 << order)) // total


def compact_gap(order: int) -> int:
    """compact_gap(): 2 << order free pages needed as migration targets."""
    return 2 << order


def compaction_suitable(alloc: PageAllocator, z: Zone, order: int, highest_zoneidx: int = -1,
                        alloc_flags: int = ALLOC_CMA) -> str:
    """compaction_suit_allocation_order() + compaction_suitable(): SUCCESS if the
    order watermark already passes, SKIPPED if the order-0 watermark plus
    compact_gap fails, NOT_SUITABLE_ZONE for costly orders whose fragmentation
    index is in [0, extfrag_threshold] (lack of memory, not fragmentation)."""
    hz = highest_zoneidx if highest_zoneidx >= 0 else z.ztype
    if alloc.zone_watermark_ok(z, order, alloc.wmark_pages(z, WMARK_LOW), hz, alloc_flags, z.free_pages):
        return COMPACT_SUCCESS
    wmark = z.watermark[WMARK_LOW] if order > PAGE_ALLOC_COSTLY_ORDER else z.watermark[WMARK_MIN]
    wmark += compact_gap(order)
    if not alloc.zone_watermark_ok(z, 0, wmark, hz, ALLOC_CMA, z.free_pages):
        return COMPACT_SKIPPED
    if order > PAGE_ALLOC_COSTLY_ORDER:
        fi = fragmentation_index(z, order)
        if 0 <= fi <= SYSCTL_EXTFRAG_THRESHOLD:
            return COMPACT_NOT_SUITABLE_ZONE
    return COMPACT_CONTINUE


def compact_finished(alloc: PageAllocator, z: Zone, order: int, migratetype: int) -> bool:
    """__compact_finished()'s success test: a free page of at least ``order`` on
    the requested migratetype's list, or CMA for movable requests, or a
    fallback type from which a whole block could be claimed."""
    first = alloc.design.first_in_list
    for o in range(order, NR_PAGE_ORDERS):
        if not z.nr_free[o]:
            continue
        if first(list_id(z.zid, o, migratetype)) >= 0:
            return True
        if migratetype == MIGRATE_MOVABLE and first(list_id(z.zid, o, MIGRATE_CMA)) >= 0:
            return True
        if migratetype < MIGRATE_PCPTYPES:
            for fmt in FALLBACKS[migratetype]:
                if first(list_id(z.zid, o, fmt)) >= 0 and alloc.should_try_claim_block(o, migratetype):
                    return True
    return False


# -- deferral (struct zone's compact_considered / compact_defer_shift / compact_order_failed) --
def defer_compaction(alloc: PageAllocator, z: Zone, order: int) -> None:
    """defer_compaction(): back off exponentially after a failure."""
    z.compact_considered = 0
    z.compact_defer_shift = min(z.compact_defer_shift + 1, COMPACT_MAX_DEFER_SHIFT)
    z.compact_order_failed = min(z.compact_order_failed, order)


def compaction_deferred(alloc: PageAllocator, z: Zone, order: int) -> bool:
    """compaction_deferred(): skip this attempt while considered < 1 << shift."""
    if order < z.compact_order_failed:
        return False
    z.compact_considered += 1
    if z.compact_considered >= 1 << z.compact_defer_shift:
        z.compact_considered = 1 << z.compact_defer_shift
        return False
    return True


def compaction_defer_reset(alloc: PageAllocator, z: Zone, order: int, alloc_success: bool) -> None:
    """compaction_defer_reset()."""
    if alloc_success:
        z.compact_considered = 0
        z.compact_defer_shift = 0
    if order >= z.compact_order_failed:
        z.compact_order_failed = order + 1


# -- the scanners --------------------------------------------------------------------------
def _suitable_target_block(alloc: PageAllocator, pfn: int) -> bool:
    """suitable_migration_target(): MOVABLE or CMA pageblock (not isolated)."""
    mt = alloc.pb_mt[pfn >> alloc.pageblock_order]
    return mt == MIGRATE_MOVABLE or mt == MIGRATE_CMA


def _isolate_freepages_block(alloc: PageAllocator, start: int, end: int, out: list[list[int]]) -> int:
    """Free blocks of [start, end) with order < pageblock_order, as [pfn, end)
    runs appended to ``out``; returns pages scanned."""
    bo = alloc.design.buddy_order
    astate = alloc.alloc_state
    pbo = alloc.pageblock_order
    pfn = start
    while pfn < end:
        o = bo(pfn)
        if o >= 0:
            if o >= pbo:
                return end - start  # a whole free pageblock: not a target
            out.append([pfn, pfn + (1 << o)])
            pfn += 1 << o
            continue
        st = astate[pfn]
        pfn += 1 << ((st & AS_ORDER_MASK) - 1) if st and not st & AS_PCP else 1
    return end - start


def _take_target(alloc: PageAllocator, targets: list[list[int]], order: int) -> int:
    """compaction_alloc(): an aligned 2^order piece of an isolated free run,
    taken off the buddy lists; -1 if none fits."""
    size = 1 << order
    for i in range(len(targets) - 1, -1, -1):
        run = targets[i]
        p = (run[0] + size - 1) & ~(size - 1)
        while p + size <= run[1]:
            if alloc.isolate_free_page(p, order):
                if p == run[0]:
                    run[0] = p + size
                    if run[0] >= run[1]:
                        targets.pop(i)
                else:
                    targets.append([p + size, run[1]])
                    run[1] = p
                return p
            p += size
    return -1


def compact_zone(alloc: PageAllocator, z: Zone, order: int = -1, migratetype: int = MIGRATE_MOVABLE
                 ) -> CompactResult:
    """compact_zone(): run the two scanners until they meet or, for order > 0,
    until __compact_finished() sees a suitable free page (one Op.COMPACT operation)."""
    hooks = alloc._op_hooks
    if hooks:
        alloc.design.op_begin(Op.COMPACT, False, alloc.in_free_path > 0)
    try:
        return _compact_zone(alloc, z, order, migratetype)
    finally:
        if hooks:
            alloc.design.op_end(Op.COMPACT)


def _compact_zone(alloc: PageAllocator, z: Zone, order: int, migratetype: int) -> CompactResult:
    r = CompactResult()
    if not z.populated or z.managed == 0:
        r.status = COMPACT_SKIPPED
        _record(alloc, r)
        return r
    pbn = alloc.pageblock_nr_pages
    pbo = alloc.pageblock_order
    astate_np = np.frombuffer(alloc.alloc_state, dtype=np.uint8)
    migrate_pfn = z.start_pfn
    free_pfn = (z.end_pfn - 1) & ~(pbn - 1)  # pageblock_start_pfn(zone_end_pfn - 1)
    targets: list[list[int]] = []
    alloc.drain_all_pages(z)
    status = COMPACT_CONTINUE
    while True:
        block_start = migrate_pfn
        block_end = min((migrate_pfn | (pbn - 1)) + 1, z.end_pfn)
        if block_start >= free_pfn:
            status = COMPACT_COMPLETE
            break
        # isolate_migratepages(): one pageblock of movable blocks (not isolated ones)
        r.pages_scanned += block_end - block_start
        migrated_here = 0
        if alloc.pb_mt[block_start >> pbo] != MIGRATE_ISOLATE:
            seg = astate_np[block_start:block_end]
            heads = (np.nonzero((seg != 0) & ((seg & AS_PCP) == 0))[0] + block_start).tolist()
            batch = []
            for h in heads:
                st = alloc.alloc_state[h]
                o = (st & AS_ORDER_MASK) - 1
                if o >= pbo or migrate_refusal(alloc, h) is not None:
                    continue
                batch.append((h, o))
            for i in range(0, len(batch), COMPACT_CLUSTER_MAX):
                chunk = batch[i:i + COMPACT_CLUSTER_MAX]
                # isolate_freepages(): pageblocks down from the free scanner until the
                # isolated free pages cover the batch (cc->nr_freepages >= nr_migratepages)
                need = sum(1 << o for _, o in chunk)
                while sum(e - s for s, e in targets) < need and free_pfn > block_end:
                    fstart = free_pfn
                    free_pfn -= pbn
                    if _suitable_target_block(alloc, fstart) and fstart + pbn <= z.end_pfn:
                        r.free_scanned += _isolate_freepages_block(alloc, fstart, fstart + pbn, targets)
                if not targets:
                    break
                for h, o in chunk:
                    tgt = _take_target(alloc, targets, o)
                    if tgt < 0:
                        r.migrate_failed += 1  # compaction_alloc() -ENOMEM: source put back
                        continue
                    m = migrate_block(alloc, h, target_pfn=tgt, target_taken=True)
                    if m.ok:
                        r.pages_migrated += 1 << o
                        migrated_here += 1
                    else:
                        r.migrate_failed += 1
                        alloc.free_one_page(z, tgt, o, alloc.get_pageblock_migratetype(tgt), FPI_NONE)
        migrate_pfn = block_end
        if migrated_here:
            alloc.drain_all_pages(z)
        if order > 0 and compact_finished(alloc, z, order, migratetype):
            status = COMPACT_SUCCESS
            break
        if free_pfn <= migrate_pfn:
            status = COMPACT_COMPLETE
            break
    r.status = status
    r.success = order > 0 and compact_finished(alloc, z, order, migratetype)
    _record(alloc, r)
    return r


def compact_memory(alloc: PageAllocator, order: int = -1) -> list[CompactResult]:
    """compact_nodes(): /proc/sys/vm/compact_memory, every populated zone."""
    return [compact_zone(alloc, z, order) for z in alloc.zones if z.populated]


def try_to_compact_pages(alloc: PageAllocator, preferred: Zone, order: int, gfp: int, migratetype: int
                         ) -> bool:
    """try_to_compact_pages(): direct compaction over the request's zonelist.
    Returns True when some zone was compacted (not skipped/deferred), which is
    when __alloc_pages_direct_compact retries the freelists."""
    stats = alloc.compact_stats
    if alloc.compaction_running or order <= 0:
        return False
    info = alloc.alloc_context(gfp)
    zl = alloc.zonelist(preferred.nid, info.highest)
    alloc.compaction_running = True
    progress = False
    stats.stall += 1
    try:
        for z in zl:
            if compaction_deferred(alloc, z, order):
                stats.deferred += 1
                continue
            suit = compaction_suitable(alloc, z, order, info.highest, info.slow_flags)
            if suit == COMPACT_SUCCESS:
                progress = True
                break
            if suit != COMPACT_CONTINUE:
                stats.skipped += 1
                continue
            r = compact_zone(alloc, z, order, migratetype)
            progress = True
            if r.success:
                compaction_defer_reset(alloc, z, order, False)
                stats.direct_success += 1
                break
            defer_compaction(alloc, z, order)
        else:
            if progress:
                stats.fail += 1
    finally:
        alloc.compaction_running = False
    return progress


def install_direct_compaction(alloc: PageAllocator) -> CompactStats:
    """Make failed high-order allocations run direct compaction (alloc.compact_hook)."""

    def hook(preferred: Zone, order: int, gfp: int, migratetype: int) -> bool:
        return try_to_compact_pages(alloc, preferred, order, gfp, migratetype)

    alloc.compact_hook = hook
    return alloc.compact_stats


__all__ = ["CompactResult", "compact_zone", "compact_memory", "compaction_suitable",
           "fragmentation_index", "install_direct_compaction", "try_to_compact_pages",
           "compact_finished", "COMPACT_CLUSTER_MAX"]
