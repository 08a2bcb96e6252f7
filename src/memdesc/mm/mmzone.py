"""Constants and enums of include/linux/mmzone.h that the whole model shares.

Zone and migratetype numbering inside memdesc is fixed (the values below); the
kernel's own numbering depends on its config (CONFIG_HIGHMEM, CONFIG_CMA), so the
text formats (traces, /proc) translate through :class:`memdesc.machine.Machine`,
which knows the configured zone list and whether CMA exists.
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


class MigrateType(IntEnum):
    """enum migratetype with CONFIG_CMA and CONFIG_MEMORY_ISOLATION."""

    UNMOVABLE = 0
    MOVABLE = 1
    RECLAIMABLE = 2
    HIGHATOMIC = 3
    CMA = 4
    ISOLATE = 5


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
