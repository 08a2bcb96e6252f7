"""mm/internal.h: alloc_flags, FPI flags, the allocation context, page state, errors.

Also the model's own per-page state (``PageAllocator.alloc_state``, one byte per pfn,
the model's page_owner) and the counters the core keeps (vm events), so that every
module of memdesc.mm and every design can name them without importing the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from memdesc.mm import gfp as G
from memdesc.mm.mmzone import NR_PAGE_ORDERS, WMARK_HIGH, WMARK_LOW, WMARK_MIN, ZoneType


class MemdescError(Exception):
    """Base of memdesc's own errors."""


class BadCall(MemdescError):
    """A bad call into the allocator (double free, wrong order, hole, ...).

    Raised before any state changes. ``pfn`` and ``order`` name the culprit."""

    def __init__(self, msg: str, pfn: int | None = None, order: int | None = None) -> None:
        super().__init__(msg)
        self.pfn = pfn
        self.order = order


# --- alloc_flags. Bits 0x10/0x20 mean ALLOC_HARDER/ALLOC_HIGH in 6.1 and
# ALLOC_NON_BLOCK/ALLOC_MIN_RESERVE in 6.19 (Mel Gorman's 2023 series, see
# docs/model.md "6.1 and 6.19"). ----------------------------------------------------
ALLOC_WMARK_MIN = WMARK_MIN
ALLOC_WMARK_LOW = WMARK_LOW
ALLOC_WMARK_HIGH = WMARK_HIGH
ALLOC_WMARK_MASK = 0x3
ALLOC_NO_WATERMARKS = 0x04
ALLOC_OOM = 0x08
ALLOC_HARDER = 0x10  # 6.1
ALLOC_NON_BLOCK = 0x10  # 6.19
ALLOC_HIGH = 0x20  # 6.1
ALLOC_MIN_RESERVE = 0x20  # 6.19
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200  # 6.19
ALLOC_KSWAPD = 0x800
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

# --- fpi_t (mm/page_alloc.c) --------------------------------------------------------
FPI_NONE = 0
FPI_TO_TAIL = 1

# --- the model's page state: PageAllocator.alloc_state[pfn] ----------------------------
# order+1 in bits 0-3 for the head of an allocated (or pcp) block, plus these flags.
AS_ORDER_MASK = 0x0F
AS_MOVABLE = 0x10  # LRU / __PageMovable: migration can move it
AS_META = 0x20  # allocator metadata (slab pages of descriptors, radix nodes, ...)
AS_PINNED = 0x40  # long-term pinned: migration refuses
AS_PCP = 0x80  # sitting on a per-CPU list (free to the user, allocated to buddy)

#: zid_of_pfn value of a pfn outside every zone
NO_ZONE = 255
HPAGE_PMD_ORDER = 9

# enum rmqueue_mode (6.19 __rmqueue(), kept across one rmqueue_bulk())
RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)

# why an allocation failed (AllocCounters.alloc_fail keys)
FAIL_WATERMARK = "watermark"
FAIL_FRAGMENTED = "no_free_block"
FAIL_DESCRIPTOR = "descriptor"
FAIL_INJECTED = "injected"

# module-level aliases: inside class bodies Python would mangle G.__GFP_* names
GFP_KSWAPD_RECLAIM = getattr(G, "__GFP_KSWAPD_RECLAIM")
GFP_HIGH = getattr(G, "__GFP_HIGH")
GFP_ATOMIC_BIT = getattr(G, "__GFP_ATOMIC")
GFP_NOMEMALLOC = getattr(G, "__GFP_NOMEMALLOC")
GFP_DIRECT_RECLAIM = getattr(G, "__GFP_DIRECT_RECLAIM")
GFP_MEMALLOC = getattr(G, "__GFP_MEMALLOC")


class Op(IntEnum):
    """Allocator operations a design sees begin and end (``Design.op_begin`` /
    ``Design.op_end``). The zone-locked ones nest inside ALLOC or FREE (or inside an mm
    operation): a pcp refill inside the allocation that missed the pcp list, a drain
    inside the free that overflowed it."""

    ALLOC = 0  # __alloc_pages(): one allocation, pcp hit or not
    FREE = 1  # __free_pages(): one free, to pcp or to buddy
    PCP_REFILL = 2  # rmqueue_bulk(), zone->lock held
    PCP_DRAIN = 3  # free_pcppages_bulk(), zone->lock held
    ALLOC_BUDDY = 4  # rmqueue_buddy(): an allocation straight from buddy, zone->lock held
    FREE_BUDDY = 5  # free_one_page(): a free straight to buddy (merging), zone->lock held
    COMPACT = 6  # compact_zone(): one run of the two scanners
    MIGRATE = 7  # migrate_pages() of one block (unmap_and_move)


#: operations that hold zone->lock
ZONE_LOCKED_OPS = frozenset({Op.PCP_REFILL, Op.PCP_DRAIN, Op.ALLOC_BUDDY, Op.FREE_BUDDY})


@dataclass
class AllocContext:
    """What prepare_alloc_pages() / gfp_to_alloc_flags() derive from a gfp mask
    (struct alloc_context plus the alloc_flags of the fast and slow paths), cached per
    mask by PageAllocator.alloc_context()."""

    highest: ZoneType  # ac->highest_zoneidx
    migratetype: int  # ac->migratetype
    fast_flags: int  # ALLOC_WMARK_LOW | alloc_flags_nofragment() | ...
    slow_flags: int  # gfp_to_alloc_flags()
    reserve_flags: int  # __gfp_pfmemalloc_flags()
    can_direct_reclaim: bool
    zl_by_node: list[list[Any]] = field(default_factory=list)  # zonelist per local node
    fast_by_node: list[int] = field(default_factory=list)  # fast-path alloc_flags per node
    st_base: int = 0  # alloc_state flags of the allocated block
    pcp_skip: bool = False  # 6.1 rmqueue(): MOVABLE without ALLOC_CMA bypasses pcp
    pindex: list[int] = field(default_factory=list)  # order_to_pindex() per order


@dataclass
class AllocCounters:
    """vm events and model counters of the core (/proc/vmstat pgalloc_*, pgfree, ...)."""

    pgalloc: int = 0
    pgfree: int = 0
    alloc_fail: dict[str, int] = field(default_factory=dict)
    alloc_fail_order: list[int] = field(default_factory=lambda: [0] * NR_PAGE_ORDERS)
    extfrag: int = 0  # mm_page_alloc_extfrag events
    extfrag_change_ownership: int = 0
    pageblock_claims: int = 0  # pageblocks whose migratetype changed by fallback
    zone_locked: int = 0  # mm_page_alloc_zone_locked events
    pcp_drain: int = 0  # mm_page_pcpu_drain events
    highatomic_reserved: int = 0
    highatomic_unreserved: int = 0
    slowpath: int = 0
    drain_all: int = 0
    max_recursion: int = 0
    meta_allocs: int = 0
    meta_frees: int = 0


@dataclass
class MigrateStats:
    """/proc/vmstat pgmigrate_success / pgmigrate_fail plus refusals by kind (mm/migrate.c)."""

    pgmigrate_success: int = 0  # pages
    pgmigrate_fail: int = 0  # pages
    blocks_migrated: int = 0
    meta_relocated: int = 0
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class CompactStats:
    """/proc/vmstat compact_* counters (mm/compaction.c) for reports."""

    runs: int = 0  # compact_zone calls
    stall: int = 0  # compact_stall: direct compaction attempts
    success: int = 0  # compact_zone runs that ended with a suitable free page
    direct_success: int = 0  # compact_success: direct compaction found a page
    fail: int = 0  # compact_fail
    deferred: int = 0
    skipped: int = 0
    pages_scanned: int = 0
    free_scanned: int = 0
    pages_migrated: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
