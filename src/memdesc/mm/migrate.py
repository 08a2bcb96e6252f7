"""Page migration at block granularity: mm/migrate.c (migrate_pages, unmap_and_move).

A movable allocated block ``[pfn, pfn + 2^order)`` is moved to a new block: the
new block is allocated (``alloc_pages`` with a movable gfp, like
alloc_migration_target(), or a given free target pfn from compaction's free
scanner, like compaction_alloc()), the runner's handle map is told through
``alloc.on_migrate(old, new, order)``, the design's descriptor follows the data,
and the old block is freed (putback of the source folio).

Contract for designs (descriptors must follow the data):

* ``migrate_descriptor(old_pfn, new_pfn, order)`` (optional): move the
  descriptor of the allocated block at ``old_pfn`` to ``new_pfn``. The new
  block's pages have already left the buddy allocator and its alloc_state is
  set; after the call the core frees the old block with ``free_pages`` and the
  design's ``free_prepare(old_pfn, order)`` must treat it as descriptor-less.
  Without it, the new block gets a fresh descriptor (``prep_alloc``/``post_alloc``
  with the old block's kind) and the old one is released by ``free_prepare``.
* ``kind_of(pfn) -> str`` (optional): the memdesc kind of an allocated block
  (file, anon, ...). Default for a movable block: ``"anon"``.
* ``relocate_meta(pfn) -> new_pfn | -1`` (optional): move an allocator metadata
  page (radix-tree node, slab page of descriptors) elsewhere -- allocate the new
  page, copy/re-point, free the old one -- and return the new pfn, or -1.
  Without it metadata is unmovable and migration refuses with reason 'metadata'.
* ``meta_kind(pfn) -> str`` (optional): what a metadata page holds
  ('radix-node', 'slab:folio', 'struct-buddy', ...), used in blocker reports.

Refusals (the kernel's -EBUSY/-EAGAIN after retries): 'unmovable' (no
AS_MOVABLE: slab, page tables, kernel allocations), 'pinned' (AS_PINNED:
long-term pins, folio_maybe_dma_pinned), 'metadata' (AS_META without
relocate_meta), 'nomem' (no target block: the -ENOMEM of alloc_migration_target).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memdesc.mm import gfp as G
from memdesc.mm.mmzone import ZoneType
from memdesc.mm.page_alloc import AS_META, AS_MOVABLE, AS_ORDER_MASK, AS_PCP, AS_PINNED

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

REASON_UNMOVABLE = "unmovable"
REASON_PINNED = "pinned"
REASON_METADATA = "metadata"
REASON_NOMEM = "nomem"
REASON_NOT_ALLOCATED = "not-allocated"


@dataclass
class MigrateStats:
    """/proc/vmstat pgmigrate_success / pgmigrate_fail plus refusals by kind."""

    pgmigrate_success: int = 0  # pages
    pgmigrate_fail: int = 0  # pages
    blocks_migrated: int = 0
    meta_relocated: int = 0
    refused: dict[str, int] = field(default_factory=dict)


_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def migrate_stats(alloc: PageAllocator) -> MigrateStats:
    """The migration counters of one allocator (created on first use)."""
    s = _STATS.get(alloc)
    if s is None:
        s = _STATS[alloc] = MigrateStats()
    return s


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
    """'metadata:<design meta kind>' for reports (design.meta_kind if it has one)."""
    fn = getattr(alloc.design, "meta_kind", None)
    if fn is not None:
        try:
            k = fn(pfn)
        except Exception:  # noqa: BLE001 - a design's introspection must not break reports
            k = None
        if k:
            return f"metadata:{k}"
    return "metadata"


def migrate_refusal(alloc: PageAllocator, pfn: int) -> tuple[str, str] | None:
    """Why the allocated block at pfn cannot be migrated: (reason, kind) or None.

    Mirrors the checks of isolate_migratepages_block() / migrate_folio_unmap():
    metadata (unless the design relocates it), pinned, not movable."""
    st = alloc.alloc_state[pfn]
    if not st or st & AS_PCP:
        return REASON_NOT_ALLOCATED, REASON_NOT_ALLOCATED
    if st & AS_META:
        if getattr(alloc.design, "relocate_meta", None) is not None:
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


def _kind_of(alloc: PageAllocator, pfn: int) -> str:
    fn = getattr(alloc.design, "kind_of", None)
    if fn is not None:
        k = fn(pfn)
        if k:
            return k
    return "anon"


def migrate_block(alloc: PageAllocator, pfn: int, target_pfn: int = -1, gfp: int | None = None,
                  nid: int = -1, target_taken: bool = False) -> MigrateResult:
    """unmap_and_move() of one allocated block; returns where it went or why not.

    ``target_pfn`` >= 0: the caller (compaction's free scanner) chose a free
    block, taken here with take_free_block() (or already taken by the caller:
    ``target_taken``; on a refusal the caller gives it back); otherwise a new block is allocated with
    ``gfp`` (default: alloc_migration_target's). Direct compaction is disabled
    while allocating the target (no recursion into compaction)."""
    stats = migrate_stats(alloc)
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
        new = d.relocate_meta(pfn)  # type: ignore[attr-defined]
        if new < 0:
            kind = meta_kind(alloc, pfn)
            stats.refused[kind] = stats.refused.get(kind, 0) + 1
            stats.pgmigrate_fail += 1 << order
            return MigrateResult(False, pfn, -1, order, REASON_METADATA, kind)
        stats.meta_relocated += 1
        stats.pgmigrate_success += 1 << order
        return MigrateResult(True, pfn, new, order)
    kind = _kind_of(alloc, pfn)
    move_desc = getattr(d, "migrate_descriptor", None)
    keep = st & ~AS_ORDER_MASK & ~AS_PCP  # AS_MOVABLE and friends follow the data
    if target_pfn >= 0:
        if not target_taken and not alloc.take_free_block(target_pfn, order):
            stats.pgmigrate_fail += 1 << order
            return MigrateResult(False, pfn, -1, order, REASON_NOMEM, REASON_NOMEM)
        new = target_pfn
        if move_desc is not None:
            alloc.alloc_state[new] = (order + 1) | keep
            alloc.counters.pgalloc += 1
        else:
            alloc.mark_allocated(new, order, kind, movable=True)
            alloc.alloc_state[new] = (order + 1) | keep
    else:
        g = gfp if gfp is not None else migration_target_gfp(alloc, pfn)
        hook = alloc.compact_hook
        alloc.compact_hook = None
        try:
            if move_desc is not None:
                # the pages without a descriptor: get_page_from_freelist() at the
                # low, then the min watermark (no reclaim in the model)
                info = alloc.gfp_info(g)
                n = nid if nid >= 0 else alloc.zone_of(pfn).nid
                zl = alloc.zonelist(n, info.highest)
                new = alloc.get_page_from_freelist(g, order, info.fast_flags, zl, info, 0)
                if new < 0:
                    new = alloc.get_page_from_freelist(g, order, info.slow_flags, zl, info, 0)
                if new >= 0:
                    alloc.alloc_state[new] = (order + 1) | keep
                    alloc.counters.pgalloc += 1
            else:
                new = alloc.alloc_pages(g, order, nid=nid, kind=kind, movable=True)
                if new >= 0:
                    alloc.alloc_state[new] = (order + 1) | keep
        finally:
            alloc.compact_hook = hook
        if new < 0:
            stats.pgmigrate_fail += 1 << order
            stats.refused[REASON_NOMEM] = stats.refused.get(REASON_NOMEM, 0) + 1
            return MigrateResult(False, pfn, -1, order, REASON_NOMEM, REASON_NOMEM)
    if move_desc is not None:
        move_desc(pfn, new, order)
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
    import numpy as np

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


__all__ = ["MigrateResult", "MigrateStats", "migrate_block", "migrate_range", "migrate_refusal",
           "migrate_stats", "allocated_heads", "meta_kind", "block_order", "migration_target_gfp"]
