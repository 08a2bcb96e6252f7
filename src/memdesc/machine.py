"""Machine layout: nodes, zones, holes, reserved ranges and CMA areas.

Mirrors what the kernel computes at boot in mm/mm_init.c (free_area_init,
find_zone_movable_pfns_for_nodes, zone_spanned_pages_in_node) and
arch/x86 (e820 layout, MAX_DMA_PFN, MAX_DMA32_PFN, 32-bit MAXMEM/highmem), from
either a preset string or a real /proc/zoneinfo.

Spec grammar (``memdesc machine --help`` repeats it)::

    x86_64:16G[,movablecore=25%|4G][,kernelcore=..][,cma=256M][,cpus=N][,pageblock_order=N]
    i386:4G[,...]          32-bit PAE box: lowmem ends at 896 MiB, HIGHMEM above
    numa:2x8G[,...]        N nodes of equal size (x86_64 layout on node 0)
    zoneinfo:PATH[,...]    a real /proc/zoneinfo (sibling dmesg*.txt gives the CMA base)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from memdesc.mm.mmzone import (
    DEFAULT_PAGEBLOCK_ORDER,
    MAX_ORDER_NR_PAGES,
    PAGE_SHIFT,
    ZONE_NAMES,
    ZoneType,
)


class MachineSpecError(ValueError):
    """A machine spec that cannot be parsed or laid out."""


KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1 << 50}


def parse_size(text: str) -> int:
    """Parse ``16G``, ``256M``, ``1T``, ``4096`` (bytes) into bytes."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise MachineSpecError(f"bad size {text!r} (examples: 16G, 256M, 1T)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(nbytes: int) -> str:
    for unit, mult in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult}{unit}"
    return f"{nbytes}B"


@dataclass(frozen=True)
class ZoneSpec:
    """One zone of one node: struct zone's static part."""

    nid: int
    ztype: ZoneType
    start_pfn: int
    spanned_pages: int
    present_pages: int
    reserved_pages: int = 0  # present but never given to the buddy allocator (memblock)
    cma_pages: int = 0

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned_pages

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.ztype]


@dataclass(frozen=True)
class Machine:
    """A machine layout. Everything is in pfns of 4 KiB pages."""

    arch: str  # "x86_64" or "i386"
    nr_nodes: int
    zones: tuple[ZoneSpec, ...]  # populated or not, ordered by (nid, ztype)
    holes: tuple[tuple[int, int], ...]  # [start, end) pfn ranges with no RAM
    cma_areas: tuple[tuple[int, int], ...] = ()  # [start, end) pfn ranges of MIGRATE_CMA
    pageblock_order: int = DEFAULT_PAGEBLOCK_ORDER
    nr_cpus: int = 2
    spec: str = ""
    config_cma: bool = False  # CONFIG_CMA: the kernel's migratetype numbering has CMA
    min_free_kbytes: int | None = None  # None: computed as the kernel does
    source: dict = field(default_factory=dict, compare=False)

    @property
    def word_size(self) -> int:
        return 8 if self.arch == "x86_64" else 4

    @property
    def max_pfn(self) -> int:
        return max((z.end_pfn for z in self.zones if z.spanned_pages), default=0)

    @property
    def present_pages(self) -> int:
        return sum(z.present_pages for z in self.zones)

    @property
    def pageblock_nr_pages(self) -> int:
        return 1 << self.pageblock_order

    @property
    def kernel_zone_types(self) -> tuple[ZoneType, ...]:
        """Zone types configured in the kernel (MAX_NR_ZONES order, without DEVICE)."""
        if self.arch == "i386":
            return (ZoneType.DMA, ZoneType.NORMAL, ZoneType.HIGHMEM, ZoneType.MOVABLE)
        return (ZoneType.DMA, ZoneType.DMA32, ZoneType.NORMAL, ZoneType.MOVABLE)

    @property
    def kernel_zone_names(self) -> tuple[str, ...]:
        """Zone names as /proc/zoneinfo lists them (x86_64 adds Device)."""
        names = tuple(ZONE_NAMES[z] for z in self.kernel_zone_types)
        return names + (("Device",) if self.arch == "x86_64" else ())

    def kernel_zone_index(self, ztype: ZoneType) -> int:
        return self.kernel_zone_types.index(ztype)

    def zone(self, nid: int, ztype: ZoneType) -> ZoneSpec | None:
        for z in self.zones:
            if z.nid == nid and z.ztype == ztype:
                return z
        return None

    def has_zone_type(self, ztype: ZoneType) -> bool:
        return any(z.ztype == ztype and z.present_pages for z in self.zones)

    def describe(self) -> str:
        lines = [f"machine {self.spec or self.arch}: {self.arch}, {self.nr_nodes} node(s), "
                 f"{format_size(self.present_pages << PAGE_SHIFT)} present, max_pfn {self.max_pfn:#x}, "
                 f"pageblock order {self.pageblock_order}, {self.nr_cpus} cpus"]
        for z in self.zones:
            if not z.spanned_pages:
                continue
            lines.append(
                f"  node {z.nid} {z.name:8s} pfn [{z.start_pfn:#x}, {z.end_pfn:#x}) spanned {z.spanned_pages} "
                f"present {z.present_pages} reserved {z.reserved_pages} cma {z.cma_pages}")
        for s, e in self.holes:
            lines.append(f"  hole pfn [{s:#x}, {e:#x}) {e - s} pages")
        for s, e in self.cma_areas:
            lines.append(f"  cma area pfn [{s:#x}, {e:#x}) {format_size((e - s) << PAGE_SHIFT)}")
        return "\n".join(lines)


# --- presets -----------------------------------------------------------------------

_LEGACY_HOLE = (0x9F, 0x100)  # 636 KiB..1 MiB: EBDA, VGA, BIOS (e820 reserved)
_MAX_DMA_PFN = (16 * MiB) >> PAGE_SHIFT
_MAX_DMA32_PFN = (4 * GiB) >> PAGE_SHIFT
_PCI_HOLE_START = (3 * GiB) >> PAGE_SHIFT  # RAM above 3 GiB is remapped above 4 GiB
_I386_LOWMEM_END = (896 * MiB) >> PAGE_SHIFT


def _e820_ranges(start_pfn: int, nr_pages: int, first_node: bool) -> list[tuple[int, int]]:
    """RAM ranges of one node: the first node has pfn 0 and the legacy hole
    excluded and leaves the 3-4 GiB PCI hole; later nodes are contiguous."""
    if not first_node:
        return [(start_pfn, start_pfn + nr_pages)]
    ranges = [(1, _LEGACY_HOLE[0])]
    left = nr_pages - (_LEGACY_HOLE[0] - 1)
    low = min(left, _PCI_HOLE_START - _LEGACY_HOLE[1])
    ranges.append((_LEGACY_HOLE[1], _LEGACY_HOLE[1] + low))
    left -= low
    if left > 0:
        ranges.append((_MAX_DMA32_PFN, _MAX_DMA32_PFN + left))
    return ranges


def _split_zones(nid: int, ranges: list[tuple[int, int]], bounds: list[tuple[ZoneType, int]]
                 ) -> list[ZoneSpec]:
    """Cut a node's RAM ranges into zones by upper pfn bounds (arch zone limits)."""
    zones = []
    lo_bound = 0
    for ztype, hi_bound in bounds:
        pieces = [(max(s, lo_bound), min(e, hi_bound)) for s, e in ranges]
        pieces = [(s, e) for s, e in pieces if s < e]
        if pieces:
            start, end = pieces[0][0], pieces[-1][1]
            present = sum(e - s for s, e in pieces)
            zones.append(ZoneSpec(nid, ztype, start, end - start, present))
        else:
            zones.append(ZoneSpec(nid, ztype, 0, 0, 0))
        lo_bound = hi_bound
    return zones


def _holes_of(zones: list[ZoneSpec], ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    holes = []
    for z in zones:
        if not z.spanned_pages:
            continue
        cur = z.start_pfn
        for s, e in sorted(ranges):
            s, e = max(s, z.start_pfn), min(e, z.end_pfn)
            if s >= e:
                continue
            if s > cur:
                holes.append((cur, s))
            cur = max(cur, e)
        if cur < z.end_pfn:
            holes.append((cur, z.end_pfn))
    return holes


def _carve_movable(zones: list[ZoneSpec], ranges: list[tuple[int, int]], movable_pages: int
                   ) -> list[ZoneSpec]:
    """find_zone_movable_pfns_for_nodes(): ZONE_MOVABLE takes the top of the
    node's highest populated kernel zone, its start rounded up to MAX_ORDER_NR_PAGES."""
    if movable_pages <= 0:
        return zones
    idx = max(i for i, z in enumerate(zones) if z.present_pages and z.ztype != ZoneType.MOVABLE)
    src = zones[idx]
    start = src.end_pfn - movable_pages
    start = (start + MAX_ORDER_NR_PAGES - 1) // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
    if start <= src.start_pfn:
        raise MachineSpecError(f"movablecore leaves nothing in zone {src.name} of node {src.nid}")
    def present(lo: int, hi: int) -> int:
        return sum(max(0, min(e, hi) - max(s, lo)) for s, e in ranges)
    new_src = ZoneSpec(src.nid, src.ztype, src.start_pfn, start - src.start_pfn, present(src.start_pfn, start))
    mov = ZoneSpec(src.nid, ZoneType.MOVABLE, start, src.end_pfn - start, present(start, src.end_pfn))
    out = [new_src if i == idx else z for i, z in enumerate(zones) if z.ztype != ZoneType.MOVABLE]
    out.append(mov)
    return sorted(out, key=lambda z: (z.nid, z.ztype))


def _parse_opts(parts: list[str]) -> dict[str, str]:
    opts = {}
    for p in parts:
        if "=" not in p:
            raise MachineSpecError(f"bad machine option {p!r} (expected key=value)")
        k, v = p.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def _pct_or_size(value: str, total_pages: int) -> int:
    if value.endswith("%"):
        pct = float(value[:-1])
        if not 0 <= pct <= 100:
            raise MachineSpecError(f"percentage out of range: {value}")
        return int(total_pages * pct / 100)
    return parse_size(value) >> PAGE_SHIFT


def parse_machine(spec: str) -> Machine:
    """Build a Machine from a spec string (see module docstring)."""
    head, _, rest = spec.partition(":")
    if not rest:
        raise MachineSpecError(f"bad machine spec {spec!r}: expected e.g. x86_64:16G, i386:4G, "
                               "numa:2x8G, zoneinfo:PATH")
    if head == "zoneinfo":
        path, *opt_parts = _split_opts_path(rest)
        return machine_from_zoneinfo(path, spec=spec, **_common_opts(_parse_opts(opt_parts)))
    size_text, *opt_parts = rest.split(",")
    opts = _parse_opts(opt_parts)
    common = _common_opts(opts)
    if head in ("x86_64", "i386"):
        nodes, node_bytes = 1, parse_size(size_text)
    elif head == "numa":
        m = re.match(r"^(\d+)x(.+)$", size_text)
        if not m:
            raise MachineSpecError(f"bad numa spec {size_text!r} (expected e.g. 2x8G)")
        nodes, node_bytes = int(m.group(1)), parse_size(m.group(2))
        if not 1 <= nodes <= 64:
            raise MachineSpecError("numa node count must be 1..64")
    else:
        raise MachineSpecError(f"unknown machine kind {head!r} (x86_64, i386, numa, zoneinfo)")
    arch = "i386" if head == "i386" else "x86_64"
    node_pages = node_bytes >> PAGE_SHIFT
    if node_pages < 4 * MAX_ORDER_NR_PAGES:
        raise MachineSpecError(f"node size {size_text} too small (minimum 16M)")
    if nodes * node_bytes > TiB * 4:
        raise MachineSpecError("machines above 4 TiB are not supported")
    if arch == "i386" and node_bytes > 64 * GiB:
        raise MachineSpecError("i386 PAE addresses at most 64 GiB")

    zones: list[ZoneSpec] = []
    all_ranges: list[tuple[int, int]] = []
    next_start = 0
    for nid in range(nodes):
        ranges = _e820_ranges(next_start, node_pages, nid == 0)
        if arch == "i386":
            bounds = [(ZoneType.DMA, _MAX_DMA_PFN), (ZoneType.NORMAL, _I386_LOWMEM_END),
                      (ZoneType.HIGHMEM, 1 << 40), (ZoneType.MOVABLE, 1 << 40)]
        elif nid == 0:
            bounds = [(ZoneType.DMA, _MAX_DMA_PFN), (ZoneType.DMA32, _MAX_DMA32_PFN),
                      (ZoneType.NORMAL, 1 << 40), (ZoneType.MOVABLE, 1 << 40)]
        else:
            bounds = [(ZoneType.DMA, 0), (ZoneType.DMA32, 0), (ZoneType.NORMAL, 1 << 40),
                      (ZoneType.MOVABLE, 1 << 40)]
        zones += _split_zones(nid, ranges, bounds)
        all_ranges += ranges
        next_start = ranges[-1][1]
        next_start = (next_start + MAX_ORDER_NR_PAGES - 1) // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
    total = sum(e - s for s, e in all_ranges)

    movable = 0
    if "movablecore" in opts:
        movable = _pct_or_size(opts["movablecore"], total)
        movable = -(-movable // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
    if "kernelcore" in opts:
        movable = max(movable, total - _pct_or_size(opts["kernelcore"], total))
    if movable:
        if movable >= total:
            raise MachineSpecError("movablecore/kernelcore leave no kernel memory")
        per_node = -(-movable // nodes)
        per_node = -(-per_node // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
        new_zones: list[ZoneSpec] = []
        for nid in range(nodes):
            nz = [z for z in zones if z.nid == nid]
            new_zones += _carve_movable(nz, all_ranges, per_node)
        zones = new_zones

    cma_areas: tuple[tuple[int, int], ...] = ()
    config_cma = False
    if "cma" in opts:
        cma_pages = parse_size(opts["cma"]) >> PAGE_SHIFT
        pb = 1 << common.get("pageblock_order", DEFAULT_PAGEBLOCK_ORDER)
        cma_pages = -(-cma_pages // pb) * pb
        zones, cma_areas = _place_cma(zones, cma_pages, arch)
        config_cma = True

    # setup_arch(): memblock_reserve(0, SZ_1M) - RAM below 1 MiB never reaches the buddy
    low = sum(max(0, min(e, _LEGACY_HOLE[1]) - s) for s, e in all_ranges)
    zones = [ZoneSpec(z.nid, z.ztype, z.start_pfn, z.spanned_pages, z.present_pages, low, z.cma_pages)
             if z.ztype == ZoneType.DMA and z.nid == 0 and z.present_pages else z for z in zones]
    holes = _holes_of(zones, all_ranges)
    return Machine(arch=arch, nr_nodes=nodes, zones=tuple(zones), holes=tuple(holes),
                   cma_areas=cma_areas, spec=spec, config_cma=config_cma, **common)


def _place_cma(zones: list[ZoneSpec], cma_pages: int, arch: str
               ) -> tuple[list[ZoneSpec], tuple[tuple[int, int], ...]]:
    """dma_contiguous_reserve(): x86 places the default CMA area top-down below
    4 GiB (DMA32) or the end of lowmem on i386, pageblock aligned."""
    target = ZoneType.NORMAL if arch == "i386" else ZoneType.DMA32
    cands = [z for z in zones if z.nid == 0 and z.ztype == target and z.present_pages]
    if not cands:
        cands = [z for z in zones if z.nid == 0 and z.ztype == ZoneType.NORMAL and z.present_pages]
    if not cands:
        raise MachineSpecError("no zone to place the CMA area in")
    z = cands[0]
    end = z.end_pfn & ~(MAX_ORDER_NR_PAGES - 1)
    start = end - cma_pages
    if start <= z.start_pfn + MAX_ORDER_NR_PAGES:
        raise MachineSpecError(f"cma area of {cma_pages} pages does not fit in zone {z.name}")
    nz = ZoneSpec(z.nid, z.ztype, z.start_pfn, z.spanned_pages, z.present_pages, z.reserved_pages, cma_pages)
    return [nz if x is z else x for x in zones], ((start, end),)


def _common_opts(opts: dict[str, str]) -> dict:
    out: dict = {}
    known = {"movablecore", "kernelcore", "cma", "cpus", "pageblock_order", "min_free_kbytes", "cma_base"}
    for k in opts:
        if k not in known:
            raise MachineSpecError(f"unknown machine option {k!r} (known: {', '.join(sorted(known))})")
    if "cpus" in opts:
        out["nr_cpus"] = int(opts["cpus"])
        if not 1 <= out["nr_cpus"] <= 1024:
            raise MachineSpecError("cpus must be 1..1024")
    if "pageblock_order" in opts:
        out["pageblock_order"] = int(opts["pageblock_order"])
        if not 1 <= out["pageblock_order"] <= 10:
            raise MachineSpecError("pageblock_order must be 1..10")
    if "min_free_kbytes" in opts:
        out["min_free_kbytes"] = int(opts["min_free_kbytes"])
    return out


def _split_opts_path(rest: str) -> list[str]:
    # Paths may contain commas rarely; options are key=value after the last path part.
    parts = rest.split(",")
    path = parts[0]
    opts = parts[1:]
    return [path, *opts]


# --- /proc/zoneinfo ----------------------------------------------------------------

_ZONE_BY_NAME = {v: k for k, v in ZONE_NAMES.items()}


def machine_from_zoneinfo(path: str | Path, spec: str = "", nr_cpus: int | None = None,
                          pageblock_order: int = DEFAULT_PAGEBLOCK_ORDER,
                          min_free_kbytes: int | None = None) -> Machine:
    """Build a machine from a real /proc/zoneinfo: start_pfn, spanned, present,
    managed (present - managed pages become reserved) and cma per zone; the number
    of CPUs from the pagesets. Holes are placed at the top of each zone's span
    (zoneinfo does not say where they are). The CMA base comes from a sibling
    dmesg*.txt ("cma: Reserved N MiB at 0x...") or, failing that, the top of the zone."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise MachineSpecError(f"cannot read zoneinfo {p}: {e.strerror}") from None
    zones: list[ZoneSpec] = []
    cur: dict | None = None
    cpus: set[int] = set()
    has_device = False

    def flush() -> None:
        if cur is None:
            return
        if cur["name"] == "Device":
            return
        if cur["name"] not in _ZONE_BY_NAME:
            raise MachineSpecError(f"{p}: unknown zone name {cur['name']!r}")
        spanned = cur.get("spanned", 0)
        present = cur.get("present", 0)
        managed = cur.get("managed", present)
        zones.append(ZoneSpec(cur["nid"], _ZONE_BY_NAME[cur["name"]], cur.get("start_pfn", 0) if spanned else 0,
                              spanned, present, present - managed, cur.get("cma", 0)))

    for line in text.splitlines():
        m = re.match(r"^Node (\d+), zone\s+(\S+)", line)
        if m:
            flush()
            cur = {"nid": int(m.group(1)), "name": m.group(2)}
            has_device |= m.group(2) == "Device"
            continue
        if cur is None:
            continue
        s = line.strip()
        m = re.match(r"^(spanned|present|managed|cma)\s+(\d+)$", s)
        if m:
            cur[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^start_pfn:\s+(\d+)$", s)
        if m:
            cur["start_pfn"] = int(m.group(1))
            continue
        m = re.match(r"^cpu:\s+(\d+)$", s)
        if m:
            cpus.add(int(m.group(1)))
    flush()
    if not zones or not any(z.present_pages for z in zones):
        raise MachineSpecError(f"{p}: no populated zones found (is this a /proc/zoneinfo?)")
    arch = "i386" if any(z.ztype == ZoneType.HIGHMEM for z in zones) else "x86_64"
    nr_nodes = max(z.nid for z in zones) + 1
    holes = []
    for z in zones:
        if z.spanned_pages > z.present_pages:
            if (arch in ("x86_64", "i386") and z.start_pfn < _LEGACY_HOLE[0] and z.end_pfn >= _LEGACY_HOLE[1]
                    and z.spanned_pages - z.present_pages == _LEGACY_HOLE[1] - _LEGACY_HOLE[0]):
                holes.append(_LEGACY_HOLE)  # e820: 636 KiB - 1 MiB is not RAM
            else:
                holes.append((z.start_pfn + z.present_pages, z.end_pfn))
    cma_areas = []
    config_cma = False
    pt = p.parent / p.name.replace("zoneinfo", "pagetypeinfo")
    if pt.exists() and " CMA " in pt.read_text().split("Number of blocks type", 1)[-1].split("\n", 1)[0] + " ":
        config_cma = True
    for z in zones:
        if not z.cma_pages:
            continue
        config_cma = True
        base = _cma_base_from_dmesg(p.parent)
        if base is None or not z.start_pfn <= base < z.end_pfn:
            base = (z.start_pfn + z.present_pages - z.cma_pages) & ~((1 << pageblock_order) - 1)
        cma_areas.append((base, base + z.cma_pages))
    return Machine(arch=arch, nr_nodes=nr_nodes, zones=tuple(sorted(zones, key=lambda z: (z.nid, z.ztype))),
                   holes=tuple(holes), cma_areas=tuple(cma_areas), pageblock_order=pageblock_order,
                   nr_cpus=nr_cpus or max(len(cpus), 1), spec=spec or f"zoneinfo:{p}",
                   config_cma=config_cma, min_free_kbytes=min_free_kbytes,
                   source={"zoneinfo": str(p)})


def _cma_base_from_dmesg(directory: Path) -> int | None:
    for f in sorted(directory.glob("dmesg*.txt")):
        m = re.search(r"cma: Reserved (\d+) MiB at (0x[0-9a-f]+)", f.read_text(errors="replace"))
        if m:
            return int(m.group(2), 16) >> PAGE_SHIFT
    return None
