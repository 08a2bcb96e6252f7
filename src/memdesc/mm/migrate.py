"""Page migration at block granularity: mm/migrate.c (migrate_pages, unmap_and_move).

A movable allocated block ``[pfn, pfn + 2^order)`` is moved to a new block: the
new block is allocated (``alloc_pages`` with a movable gfp, like
alloc_migration_target(), or a given free target pfn from compaction's free
scanner, like compaction_alloc()), the runner's handle map is told through
``alloc.on_migrate(old, new, order)``, the new block gets a fresh descriptor
(``prep_alloc``/``post_alloc`` with the kind ``Design.kind_of`` reports, 'anon' by
default) as migration allocates a new folio, and the old block is freed with its
descriptor (putback of the source folio).

Allocator metadata (AS_META) is unmovable unless the design declares
``relocates_meta``; then ``Design.relocate_meta(pfn)`` moves the page (or refuses
with -1) and ``Design.meta_kind(pfn)`` names it in blocker reports.

Refusals (the kernel's -EBUSY/-EAGAIN after retries): 'unmovable' (no
AS_MOVABLE: slab, page tables, kernel allocations), 'pinned' (AS_PINNED:
long-term pins, folio_maybe_dma_pinned), 'metadata' (AS_META the design cannot
relocate), 'nomem' (no target block: the -ENOMEM of alloc_migration_target).
Each migration is one ``Op.MIGRATE`` operation for the design's op hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_META, AS_MOVABLE, AS_ORDER_MASK, AS_PCP, AS_PINNED, FPI_NONE, Op
from memdesc.mm.mmzone import ZoneType

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

REASON_UNMOVABLE = "unmovable"
REASON_PINNED = "pinned"
REASON_METADATA = "metadata"
REASON_NOMEM = "nomem"
REASON_NOT_ALLOCATED = "not-allocated"


@dataclass(slots=True)
class MigrateResult:
    ok: bool
    old_pfn: int
    new_pfn: int = -1
    order: int = 0
    reason: str | None = None  # refusal reason
    kind: str | None = None  # blocker kind for reports ('metadata:radix-node', ...)


def block_order(alloc: PageAllocator, pfn: int) -> int:
    """Order of the allocated block headed at pfn, or -1."""
    st = alloc.alloc_state[pfn]
    if not st or st & AS_PCP:
        return -1
    return (st & AS_ORDER_MASK) - 1


def meta_kind(alloc: PageAllocator, pfn: int) -> str:
    """'metadata:<design meta kind>' for reports (plain 'metadata' if the design has none)."""
    k = alloc.design.meta_kind(pfn)
    return f"metadata:{k}" if k else "metadata"


def migrate_refusal(alloc: PageAllocator, pfn: int) -> tuple[str, str] | None:
    """Why the allocated block at pfn cannot be migrated: (reason, kind) or None.

    Mirrors the checks of isolate_migratepages_block() / migrate_folio_unmap():
    metadata (unless the design relocates it), pinned, not movable."""
    st = alloc.alloc_state[pfn]
    if not st or st & AS_PCP:
        return REASON_NOT_ALLOCATED, REASON_NOT_ALLOCATED
    if st & AS_META:
        if alloc.design.relocates_meta:
            return None
        return REASON_METADATA, meta_kind(alloc, pfn)
    if st & AS_PINNED:
        return REASON_PINNED, REASON_PINNED
    if not st & AS_MOVABLE:
        return REASON_UNMOVABLE, REASON_UNMOVABLE
    return None


def migration_target_gfp(alloc: PageAllocator, pfn: int) -> int:
    """alloc_migration_target(): GFP_USER | __GFP_MOVABLE, plus __GFP_HIGHMEM for
    pages of ZONE_MOVABLE / HIGHMEM (i.e. GFP_HIGHUSER_MOVABLE)."""
    z = alloc.zone_of(pfn)
    if z.ztype in (ZoneType.MOVABLE, ZoneType.HIGHMEM):
        return G.GFP_HIGHUSER_MOVABLE
    return G.GFP_USER | getattr(G, "__GFP_MOVABLE")


def migrate_block(alloc: PageAllocator, pfn: int, target_pfn: int = -1, gfp: int | None = None,
                  nid: int = -1, target_taken: bool = False) -> MigrateResult:
    """unmap_and_move() of one allocated block; returns where it went or why not.

    ``target_pfn`` >= 0: the caller (compaction's free scanner) chose a free
    block, taken here with isolate_free_page() (or already taken by the caller:
    ``target_taken``; on a refusal the caller gives it back); otherwise a new block is
    allocated with ``gfp`` (default: alloc_migration_target's). Direct compaction is
    disabled while allocating the target (no recursion into compaction)."""
    hooks = alloc._op_hooks
    if hooks:
        alloc.design.op_begin(Op.MIGRATE, False, alloc.in_free_path > 0)
    try:
        return _migrate_block(alloc, pfn, target_pfn, gfp, nid, target_taken)
    finally:
        if hooks:
            alloc.design.op_end(Op.MIGRATE)


def _migrate_block(alloc: PageAllocator, pfn: int, target_pfn: int, gfp: int | None, nid: int,
                   target_taken: bool) -> MigrateResult:
    stats = alloc.migrate_stats
    order = block_order(alloc, pfn)
    refusal = migrate_refusal(alloc, pfn)
    if refusal is not None:
        reason, kind = refusal
        stats.refused[kind] = stats.refused.get(kind, 0) + 1
        if order >= 0:
            stats.pgmigrate_fail += 1 << order
        return MigrateResult(False, pfn, -1, max(order, 0), reason, kind)
    st = alloc.alloc_state[pfn]
    d = alloc.design
    if st & AS_META:
        new = d.relocate_meta(pfn)
        if new < 0:
            kind = meta_kind(alloc, pfn)
            stats.refused[kind] = stats.refused.get(kind, 0) + 1
            stats.pgmigrate_fail += 1 << order
            return MigrateResult(False, pfn, -1, order, REASON_METADATA, kind)
        if target_pfn >= 0 and target_taken:
            # the design allocated its own page for the metadata it moved (a movable_ops
            # page would take compaction's target): the unused target goes back to buddy
            alloc.free_one_page(alloc.zone_of(target_pfn), target_pfn, order,
                                alloc.get_pageblock_migratetype(target_pfn), FPI_NONE)
        stats.meta_relocated += 1
        stats.pgmigrate_success += 1 << order
        return MigrateResult(True, pfn, new, order)
    kind = d.kind_of(pfn) or "anon"
    keep = st & ~AS_ORDER_MASK & ~AS_PCP  # AS_MOVABLE and friends follow the data
    if target_pfn >= 0:
        if not target_taken and not alloc.isolate_free_page(target_pfn, order):
            stats.pgmigrate_fail += 1 << order
            return MigrateResult(False, pfn, -1, order, REASON_NOMEM, REASON_NOMEM)
        new = target_pfn
        alloc.mark_allocated(new, order, kind, movable=True)
        alloc.alloc_state[new] = (order + 1) | keep
    else:
        g = gfp if gfp is not None else migration_target_gfp(alloc, pfn)
        hook = alloc.compact_hook
        alloc.compact_hook = None
        try:
            new = alloc.alloc_pages(g, order, nid=nid, kind=kind, movable=True)
            if new >= 0:
                alloc.alloc_state[new] = (order + 1) | keep
        finally:
            alloc.compact_hook = hook
        if new < 0:
            stats.pgmigrate_fail += 1 << order
            stats.refused[REASON_NOMEM] = stats.refused.get(REASON_NOMEM, 0) + 1
            return MigrateResult(False, pfn, -1, order, REASON_NOMEM, REASON_NOMEM)
    if alloc.on_migrate is not None:
        alloc.on_migrate(pfn, new, order)
    alloc.free_pages(pfn, order)
    stats.pgmigrate_success += 1 << order
    stats.blocks_migrated += 1
    return MigrateResult(True, pfn, new, order)


def allocated_heads(alloc: PageAllocator, start: int, end: int) -> list[int]:
    """Heads of allocated blocks (not pcp) intersecting [start, end), ascending.

    A block whose head lies before ``start`` but reaches into the range is
    included (found with allocated_block_containing)."""
    st = np.frombuffer(alloc.alloc_state, dtype=np.uint8)[start:end]
    heads = (np.nonzero((st != 0) & ((st & AS_PCP) == 0))[0] + start).tolist()
    if start > 0 and (not heads or heads[0] != start):
        h = alloc.allocated_block_containing(start)
        if 0 <= h < start:
            heads.insert(0, h)
    return heads


def migrate_range(alloc: PageAllocator, start: int, end: int, gfp: int | None = None
                  ) -> tuple[int, MigrateResult | None]:
    """__alloc_contig_migrate_range() / do_migrate_range(): migrate every
    allocated block intersecting [start, end) elsewhere (targets from alloc_pages;
    the caller has isolated the range so no target can land inside it).

    Returns (pages migrated, first failure or None); stops at the first failure."""
    moved = 0
    for head in allocated_heads(alloc, start, end):
        r = migrate_block(alloc, head, gfp=gfp)
        if not r.ok:
            return moved, r
        moved += 1 << r.order
    return moved, None


__all__ = ["MigrateResult", "migrate_block", "migrate_range", "migrate_refusal", "allocated_heads", "meta_kind",
           "block_order", "migration_target_gfp"]
