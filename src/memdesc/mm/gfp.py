"""GFP flags: include/linux/gfp_types.h bit values, gfp_zone(), gfp_migratetype(),
and the flag strings ftrace prints (include/trace/events/mmflags.h show_gfp_flags).

Two kernels are modelled: 6.19 (default) and 6.1 (the real traces' kernel). They
differ in __GFP_ATOMIC (0x200, 6.1 only), GFP_ATOMIC / GFP_NOWAIT composition, and
the order of the name table used for printing.
"""

from __future__ import annotations

from memdesc.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, ZoneType


class GfpError(ValueError):
    """An unknown flag name, or a contradictory zone-modifier combination."""


# --- single bits (identical values in 6.1 and 6.19 except __GFP_ATOMIC) -------------
__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_ATOMIC = 0x200  # 6.1 only; 6.19 has ___GFP_UNUSED_BIT here
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_ZEROTAGS = 0x800000
__GFP_NO_OBJ_EXT = 0x1000000  # 6.19, without KASAN_HW_TAGS and LOCKDEP

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE
GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE
GFP_MOVABLE_SHIFT = 3

GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE
GFP_TRANSHUGE_LIGHT = (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM
# Version-dependent composites: 6.19 values are the module defaults.
GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_ATOMIC_61 = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM
GFP_NOWAIT_61 = __GFP_KSWAPD_RECLAIM

KERNELS = ("6.1", "6.19")


def _composites(kernel: str) -> list[tuple[str, int]]:
    atomic = GFP_ATOMIC_61 if kernel == "6.1" else GFP_ATOMIC
    nowait = GFP_NOWAIT_61 if kernel == "6.1" else GFP_NOWAIT
    return [
        ("GFP_TRANSHUGE", GFP_TRANSHUGE),
        ("GFP_TRANSHUGE_LIGHT", GFP_TRANSHUGE_LIGHT),
        ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE),
        ("GFP_HIGHUSER", GFP_HIGHUSER),
        ("GFP_USER", GFP_USER),
        ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
        ("GFP_KERNEL", GFP_KERNEL),
        ("GFP_NOFS", GFP_NOFS),
        ("GFP_ATOMIC", atomic),
        ("GFP_NOIO", GFP_NOIO),
        ("GFP_NOWAIT", nowait),
    ]


def _print_table(kernel: str) -> list[tuple[str, int]]:
    """The __def_gfpflag_names table in the order the kernel walks it."""
    table = _composites(kernel)
    if kernel == "6.1":
        table += [
            ("GFP_DMA", __GFP_DMA), ("__GFP_HIGHMEM", __GFP_HIGHMEM), ("GFP_DMA32", __GFP_DMA32),
            ("__GFP_HIGH", __GFP_HIGH), ("__GFP_ATOMIC", __GFP_ATOMIC), ("__GFP_IO", __GFP_IO),
            ("__GFP_FS", __GFP_FS), ("__GFP_NOWARN", __GFP_NOWARN),
            ("__GFP_RETRY_MAYFAIL", __GFP_RETRY_MAYFAIL), ("__GFP_NOFAIL", __GFP_NOFAIL),
            ("__GFP_NORETRY", __GFP_NORETRY), ("__GFP_COMP", __GFP_COMP), ("__GFP_ZERO", __GFP_ZERO),
            ("__GFP_NOMEMALLOC", __GFP_NOMEMALLOC), ("__GFP_MEMALLOC", __GFP_MEMALLOC),
            ("__GFP_HARDWALL", __GFP_HARDWALL), ("__GFP_THISNODE", __GFP_THISNODE),
            ("__GFP_RECLAIMABLE", __GFP_RECLAIMABLE), ("__GFP_MOVABLE", __GFP_MOVABLE),
            ("__GFP_ACCOUNT", __GFP_ACCOUNT), ("__GFP_WRITE", __GFP_WRITE),
            ("__GFP_RECLAIM", __GFP_RECLAIM), ("__GFP_DIRECT_RECLAIM", __GFP_DIRECT_RECLAIM),
            ("__GFP_KSWAPD_RECLAIM", __GFP_KSWAPD_RECLAIM), ("__GFP_ZEROTAGS", __GFP_ZEROTAGS),
        ]
    else:
        table += [
            ("GFP_DMA", __GFP_DMA), ("GFP_DMA32", __GFP_DMA32), ("__GFP_RECLAIM", __GFP_RECLAIM),
            ("__GFP_DMA", __GFP_DMA), ("__GFP_HIGHMEM", __GFP_HIGHMEM), ("__GFP_DMA32", __GFP_DMA32),
            ("__GFP_MOVABLE", __GFP_MOVABLE), ("__GFP_RECLAIMABLE", __GFP_RECLAIMABLE),
            ("__GFP_HIGH", __GFP_HIGH), ("__GFP_IO", __GFP_IO), ("__GFP_FS", __GFP_FS),
            ("__GFP_ZERO", __GFP_ZERO), ("__GFP_DIRECT_RECLAIM", __GFP_DIRECT_RECLAIM),
            ("__GFP_KSWAPD_RECLAIM", __GFP_KSWAPD_RECLAIM), ("__GFP_WRITE", __GFP_WRITE),
            ("__GFP_NOWARN", __GFP_NOWARN), ("__GFP_RETRY_MAYFAIL", __GFP_RETRY_MAYFAIL),
            ("__GFP_NOFAIL", __GFP_NOFAIL), ("__GFP_NORETRY", __GFP_NORETRY),
            ("__GFP_MEMALLOC", __GFP_MEMALLOC), ("__GFP_COMP", __GFP_COMP),
            ("__GFP_NOMEMALLOC", __GFP_NOMEMALLOC), ("__GFP_HARDWALL", __GFP_HARDWALL),
            ("__GFP_THISNODE", __GFP_THISNODE), ("__GFP_ACCOUNT", __GFP_ACCOUNT),
            ("__GFP_ZEROTAGS", __GFP_ZEROTAGS), ("__GFP_NO_OBJ_EXT", __GFP_NO_OBJ_EXT),
        ]
    return table


_TABLES = {k: _print_table(k) for k in KERNELS}
_NAMES = {k: dict(_TABLES[k]) for k in KERNELS}
# Names accepted on input for either kernel (API users may write any of them).
_EXTRA_NAMES = {"__GFP_ATOMIC": __GFP_ATOMIC, "GFP_ATOMIC": GFP_ATOMIC, "GFP_NOWAIT": GFP_NOWAIT}


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise GfpError(f"unknown kernel version {kernel!r} (known: {', '.join(KERNELS)})")


def parse_gfp(text: str, kernel: str = "6.19") -> int:
    """Parse a flag string as ftrace prints it (``GFP_KERNEL|__GFP_ZERO``, ``none``,
    trailing hex ``0x...``) or a plain number into a mask for ``kernel``."""
    _check_kernel(kernel)
    text = text.strip()
    if not text:
        raise GfpError("empty gfp flag string")
    if text == "none":
        return 0
    names = _NAMES[kernel]
    mask = 0
    for part in text.split("|"):
        part = part.strip()
        if part in names:
            mask |= names[part]
        elif part.startswith("0x") or part.isdigit():
            try:
                mask |= int(part, 0)
            except ValueError:
                raise GfpError(f"bad gfp number {part!r} in {text!r}") from None
        elif part in _EXTRA_NAMES and (part != "__GFP_ATOMIC" or kernel == "6.1"):
            mask |= _NAMES[kernel].get(part, _EXTRA_NAMES[part])
        else:
            raise GfpError(f"unknown gfp flag {part!r} in {text!r} (kernel {kernel})")
    return mask


def format_gfp(mask: int, kernel: str = "6.19") -> str:
    """show_gfp_flags(): walk the table in order, print entries whose bits are all
    still set and clear them; leftover bits as hex; 0 prints ``none``."""
    _check_kernel(kernel)
    if mask == 0:
        return "none"
    parts: list[str] = []
    rest = mask
    for name, bits in _TABLES[kernel]:
        if bits and (rest & bits) == bits:
            parts.append(name)
            rest &= ~bits
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


# GFP_ZONE_TABLE: zone-modifier combination -> highest zone; None = BAD (VM_BUG_ON).
_ZONE_TABLE: dict[int, ZoneType | None] = {
    0: ZoneType.NORMAL,
    __GFP_DMA: ZoneType.DMA,
    __GFP_HIGHMEM: ZoneType.HIGHMEM,
    __GFP_DMA32: ZoneType.DMA32,
    __GFP_MOVABLE: ZoneType.NORMAL,
    __GFP_MOVABLE | __GFP_DMA: ZoneType.DMA,
    __GFP_MOVABLE | __GFP_HIGHMEM: ZoneType.MOVABLE,
    __GFP_MOVABLE | __GFP_DMA32: ZoneType.DMA32,
}


def gfp_zone(mask: int) -> ZoneType:
    """gfp_zone(): the highest zone type the request may use (before config
    fallback: a machine without HIGHMEM treats HIGHMEM as NORMAL, see Machine)."""
    bits = mask & GFP_ZONEMASK
    zt = _ZONE_TABLE.get(bits)
    if zt is None:
        raise GfpError(f"contradictory zone modifiers {format_gfp(bits)} in gfp mask {mask:#x}")
    return zt


def gfp_migratetype(mask: int) -> int:
    """gfp_migratetype(): (flags & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT."""
    bits = mask & GFP_MOVABLE_MASK
    if bits == GFP_MOVABLE_MASK:
        raise GfpError(f"gfp mask {mask:#x} sets both __GFP_MOVABLE and __GFP_RECLAIMABLE")
    if bits == __GFP_MOVABLE:
        return MIGRATE_MOVABLE
    if bits == __GFP_RECLAIMABLE:
        return MIGRATE_RECLAIMABLE
    return MIGRATE_UNMOVABLE


def validate_gfp(mask: int, kernel: str = "6.19") -> None:
    """Reject masks the kernel would BUG on or that name bits this kernel lacks."""
    if mask < 0 or mask >= 1 << 26:
        raise GfpError(f"gfp mask {mask:#x} out of range")
    gfp_zone(mask)
    gfp_migratetype(mask)
    if kernel == "6.19" and mask & __GFP_ATOMIC:
        raise GfpError(f"gfp mask {mask:#x} sets bit 0x200 (__GFP_ATOMIC), unused in 6.19")
