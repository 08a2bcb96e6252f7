"""include/linux/mmzone.h: constants and enums, struct zone and struct per_cpu_pages.

Zone and migratetype numbering inside memdesc is fixed (the values below); the
kernel's own numbering depends on its config (CONFIG_HIGHMEM, CONFIG_CMA), so the
text formats (traces, /proc) translate through :class:`memdesc.machine.Machine`,
which knows the configured zone list and whether CMA exists.

A free list, ``zone->free_area[order].free_list[migratetype]``, is named by one integer,
its list id (:func:`list_id`): designs own the lists, the core and the designs agree on
the numbering.
"""

from __future__ import annotations

from enum import IntEnum

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_PAGE_ORDER = 10  # 6.19 name; 6.1 calls it MAX_ORDER - 1
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER
PAGE_ALLOC_COSTLY_ORDER = 3
DEFAULT_PAGEBLOCK_ORDER = 9
SECTION_SIZE_BITS = 27  # x86_64: 128 MiB memory sections / memory blocks
PAGES_PER_SECTION = 1 << (SECTION_SIZE_BITS - PAGE_SHIFT)


class ZoneType(IntEnum):
    """Model zone types (enum zone_type); the kernel index depends on config."""

    DMA = 0
    DMA32 = 1
    NORMAL = 2
    HIGHMEM = 3
    MOVABLE = 4


ZONE_NAMES = {
    ZoneType.DMA: "DMA",
    ZoneType.DMA32: "DMA32",
    ZoneType.NORMAL: "Normal",
    ZoneType.HIGHMEM: "HighMem",
    ZoneType.MOVABLE: "Movable",
}
NR_ZONE_TYPES = len(ZoneType)


# enum migratetype with CONFIG_CMA and CONFIG_MEMORY_ISOLATION
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6

MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")


def is_migrate_movable(mt: int) -> bool:
    """is_migrate_movable(): MOVABLE or CMA."""
    return mt == MIGRATE_MOVABLE or mt == MIGRATE_CMA


def migratetype_is_mergeable(mt: int) -> bool:
    """migratetype_is_mergeable(): only the pcp types merge across pageblocks."""
    return mt < MIGRATE_PCPTYPES


# mm/page_alloc.c: fallbacks[MIGRATE_PCPTYPES][MIGRATE_PCPTYPES - 1]
FALLBACKS: tuple[tuple[int, ...], ...] = (
    (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),  # UNMOVABLE
    (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),  # MOVABLE
    (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),  # RECLAIMABLE
)

# Watermark indices (enum zone_watermarks)
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3


def list_id(zid: int, order: int, mt: int) -> int:
    """Flat index of ``free_area[order].free_list[mt]`` of zone ``zid`` (global zone index)."""
    return (zid * NR_PAGE_ORDERS + order) * MIGRATE_TYPES + mt


def split_list_id(lid: int) -> tuple[int, int, int]:
    """(zid, order, migratetype) of a list id."""
    zo, mt = divmod(lid, MIGRATE_TYPES)
    zid, order = divmod(zo, NR_PAGE_ORDERS)
    return zid, order, mt


class PerCpuPages:
    """struct per_cpu_pages: ``lists[pindex]`` are the pcp lists (head at the left).

    The list objects come from the design (``Design.new_pcp_list``; a
    ``collections.deque`` by default); ``count``, ``high``, ``batch`` and
    ``free_factor`` are the core's."""

    __slots__ = ("lists", "count", "high", "batch", "free_factor")

    def __init__(self, lists: list) -> None:
        self.lists = lists
        self.count = 0
        self.high = 0
        self.batch = 1
        self.free_factor = 0


class Zone:
    """struct zone: static layout plus the allocator's runtime state.

    ``zid`` is the model's global zone index (zones of all nodes in one list),
    ``node_zone_idx`` the kernel's zone index inside the node (config dependent)."""

    __slots__ = ("zid", "nid", "ztype", "name", "start_pfn", "end_pfn", "spanned", "present",
                 "managed", "reserved", "cma_pages", "watermark", "watermark_boost", "boosted",
                 "lowmem_reserve", "nr_free", "free_pages", "nr_free_cma", "nr_free_highatomic",
                 "nr_reserved_highatomic", "nr_isolate_pageblock", "pcp", "node_zone_idx",
                 "compact_considered", "compact_defer_shift", "compact_order_failed")

    def __init__(self, zid: int, nid: int, ztype: ZoneType, start: int, spanned: int, present: int) -> None:
        self.zid = zid
        self.nid = nid
        self.ztype = ztype
        self.name = ZONE_NAMES[ztype]
        self.start_pfn = start
        self.end_pfn = start + spanned
        self.spanned = spanned
        self.present = present
        self.managed = 0
        self.reserved = 0
        self.cma_pages = 0
        self.watermark = [0, 0, 0, 0]
        self.watermark_boost = 0
        self.boosted = False
        self.lowmem_reserve = [0] * len(ZoneType)
        self.nr_free = [0] * NR_PAGE_ORDERS  # free_area[order].nr_free
        self.free_pages = 0  # NR_FREE_PAGES
        self.nr_free_cma = 0  # NR_FREE_CMA_PAGES
        self.nr_free_highatomic = 0
        self.nr_reserved_highatomic = 0
        self.nr_isolate_pageblock = 0
        self.pcp: list[PerCpuPages] = []
        self.node_zone_idx = 0
        # CONFIG_COMPACTION deferral (defer_compaction / compaction_deferred)
        self.compact_considered = 0
        self.compact_defer_shift = 0
        self.compact_order_failed = NR_PAGE_ORDERS

    @property
    def populated(self) -> bool:
        """populated_zone()."""
        return self.present > 0

    def __repr__(self) -> str:
        return f"<Zone {self.nid}:{self.name} [{self.start_pfn:#x},{self.end_pfn:#x}) free={self.free_pages}>"
