"""The page allocator core: mm/page_alloc.c (and its boot part in mm/mm_init.c).

Design-independent: zones and zonelists, watermarks and lowmem_reserve,
gfp -> (zone, migratetype, alloc_flags), __rmqueue_smallest/expand, migratetype
fallback and pageblock stealing, __free_one_page merging, highatomic reserves,
per-CPU page lists. Free lists themselves belong to the design (memdesc.designs),
reached only through the small interface in designs/base.py.

Kernel semantics follow 6.19 by default; ``kernel="6.1"`` switches the places
where 6.1 differs and a replay of 6.1 traces notices: ALLOC_HARDER/ALLOC_HIGH vs
ALLOC_NON_BLOCK/ALLOC_MIN_RESERVE, fallback (steal with single-page moves vs
claim/steal), the merge rule across pageblocks, pcp batch sizes, highatomic
limits, watermarks of ZONE_MOVABLE. Function names are the kernel's.

Simplifications (documented in docs/model.md): no reclaim or kswapd (memory comes
back only when the workload frees it; a watermark boost decays when free pages
pass high+boost, as kswapd would make them), no cpusets/memcg, no page
shuffling, no guard pages, pcp auto-tuning of 6.5+ not modelled (pcp->high is
high_min), the pcp migratetype is re-read from the pageblock at drain (6.19).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import isqrt
from typing import Any

import numpy as np

from memdesc.designs.base import Design, list_id
from memdesc.machine import Machine
from memdesc.mm import gfp as G
from memdesc.mm.mmzone import (
    FALLBACKS,
    MAX_ORDER_NR_PAGES,
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGE_SHIFT,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    ZONE_NAMES,
    ZoneType,
)


class MemdescError(Exception):
    """Base of memdesc's own errors."""


class BadCall(MemdescError):
    """A bad call into the allocator (double free, wrong order, hole, ...).

    Raised before any state changes. ``pfn`` and ``order`` name the culprit."""

    def __init__(self, msg: str, pfn: int | None = None, order: int | None = None) -> None:
        super().__init__(msg)
        self.pfn = pfn
        self.order = order


# --- alloc_flags (mm/internal.h). Bits 0x10/0x20 mean HARDER/HIGH in 6.1 and
# NON_BLOCK/MIN_RESERVE in 6.19. --------------------------------------------------
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

FPI_NONE = 0
FPI_TO_TAIL = 1

# alloc_state byte per pfn (the model's page_owner): order+1 in bits 0-3 for the
# head of an allocated block, plus these flags.
AS_ORDER_MASK = 0x0F
AS_MOVABLE = 0x10  # LRU / __PageMovable: migration can move it
AS_META = 0x20  # allocator metadata (slab pages of descriptors, radix nodes, ...)
AS_PINNED = 0x40  # long-term pinned: migration refuses
AS_PCP = 0x80  # sitting on a per-CPU list (free to the user, allocated to buddy)

HPAGE_PMD_ORDER = 9
# enum rmqueue_mode (6.19 __rmqueue(), kept across one rmqueue_bulk())
RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)
X86_LOW_RESERVE_END = 0x100  # pfn of 1 MiB
# module-level aliases: inside class bodies Python would mangle G.__GFP_* names
_GFP_KSWAPD_RECLAIM = getattr(G, "__GFP_KSWAPD_RECLAIM")
_GFP_HIGH = getattr(G, "__GFP_HIGH")
_GFP_ATOMIC = getattr(G, "__GFP_ATOMIC")
_GFP_NOMEMALLOC = getattr(G, "__GFP_NOMEMALLOC")
_GFP_DIRECT_RECLAIM = getattr(G, "__GFP_DIRECT_RECLAIM")
_GFP_MEMALLOC = getattr(G, "__GFP_MEMALLOC")
NO_ZONE = 255

FAIL_WATERMARK = "watermark"
FAIL_FRAGMENTED = "no_free_block"
FAIL_DESCRIPTOR = "descriptor"
FAIL_INJECTED = "injected"

SYSCTL_LOWMEM_RESERVE_RATIO = {ZoneType.DMA: 256, ZoneType.DMA32: 256, ZoneType.NORMAL: 32,
                               ZoneType.HIGHMEM: 0, ZoneType.MOVABLE: 0}
WATERMARK_SCALE_FACTOR = 10
WATERMARK_BOOST_FACTOR = 15000
SWAP_CLUSTER_MAX = 32


class PerCpuPages:
    """struct per_cpu_pages: lists[pindex] are deques, head at the left."""

    __slots__ = ("lists", "count", "high", "batch", "free_factor")

    def __init__(self, nr_lists: int) -> None:
        self.lists = [deque() for _ in range(nr_lists)]
        self.count = 0
        self.high = 0
        self.batch = 1
        self.free_factor = 0


class Zone:
    """struct zone: static layout plus the allocator's runtime state."""

    __slots__ = ("zid", "nid", "ztype", "name", "start_pfn", "end_pfn", "spanned", "present",
                 "managed", "reserved", "cma_pages", "watermark", "watermark_boost", "boosted",
                 "lowmem_reserve", "nr_free", "free_pages", "nr_free_cma", "nr_free_highatomic",
                 "nr_reserved_highatomic", "nr_isolate_pageblock", "pcp", "node_zone_idx")

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
        self.nr_free = [0] * NR_PAGE_ORDERS
        self.free_pages = 0  # NR_FREE_PAGES
        self.nr_free_cma = 0  # NR_FREE_CMA_PAGES
        self.nr_free_highatomic = 0
        self.nr_reserved_highatomic = 0
        self.nr_isolate_pageblock = 0
        self.pcp: list[PerCpuPages] = []
        self.node_zone_idx = 0

    @property
    def populated(self) -> bool:
        return self.present > 0

    def __repr__(self) -> str:
        return f"<Zone {self.nid}:{self.name} [{self.start_pfn:#x},{self.end_pfn:#x}) free={self.free_pages}>"


@dataclass
class GfpInfo:
    """What prepare_alloc_pages() derives from a gfp mask, cached per mask."""

    highest: ZoneType
    migratetype: int
    fast_flags: int
    slow_flags: int
    reserve_flags: int
    can_direct_reclaim: bool
    zl_by_node: list[list[Any]] = field(default_factory=list)  # zonelist per local node
    fast_by_node: list[int] = field(default_factory=list)  # fast-path alloc_flags per node
    st_base: int = 0  # alloc_state flags of the allocated block
    pcp_skip: bool = False  # 6.1 rmqueue(): MOVABLE without ALLOC_CMA bypasses pcp
    pindex: list[int] = field(default_factory=list)  # order_to_pindex() per order


@dataclass
class AllocCounters:
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


class PageAllocator:
    """A machine's page allocator running one design.

    ``alloc_pages`` returns the first pfn of the block, or -1 when the
    allocation fails (``last_failure`` says why). Bad calls raise BadCall."""

    def __init__(self, machine: Machine, design: str | type[Design] | Design = "linked",
                 kernel: str = "6.19", pcp: bool = True, design_options: dict | None = None,
                 thp: bool = True) -> None:
        if kernel not in G.KERNELS:
            raise MemdescError(f"unknown kernel {kernel!r} (known: {', '.join(G.KERNELS)})")
        self.machine = machine
        self.kernel = kernel
        self.booted = False  # True once memblock_free_all and the watermarks are done
        self.k61 = kernel == "6.1"
        self.pcp_enabled = pcp
        self.thp = thp
        self.pageblock_order = machine.pageblock_order
        self.pageblock_nr_pages = 1 << self.pageblock_order
        self.nr_pfns = -(-max(machine.max_pfn, 1) // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
        self.counters = AllocCounters()
        self.last_failure: str | None = None
        self.depth = 0  # recursion depth of alloc_pages (descriptor/metadata allocations)
        self.in_free_path = 0  # >0 while inside free_pages (allocation-on-free detection)
        self.allocs_in_free_path = 0
        self.fail_hook: Callable[[int, int, int], bool] | None = None  # fault injection
        self.compact_hook: Callable[[Zone, int, int, int], bool] | None = None  # direct compaction
        # called as on_migrate(old_pfn, new_pfn, order) when a block moves (runner's handle map)
        self.on_migrate: Callable[[int, int, int], None] | None = None
        self._gfp_cache: dict[int, GfpInfo] = {}
        self._zl_cache: dict[tuple[int, ZoneType], list[Zone]] = {}
        self._pcp_ok = [pcp and (o <= PAGE_ALLOC_COSTLY_ORDER or (o == HPAGE_PMD_ORDER and thp))
                        for o in range(NR_PAGE_ORDERS)]
        self._list_mt = 0

        # zones, global index zid
        self.zones: list[Zone] = []
        for zs in machine.zones:
            z = Zone(len(self.zones), zs.nid, zs.ztype, zs.start_pfn, zs.spanned_pages, zs.present_pages)
            z.cma_pages = zs.cma_pages
            z.node_zone_idx = machine.kernel_zone_index(zs.ztype)
            self.zones.append(z)
        self.nr_nodes = machine.nr_nodes
        self.nr_cpus = machine.nr_cpus
        self.cpu_to_node = [c * self.nr_nodes // self.nr_cpus for c in range(self.nr_cpus)]

        n = self.nr_pfns
        self.zid_of_pfn = bytearray(b"\xff") * n
        zid_np = np.frombuffer(self.zid_of_pfn, dtype=np.uint8)
        for z in self.zones:
            if z.spanned:
                zid_np[z.start_pfn:z.end_pfn] = z.zid
        self.present_mask = np.zeros(n, dtype=bool)
        for z in self.zones:
            if z.spanned:
                self.present_mask[z.start_pfn:z.end_pfn] = True
        for s, e in machine.holes:
            self.present_mask[s:e] = False
        self.alloc_state = bytearray(n)
        nblocks = n >> self.pageblock_order
        self.pb_mt = bytearray([MIGRATE_MOVABLE]) * nblocks  # memmap_init: every block MOVABLE
        self.pb_saved = bytearray(nblocks)  # migratetype under MIGRATE_ISOLATE

        # the design
        if isinstance(design, Design):
            self.design = design
        else:
            from memdesc.designs import get_design
            cls = get_design(design) if isinstance(design, str) else design
            self.design = cls(self, **(design_options or {}))
        self.design.init_memmap()
        # designs without descriptors keep the base no-op prep_alloc: skip the call
        self._design_prep = type(self.design).prep_alloc is not Design.prep_alloc
        self._design_split = type(self.design).on_split_free is not Design.on_split_free
        self._init_pcp_lists()
        self._boot()

    # ------------------------------------------------------------------------------
    # boot: memmap_init, memblock reservations, memblock_free_all, watermarks
    # ------------------------------------------------------------------------------
    def _memmap_pages_of_node(self, nid: int, struct_page_bytes: int) -> int:
        present = sum(z.present for z in self.zones if z.nid == nid)
        return -(-present * struct_page_bytes // (1 << PAGE_SHIFT))

    def _memmap_zone(self, nid: int) -> Zone | None:
        """Where a node's memmap and other memblock allocations go: its highest
        populated zone that is permanently mapped kernel memory."""
        cands = [z for z in self.zones if z.nid == nid and z.populated
                 and z.ztype in (ZoneType.NORMAL, ZoneType.DMA32, ZoneType.DMA)]
        return cands[-1] if cands else None

    def _boot(self) -> None:
        m = self.machine
        d = self.design
        for s, e in m.holes:
            d.set_reserved(s, e)
        # pfns of the memmap beyond a zone span (alignment padding) are holes too
        spans = sorted((z.start_pfn, z.end_pfn) for z in self.zones if z.spanned)
        cur = 0
        for s, e in spans:
            if s > cur:
                d.set_reserved(cur, s)
            cur = max(cur, e)
        if cur < self.nr_pfns:
            d.set_reserved(cur, self.nr_pfns)
        # reserved pages: the machine's memblock reservations, with the linked
        # memmap (which a zoneinfo already includes) swapped for this design's.
        from_zoneinfo = "zoneinfo" in m.source
        reserve = {z.zid: zs.reserved_pages for z, zs in zip(self.zones, m.zones, strict=True)}
        self.memmap_pages: dict[int, int] = {}
        for nid in range(self.nr_nodes):
            mz = self._memmap_zone(nid)
            if mz is None:
                continue
            mine = self._memmap_pages_of_node(nid, d.struct_page_bytes)
            self.memmap_pages[nid] = mine
            if from_zoneinfo:
                # the kernel's reservations already hold a 64-byte memmap wherever
                # memblock put it; a smaller struct page gives the difference back,
                # taken from the node's zones with the most reserved pages first
                saved = self._memmap_pages_of_node(nid, 64) - mine
                for z in sorted((z for z in self.zones if z.nid == nid), key=lambda z: -reserve[z.zid]):
                    take = min(saved, reserve[z.zid])
                    reserve[z.zid] -= take
                    saved -= take
            else:
                reserve[mz.zid] += mine
        cma_ranges = list(m.cma_areas)
        self.reserved_ranges: list[tuple[int, int]] = []
        for z in self.zones:
            want = reserve[z.zid]
            if want > z.present:
                raise MemdescError(f"zone {z.name} of node {z.nid}: {want} reserved pages exceed "
                                   f"{z.present} present (memmap too large for this layout)")
            z.reserved = want
            for s, e in self._take_top(z, want, cma_ranges):
                d.set_reserved(s, e)
                self.reserved_ranges.append((s, e))
            z.managed = z.present - want
        # memmap_init_range() sets MIGRATE_MOVABLE only at the pageblock-aligned pfns it
        # initialises; a block whose first pfn is not present (pfn 0 below DMA's start
        # pfn 1) keeps zeroed bits: MIGRATE_UNMOVABLE (every trace's DMA shows it)
        pbn = self.pageblock_nr_pages
        blocks = self.present_mask.reshape(-1, pbn)
        partial = blocks.any(axis=1) & ~blocks[:, 0]
        for b in np.nonzero(partial)[0].tolist():
            self.pb_mt[b] = MIGRATE_UNMOVABLE
        # CMA pageblocks (init_cma_reserved_pageblock)
        for s, e in cma_ranges:
            for b in range(s >> self.pageblock_order, e >> self.pageblock_order):
                self.pb_mt[b] = MIGRATE_CMA
        # memblock_free_all(): free every managed range in max aligned chunks, to tail
        reserved_np = np.zeros(self.nr_pfns, dtype=bool)
        for s, e in self.reserved_ranges:
            reserved_np[s:e] = True
        self.reserved_np = reserved_np
        usable = self.present_mask & ~reserved_np
        for z in self.zones:
            if not z.spanned:
                continue
            seg = usable[z.start_pfn:z.end_pfn]
            for s, e in _runs(seg):
                self._free_range_boot(z, z.start_pfn + s, z.start_pfn + e)
        self.setup_per_zone_wmarks()
        self.booted = True
        self.design.boot_done()

    def _take_top(self, z: Zone, count: int, cma: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """memblock allocates top-down: the highest present, non-CMA pfns of the zone."""
        if count <= 0:
            return []
        avail = _subtract([(z.start_pfn, z.end_pfn)], list(self.machine.holes) + cma)
        out = []
        if self.machine.arch in ("x86_64", "i386") and z.start_pfn < X86_LOW_RESERVE_END:
            # setup_arch(): memblock_reserve(0, SZ_1M) - RAM below 1 MiB is reserved first
            for s, e in avail:
                e = min(e, X86_LOW_RESERVE_END)
                if s < e and count:
                    take = min(count, e - s)
                    out.append((s, s + take))
                    count -= take
            avail = _subtract(avail, out)
        for s, e in reversed(avail):
            if not count:
                break
            take = min(count, e - s)
            out.append((e - take, e))
            count -= take
            if not count:
                break
        if count:
            raise MemdescError(f"zone {z.name}: cannot reserve {count} more pages")
        return sorted(out)

    def _free_range_boot(self, z: Zone, start: int, end: int) -> None:
        """__free_pages_core() over [start, end): largest naturally aligned chunks."""
        pfn = start
        while pfn < end:
            order = min(MAX_PAGE_ORDER, (pfn & -pfn).bit_length() - 1 if pfn else MAX_PAGE_ORDER)
            while pfn + (1 << order) > end:
                order -= 1
            self._free_one_page_split(pfn, z, order, FPI_TO_TAIL)
            pfn += 1 << order

    def _init_pcp_lists(self) -> None:
        nr_lists = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + (1 if self.k61 else 2)
        self.nr_pcp_lists = nr_lists
        for z in self.zones:
            z.pcp = [PerCpuPages(nr_lists) for _ in range(self.nr_cpus)]

    # ------------------------------------------------------------------------------
    # watermarks: __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve, pcp sizes
    # ------------------------------------------------------------------------------
    def _is_highmem_for_wmarks(self, z: Zone) -> bool:
        if z.ztype == ZoneType.HIGHMEM:
            return True
        if z.ztype == ZoneType.MOVABLE:
            # 6.1 is_highmem(): MOVABLE counts if movable_zone is HIGHMEM; 6.19 always
            return (not self.k61) or self.machine.arch == "i386"
        return False

    def nr_free_buffer_pages(self, with_high: bool = True) -> int:
        """nr_free_zone_pages(gfp_zone(GFP_USER)): managed - high over zones <= NORMAL."""
        total = 0
        for z in self.zones:
            if z.ztype <= ZoneType.NORMAL:
                high = z.watermark[WMARK_HIGH] if with_high else 0
                if z.managed > high:
                    total += z.managed - high
        return total

    def compute_min_free_kbytes(self) -> int:
        """init_per_zone_wmark_min() then khugepaged's set_recommended_min_free_kbytes()."""
        if self.machine.min_free_kbytes is not None:
            return self.machine.min_free_kbytes
        lowmem_kbytes = self.nr_free_buffer_pages(with_high=False) * 4
        mfk = min(max(isqrt(lowmem_kbytes * 16), 128), 262144)
        if self.thp:
            nz = sum(1 for z in self.zones if z.populated and z.ztype <= ZoneType.NORMAL)
            rec = self.pageblock_nr_pages * nz * 2 + self.pageblock_nr_pages * nz * MIGRATE_PCPTYPES ** 2
            self._apply_wmarks(mfk)  # high watermarks exist by the time khugepaged starts
            cap = self.nr_free_buffer_pages() * 5 // 100
            rec = min(rec, cap) << (PAGE_SHIFT - 10)
            mfk = max(mfk, rec)
        return mfk

    def setup_per_zone_wmarks(self) -> None:
        self.min_free_kbytes = self.compute_min_free_kbytes()
        self._apply_wmarks(self.min_free_kbytes)
        self.setup_per_zone_lowmem_reserve()
        self._setup_pcp_sizes()

    def _apply_wmarks(self, min_free_kbytes: int) -> None:
        pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
        lowmem_pages = sum(z.managed for z in self.zones if not self._is_highmem_for_wmarks(z))
        for z in self.zones:
            tmp = pages_min * z.managed // lowmem_pages if lowmem_pages else 0
            if self._is_highmem_for_wmarks(z):
                wmin = min(max(z.managed // 1024, SWAP_CLUSTER_MAX), 128)
            else:
                wmin = tmp
            delta = max(tmp >> 2, z.managed * WATERMARK_SCALE_FACTOR // 10000)
            z.watermark_boost = 0
            z.watermark = [wmin, wmin + delta, wmin + 2 * delta, wmin + 3 * delta]

    def setup_per_zone_lowmem_reserve(self) -> None:
        for nid in range(self.nr_nodes):
            nz = {z.ztype: z for z in self.zones if z.nid == nid}
            types = list(self.machine.kernel_zone_types)
            for i, ti in enumerate(types):
                z = nz.get(ti)
                if z is None:
                    continue
                ratio = SYSCTL_LOWMEM_RESERVE_RATIO[ti]
                clear = not ratio or not z.managed
                managed = 0
                z.lowmem_reserve = [0] * len(ZoneType)
                for tj in types[i + 1:]:
                    up = nz.get(tj)
                    managed += up.managed if up else 0
                    z.lowmem_reserve[tj] = 0 if clear else managed // ratio

    def _setup_pcp_sizes(self) -> None:
        """zone_batchsize() and zone_highsize() (steady state: no CPU coming online)."""
        for z in self.zones:
            if self.k61:
                b = min(z.managed >> 10, (1 << 20) >> PAGE_SHIFT) // 4
            else:
                b = min(z.managed >> 12, (256 << 10) >> PAGE_SHIFT)
            if b < 1:
                b = 1
            b = (1 << ((b + b // 2).bit_length() - 1)) - 1
            batch = max(1, b)
            cpus_of_node = sum(1 for c in range(self.nr_cpus) if self.cpu_to_node[c] == z.nid)
            split = cpus_of_node or self.nr_cpus
            high = max(z.watermark[WMARK_LOW] // split, batch << 2)
            for p in z.pcp:
                p.batch = batch
                p.high = high

    def wmark_pages(self, z: Zone, i: int) -> int:
        return z.watermark[i] + z.watermark_boost

    # ------------------------------------------------------------------------------
    # gfp -> allocation context (prepare_alloc_pages, gfp_to_alloc_flags)
    # ------------------------------------------------------------------------------
    def gfp_info(self, gfp: int) -> GfpInfo:
        info = self._gfp_cache.get(gfp)
        if info is None:
            try:
                G.validate_gfp(gfp, self.kernel)
            except G.GfpError as e:
                raise BadCall(str(e)) from None
            info = self._make_gfp_info(gfp)
            self._gfp_cache[gfp] = info
        return info

    def _make_gfp_info(self, gfp: int) -> GfpInfo:
        hz = G.gfp_zone(gfp)
        types = self.machine.kernel_zone_types
        if hz == ZoneType.HIGHMEM and ZoneType.HIGHMEM not in types:
            hz = ZoneType.NORMAL
        if hz == ZoneType.DMA32 and ZoneType.DMA32 not in types:
            hz = ZoneType.NORMAL
        mt = G.gfp_migratetype(gfp)
        cma = ALLOC_CMA if (self.machine.config_cma and mt == MIGRATE_MOVABLE) else 0
        fast = ALLOC_WMARK_LOW | cma | (gfp & _GFP_KSWAPD_RECLAIM and ALLOC_KSWAPD)
        # gfp_to_alloc_flags()
        slow = ALLOC_WMARK_MIN | ALLOC_CPUSET | cma
        if gfp & _GFP_HIGH:
            slow |= ALLOC_HIGH  # == ALLOC_MIN_RESERVE
        if gfp & _GFP_KSWAPD_RECLAIM:
            slow |= ALLOC_KSWAPD
        if self.k61:
            if gfp & _GFP_ATOMIC and not gfp & _GFP_NOMEMALLOC:
                slow |= ALLOC_HARDER
                slow &= ~ALLOC_CPUSET
        else:
            if not gfp & _GFP_DIRECT_RECLAIM and not gfp & _GFP_NOMEMALLOC:
                slow |= ALLOC_NON_BLOCK
                if slow & ALLOC_MIN_RESERVE:
                    slow |= ALLOC_HIGHATOMIC  # only used for order > 0
            if slow & ALLOC_MIN_RESERVE:
                slow &= ~ALLOC_CPUSET
        reserve = 0
        if gfp & _GFP_MEMALLOC and not gfp & _GFP_NOMEMALLOC:
            reserve = ALLOC_NO_WATERMARKS
        info = GfpInfo(hz, mt, fast, slow, reserve, bool(gfp & _GFP_DIRECT_RECLAIM))
        for nid in range(self.nr_nodes):
            zl = self.zonelist(nid, hz)
            info.zl_by_node.append(zl)
            info.fast_by_node.append(fast | self._nofragment(zl))
        info.st_base = AS_MOVABLE if mt == MIGRATE_MOVABLE else 0
        info.pindex = [self._pindex(o, mt) if o <= PAGE_ALLOC_COSTLY_ORDER or o == HPAGE_PMD_ORDER else -1
                       for o in range(NR_PAGE_ORDERS)]
        info.pcp_skip = self.k61 and self.machine.config_cma and mt == MIGRATE_MOVABLE and not cma
        return info

    def zonelist(self, nid: int, highest: ZoneType) -> list[Zone]:
        """build_zonerefs_node(): local node first, then the others by distance
        (all remote nodes equidistant here), each from its highest zone down."""
        key = (nid, highest)
        cache = self._zl_cache
        zl = cache.get(key)
        if zl is None:
            order = [nid] + [(nid + i) % self.nr_nodes for i in range(1, self.nr_nodes)]
            zl = []
            for n in order:
                zl += sorted((z for z in self.zones if z.nid == n and z.populated and z.ztype <= highest),
                             key=lambda z: -z.ztype)
            cache[key] = zl
        return zl

    def _nofragment(self, zl: list[Zone]) -> int:
        """alloc_flags_nofragment(): preferred zone NORMAL with DMA32 below it."""
        if not zl or ZoneType.DMA32 not in self.machine.kernel_zone_types:
            return 0
        pz = zl[0]
        if pz.ztype != ZoneType.NORMAL:
            return 0
        if self.nr_nodes > 1:
            below = [z for z in self.zones if z.nid == pz.nid and z.ztype == ZoneType.DMA32]
            if not below or not below[0].populated:
                return 0
        return ALLOC_NOFRAGMENT

    # ------------------------------------------------------------------------------
    # allocation
    # ------------------------------------------------------------------------------
    def alloc_pages(self, gfp: int, order: int, nid: int = -1, cpu: int = 0, kind: str | None = None,
                    movable: bool | None = None) -> int:
        """__alloc_pages(): returns the pfn of a 2^order block, or -1 on failure.

        ``kind`` is the memdesc kind for designs with descriptors (None: derived
        from gfp by the design); ``movable`` overrides whether migration may move
        the block (default: the gfp migratetype is MOVABLE)."""
        if order < 0 or order > MAX_PAGE_ORDER:
            raise BadCall(f"order {order} out of range 0..{MAX_PAGE_ORDER}", order=order)
        info = self._gfp_cache.get(gfp) or self.gfp_info(gfp)
        if nid < 0:
            if cpu < 0 or cpu >= self.nr_cpus:
                raise BadCall(f"cpu {cpu} out of range 0..{self.nr_cpus - 1}")
            nid = self.cpu_to_node[cpu]
        elif nid >= self.nr_nodes:
            raise BadCall(f"node {nid} out of range 0..{self.nr_nodes - 1}")
        if self.in_free_path:
            self.allocs_in_free_path += 1
        depth = self.depth + 1
        self.depth = depth
        counters = self.counters
        if depth > counters.max_recursion:
            counters.max_recursion = depth
        try:
            if self.fail_hook is not None and self.fail_hook(gfp, order, depth):
                return self._fail(FAIL_INJECTED, order)
            k = kind if kind is not None else "misc"
            design = self.design
            token = design.prep_alloc(order, k, gfp) if self._design_prep else 0
            if token is None:
                return self._fail(FAIL_DESCRIPTOR, order)
            zl = info.zl_by_node[nid]
            pfn = self.get_page_from_freelist(gfp, order, info.fast_by_node[nid], zl, info, cpu)
            if pfn < 0:
                pfn = self._alloc_pages_slowpath(gfp, order, zl, info, cpu)
                if pfn < 0:
                    design.abort_alloc(token)
                    return -1
            if movable is None:
                st = info.st_base + order + 1
            else:
                st = order + 1 + (AS_MOVABLE if movable else 0)
            if kind is not None and kind[:4] == "meta":
                st |= AS_META
                counters.meta_allocs += 1
            self.alloc_state[pfn] = st
            design.post_alloc(pfn, order, k, token)
            counters.pgalloc += 1
            return pfn
        finally:
            self.depth -= 1

    def _fail(self, reason: str, order: int) -> int:
        self.last_failure = reason
        c = self.counters
        c.alloc_fail[reason] = c.alloc_fail.get(reason, 0) + 1
        c.alloc_fail_order[order] += 1
        return -1

    def _alloc_pages_slowpath(self, gfp: int, order: int, zl: list[Zone], info: GfpInfo, cpu: int) -> int:
        """__alloc_pages_slowpath() without reclaim: min watermark, reserves,
        direct compaction (if hooked), one drain of pcp + highatomic unreserve."""
        self.counters.slowpath += 1
        flags = info.slow_flags
        if not self.k61 and not (order > 0 and flags & ALLOC_MIN_RESERVE):
            flags &= ~ALLOC_HIGHATOMIC
        pfn = self.get_page_from_freelist(gfp, order, flags, zl, info, cpu)
        if pfn >= 0:
            return pfn
        costly = order > PAGE_ALLOC_COSTLY_ORDER
        if (info.can_direct_reclaim and (costly or (order > 0 and info.migratetype != MIGRATE_MOVABLE))
                and self.compact_hook is not None and not info.reserve_flags):
            if self.compact_hook(zl[0], order, gfp, info.migratetype):
                pfn = self.get_page_from_freelist(gfp, order, flags, zl, info, cpu)
                if pfn >= 0:
                    return pfn
        if info.reserve_flags:
            pfn = self.get_page_from_freelist(gfp, order, flags | info.reserve_flags, zl, info, cpu)
            if pfn >= 0:
                return pfn
        if not info.can_direct_reclaim:
            return self._fail(self._failure_reason(order, zl), order)
        # __alloc_pages_direct_reclaim: nothing to reclaim here, but the retry after
        # unreserve_highatomic_pageblock(force=false) and drain_all_pages() is real.
        for z in zl:
            self.unreserve_highatomic_pageblock(z, info.migratetype, force=False)
        self.drain_all_pages()
        pfn = self.get_page_from_freelist(gfp, order, flags, zl, info, cpu)
        if pfn >= 0:
            return pfn
        if self.compact_hook is not None and order > 0:
            if self.compact_hook(zl[0], order, gfp, info.migratetype):
                pfn = self.get_page_from_freelist(gfp, order, flags, zl, info, cpu)
                if pfn >= 0:
                    return pfn
        return self._fail(self._failure_reason(order, zl), order)

    def _failure_reason(self, order: int, zl: list[Zone]) -> str:
        """Classify: enough free pages but no block of the order = fragmentation."""
        need = 1 << order
        for z in zl:
            if z.free_pages - z.watermark[WMARK_MIN] >= need + z.lowmem_reserve[zl[0].ztype]:
                return FAIL_FRAGMENTED
        return FAIL_WATERMARK

    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int, zl: list[Zone],
                               info: GfpInfo, cpu: int) -> int:
        """get_page_from_freelist(): first zone passing its watermark that rmqueues.

        The order-0 zone_watermark_fast() shortcut and rmqueue() (a pcp list hit,
        else rmqueue_pcplist() refill, else rmqueue_buddy()) are inlined: they are
        the hot path of every run."""
        hz = info.highest
        use_pcp = self._pcp_ok[order] and not info.pcp_skip
        k61 = self.k61
        while True:
            no_fallback = alloc_flags & ALLOC_NOFRAGMENT
            restart = False
            for z in zl:
                if no_fallback and self.nr_nodes > 1 and z.nid != zl[0].nid:
                    alloc_flags &= ~ALLOC_NOFRAGMENT
                    restart = True
                    break
                if not alloc_flags & ALLOC_NO_WATERMARKS:
                    mark = z.watermark[alloc_flags & ALLOC_WMARK_MASK] + z.watermark_boost
                    ok = False
                    if not order:
                        free = z.free_pages
                        if k61:
                            unusable = 0 if alloc_flags & (ALLOC_HARDER | ALLOC_OOM) else z.nr_reserved_highatomic
                        else:
                            unusable = 0 if alloc_flags & ALLOC_RESERVES else z.nr_free_highatomic
                        if not alloc_flags & ALLOC_CMA:
                            unusable += z.nr_free_cma
                        ok = free - (unusable if unusable < free else free) > mark + z.lowmem_reserve[hz]
                    if not ok and not self.zone_watermark_fast(z, order, mark, hz, alloc_flags, gfp):
                        continue
                if use_pcp:
                    pcp = z.pcp[cpu]
                    lst = pcp.lists[info.pindex[order]]
                    if lst:
                        pcp.free_factor >>= 1
                        pfn = lst.popleft()
                        pcp.count -= 1 << order
                        self.alloc_state[pfn] = 0
                    else:
                        pfn = self.rmqueue_pcplist(z, order, info.migratetype, alloc_flags, cpu)
                        if pfn < 0:
                            pfn = self.rmqueue_buddy(z, order, alloc_flags, info.migratetype)
                else:
                    pfn = self.rmqueue_buddy(z, order, alloc_flags, info.migratetype)
                if pfn >= 0:
                    if order and alloc_flags & (ALLOC_HARDER if k61 else ALLOC_HIGHATOMIC):
                        self.reserve_highatomic_pageblock(pfn, z, order)
                    return pfn
            if restart:
                continue
            if no_fallback:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                continue
            return -1

    def _unusable_free(self, z: Zone, order: int, alloc_flags: int) -> int:
        """__zone_watermark_unusable_free()."""
        unusable = (1 << order) - 1
        if self.k61:
            if not alloc_flags & (ALLOC_HARDER | ALLOC_OOM):
                unusable += z.nr_reserved_highatomic
        elif not alloc_flags & ALLOC_RESERVES:
            unusable += z.nr_free_highatomic
        if not alloc_flags & ALLOC_CMA:
            unusable += z.nr_free_cma
        return unusable

    def zone_watermark_fast(self, z: Zone, order: int, mark: int, hz: int, alloc_flags: int, gfp: int) -> bool:
        free = z.free_pages
        if not order:
            usable = free - min(free, self._unusable_free(z, 0, alloc_flags))
            if usable > mark + z.lowmem_reserve[hz]:
                return True
        if self.zone_watermark_ok(z, order, mark, hz, alloc_flags, free):
            return True
        atomic_bit = _GFP_ATOMIC if self.k61 else _GFP_HIGH
        if (not order and gfp & atomic_bit and z.watermark_boost
                and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN):
            return self.zone_watermark_ok(z, order, z.watermark[WMARK_MIN], hz, alloc_flags, free)
        return False

    def zone_watermark_ok(self, z: Zone, order: int, mark: int, hz: int, alloc_flags: int, free: int) -> bool:
        """__zone_watermark_ok()."""
        mn = mark
        free -= self._unusable_free(z, order, alloc_flags)
        if self.k61:
            harder = alloc_flags & (ALLOC_HARDER | ALLOC_OOM)
            if alloc_flags & ALLOC_HIGH:
                mn -= mn // 2
            if harder:
                mn -= mn // 2 if alloc_flags & ALLOC_OOM else mn // 4
            ha_ok = harder
        else:
            if alloc_flags & ALLOC_RESERVES:
                if alloc_flags & ALLOC_MIN_RESERVE:
                    mn -= mn // 2
                    if alloc_flags & ALLOC_NON_BLOCK:
                        mn -= mn // 4
                if alloc_flags & ALLOC_OOM:
                    mn -= mn // 2
            ha_ok = alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM)
        if free <= mn + z.lowmem_reserve[hz]:
            return False
        if not order:
            return True
        first = self.design.first_in_list
        for o in range(order, NR_PAGE_ORDERS):
            if not z.nr_free[o]:
                continue
            base = list_id(z.zid, o, 0)
            for mt in range(MIGRATE_PCPTYPES):
                if first(base + mt) >= 0:
                    return True
            if alloc_flags & ALLOC_CMA and first(base + MIGRATE_CMA) >= 0:
                return True
            if ha_ok and first(base + MIGRATE_HIGHATOMIC) >= 0:
                return True
        return False

    def _pindex(self, order: int, mt: int) -> int:
        """order_to_pindex()."""
        if order > PAGE_ALLOC_COSTLY_ORDER:
            base = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
            return base if self.k61 else base + (mt == MIGRATE_MOVABLE)
        return MIGRATE_PCPTYPES * order + mt

    def _pindex_order(self, pindex: int) -> int:
        base = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
        return HPAGE_PMD_ORDER if pindex >= base else pindex // MIGRATE_PCPTYPES

    def rmqueue_pcplist(self, z: Zone, order: int, mt: int, alloc_flags: int, cpu: int) -> int:
        pcp = z.pcp[cpu]
        pcp.free_factor >>= 1
        lst = pcp.lists[self._pindex(order, mt)]
        if not lst:
            batch = pcp.batch
            if order:
                batch = max(batch >> order, 2)
            got = self.rmqueue_bulk(z, order, batch, lst, mt, alloc_flags)
            pcp.count += got << order
            if not got:
                return -1
        pfn = lst.popleft()
        pcp.count -= 1 << order
        self.alloc_state[pfn] = 0
        return pfn

    def rmqueue_bulk(self, z: Zone, order: int, count: int, lst: deque, mt: int, alloc_flags: int) -> int:
        """rmqueue_bulk(): refill a pcp list at its tail from __rmqueue().

        The common step of __rmqueue() -- no CMA balancing due, and
        __rmqueue_smallest() finds a block of ``mt`` itself -- is inlined (with the
        accounting of a pcp migratetype, which touches only NR_FREE_PAGES); any other
        step calls __rmqueue(), which starts over and takes the same decisions.  6.19
        keeps an ``enum rmqueue_mode`` across the iterations (see __rmqueue())."""
        st = AS_PCP | (order + 1)
        astate = self.alloc_state
        d = self.design
        find_smallest = self._find_smallest
        nr_free = z.nr_free
        counters = self.counters
        nr = 1 << order
        cma = alloc_flags & ALLOC_CMA
        run_ok = not self._design_split
        mode = [RMQUEUE_NORMAL]  # 6.19 enum rmqueue_mode rmqm
        i = 0
        while i < count:
            pfn = co = -1
            if mode[0] == RMQUEUE_NORMAL and not (cma and z.nr_free_cma > z.free_pages // 2):
                pfn, co = find_smallest(z, order, mt)
            if pfn < 0:
                pfn = self.__rmqueue(z, order, mt, alloc_flags, mode)
                if pfn < 0:
                    return i
                self._account(z, -nr, self._list_mt)
                astate[pfn] = st
                lst.append(pfn)
                i += 1
                continue
            d.del_from_free_list(pfn, co)
            nr_free[co] -= 1
            self._list_mt = mt
            units = 1
            if co > order:
                # mt's lists below co are empty and expand() puts each upper half at
                # the head of one (6.1 add_to_free_list(), 6.19 __add_to_free_list(...,
                # tail=false)), so the next __rmqueue() calls take the block's
                # following units in pfn order, splitting as they go;
                # the run stops at the end of the block, of the refill, or where CMA
                # balancing would kick in.  The design applies the intermediate list
                # operations' net effect; the core adds the pieces left over.
                units = min(count - i, 1 << (co - order))
                if cma:
                    units = min(units, (z.free_pages - 2 * z.nr_free_cma) // nr + 1)
                if units > 1 and run_ok and d.unlink_split_run(pfn, order, units):
                    self._add_tail_pieces(z, pfn + (units << order), pfn + (1 << co), order, mt)
                else:
                    units = 1
                    self.expand(z, pfn, order, co, mt)
            counters.zone_locked += units
            z.free_pages -= units << order
            for p in range(pfn, pfn + (units << order), nr):
                astate[p] = st
                lst.append(p)
            i += units
        return count

    def _add_tail_pieces(self, z: Zone, start: int, end: int, low: int, mt: int) -> None:
        """The free buddy blocks (order >= ``low``) covering [start, end), the tail
        of one buddy block, smallest first, each alone on its (empty) list of ``mt``."""
        add = self.design.add_to_free_list
        nr_free = z.nr_free
        zid = z.zid
        o = low
        while start < end:
            while not start & (1 << o):
                o += 1
            add(start, o, list_id(zid, o, mt), False)
            nr_free[o] += 1
            start += 1 << o

    def rmqueue_buddy(self, z: Zone, order: int, alloc_flags: int, mt: int) -> int:
        pfn = -1
        if order > 0 and alloc_flags & (ALLOC_HARDER if self.k61 else ALLOC_HIGHATOMIC):
            pfn = self.__rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
        if pfn < 0:
            pfn = self.__rmqueue(z, order, mt, alloc_flags)
            if pfn < 0 and not self.k61 and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                pfn = self.__rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
            if pfn < 0:
                return -1
        self._account(z, -(1 << order), self._list_mt)
        self._maybe_unboost(z)
        return pfn

    def _account(self, z: Zone, nr: int, mt: int) -> None:
        """account_freepages() / __mod_zone_freepage_state()."""
        if mt == MIGRATE_ISOLATE:
            return
        z.free_pages += nr
        if mt == MIGRATE_CMA:
            z.nr_free_cma += nr
        elif mt == MIGRATE_HIGHATOMIC:
            z.nr_free_highatomic += nr
        if nr > 0 and z.watermark_boost and z.free_pages > z.watermark[WMARK_HIGH] + z.watermark_boost:
            z.watermark_boost = 0  # kswapd would have balanced the zone by now

    def _maybe_unboost(self, z: Zone) -> None:
        if z.boosted:
            z.boosted = False  # ZONE_BOOSTED_WATERMARK: kswapd is woken (not modelled)

    # -- the buddy lists -------------------------------------------------------------
    def _add(self, pfn: int, order: int, z: Zone, mt: int, tail: bool) -> None:
        self.design.add_to_free_list(pfn, order, list_id(z.zid, order, mt), tail)
        z.nr_free[order] += 1

    def _del(self, pfn: int, order: int, z: Zone) -> None:
        self.design.del_from_free_list(pfn, order)
        z.nr_free[order] -= 1

    def _find_smallest(self, z: Zone, order: int, mt: int) -> tuple[int, int]:
        """(head, order) of the first block on the smallest non-empty list of ``mt``
        at ``order`` or above, or (-1, -1): __rmqueue_smallest()'s search.  An order
        whose nr_free is 0 has no block on any list: its peek is skipped."""
        first = self.design.first_in_list
        nr_free = z.nr_free
        lid = list_id(z.zid, order, mt)
        for co in range(order, NR_PAGE_ORDERS):
            if nr_free[co]:
                pfn = first(lid)
                if pfn >= 0:
                    return pfn, co
            lid += MIGRATE_TYPES
        return -1, -1

    def __rmqueue_smallest(self, z: Zone, order: int, mt: int) -> int:
        """__rmqueue_smallest(): head of the smallest non-empty list >= order, split."""
        pfn, co = self._find_smallest(z, order, mt)
        if pfn < 0:
            return -1
        self._del(pfn, co, z)
        self.expand(z, pfn, order, co, mt)
        self._list_mt = mt
        self.counters.zone_locked += 1
        return pfn

    def expand(self, z: Zone, pfn: int, low: int, high: int, mt: int) -> None:
        """expand(): the upper halves go back to the head of mt's lists."""
        if high > low:
            d = self.design
            if self._design_split:
                d.on_split_free(pfn, high)
            add = d.add_to_free_list
            nr_free = z.nr_free
            lid = list_id(z.zid, high, mt)
            size = 1 << high
            while high > low:
                high -= 1
                size >>= 1
                lid -= MIGRATE_TYPES
                add(pfn + size, high, lid, False)
                nr_free[high] += 1

    def __rmqueue(self, z: Zone, order: int, mt: int, alloc_flags: int, mode: list[int] | None = None) -> int:
        """__rmqueue(): CMA balancing, requested type, CMA, then fallback.

        6.19 (since 6.16, "speed up fallbacks in rmqueue_bulk()"): ``mode`` is
        rmqueue_bulk()'s ``enum rmqueue_mode``, kept across its iterations, so a refill
        that had to fall back skips the searches that failed before: CMA mode starts at
        the CMA fallback, steal mode goes straight to stealing, a claim resets it."""
        if alloc_flags & ALLOC_CMA and z.nr_free_cma > z.free_pages // 2:
            pfn = self.__rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn
        if self.k61:
            while True:
                pfn = self.__rmqueue_smallest(z, order, mt)
                if pfn >= 0:
                    return pfn
                if alloc_flags & ALLOC_CMA:
                    pfn = self.__rmqueue_smallest(z, order, MIGRATE_CMA)
                    if pfn >= 0:
                        return pfn
                if not self.__rmqueue_fallback_61(z, order, mt, alloc_flags):
                    return -1
        m = mode[0] if mode is not None else RMQUEUE_NORMAL
        if m <= RMQUEUE_NORMAL:
            pfn = self.__rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn
        if m <= RMQUEUE_CMA and alloc_flags & ALLOC_CMA:
            pfn = self.__rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                if mode is not None:
                    mode[0] = RMQUEUE_CMA
                return pfn
        if m <= RMQUEUE_CLAIM:
            pfn = self.__rmqueue_claim(z, order, mt, alloc_flags)
            if pfn >= 0:
                if mode is not None:
                    mode[0] = RMQUEUE_NORMAL  # the preferred free list is replenished
                return pfn
        if not alloc_flags & ALLOC_NOFRAGMENT:
            pfn = self.__rmqueue_steal(z, order, mt)
            if pfn >= 0 and mode is not None:
                mode[0] = RMQUEUE_STEAL
            return pfn
        return -1

    # -- fallback ----------------------------------------------------------------------
    def can_steal_fallback(self, order: int, start_mt: int) -> bool:
        """can_steal_fallback() (6.1) / should_try_claim_block() (6.19)."""
        if order >= self.pageblock_order:
            return True
        return (order >= self.pageblock_order // 2 or start_mt == MIGRATE_RECLAIMABLE
                or start_mt == MIGRATE_UNMOVABLE)

    def find_suitable_fallback(self, z: Zone, order: int, mt: int) -> int:
        """First fallback migratetype with a non-empty list at ``order``, or -1."""
        if not z.nr_free[order]:
            return -1
        first = self.design.first_in_list
        for fmt in FALLBACKS[mt]:
            if first(list_id(z.zid, order, fmt)) >= 0:
                return fmt
        return -1

    def __rmqueue_fallback_61(self, z: Zone, order: int, start_mt: int, alloc_flags: int) -> bool:
        """6.1 __rmqueue_fallback(): steal from the largest fallback block."""
        min_order = order
        if order < self.pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = self.pageblock_order
        found = -1
        co = MAX_PAGE_ORDER
        can_steal = False
        while co >= min_order:
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt != -1:
                can_steal = self.can_steal_fallback(co, start_mt)
                if not can_steal and start_mt == MIGRATE_MOVABLE and co > order:
                    # find_smallest
                    for co2 in range(order, NR_PAGE_ORDERS):
                        fmt = self.find_suitable_fallback(z, co2, start_mt)
                        if fmt != -1:
                            co = co2
                            can_steal = self.can_steal_fallback(co, start_mt)
                            break
                found = fmt
                break
            co -= 1
        if found == -1:
            return False
        pfn = self.design.first_in_list(list_id(z.zid, co, found))
        self.steal_suitable_fallback(z, pfn, co, alloc_flags, start_mt, can_steal)
        self._trace_extfrag(pfn, start_mt)
        return True

    def _trace_extfrag(self, pfn: int, alloc_mt: int) -> None:
        c = self.counters
        c.extfrag += 1
        if self.get_pageblock_migratetype(pfn) == alloc_mt:
            c.extfrag_change_ownership += 1

    def steal_suitable_fallback(self, z: Zone, pfn: int, co: int, alloc_flags: int, start_mt: int,
                                whole_block: bool) -> None:
        """6.1 steal_suitable_fallback()."""
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
        self._del(pfn, co, z)
        self._add(pfn, co, z, start_mt, True)

    def __rmqueue_claim(self, z: Zone, order: int, start_mt: int, alloc_flags: int) -> int:
        """6.19 __rmqueue_claim(): claim a whole pageblock of a fallback type."""
        min_order = order
        if order < self.pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = self.pageblock_order
        for co in range(MAX_PAGE_ORDER, min_order - 1, -1):
            if not self.can_steal_fallback(co, start_mt):
                return -1
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt == -1:
                continue
            pfn = self.design.first_in_list(list_id(z.zid, co, fmt))
            got = self.try_to_claim_block(z, pfn, co, order, start_mt, fmt, alloc_flags)
            if got >= 0:
                self._trace_extfrag(got, start_mt)
                return got
        return -1

    def try_to_claim_block(self, z: Zone, pfn: int, co: int, order: int, start_mt: int, block_mt: int,
                           alloc_flags: int) -> int:
        if co >= self.pageblock_order:
            self._del(pfn, co, z)
            self._account(z, -(1 << co), block_mt)
            self.change_pageblock_range(pfn, co, start_mt)
            self._account(z, 1 << co, start_mt)
            self.expand(z, pfn, order, co, start_mt)
            # the caller accounts the allocated part as leaving start_mt
            self._list_mt = start_mt
            return pfn
        if self.boost_watermark(z) and alloc_flags & ALLOC_KSWAPD:
            z.boosted = True
        start = pfn & ~(self.pageblock_nr_pages - 1)
        if not (z.start_pfn <= start and start + self.pageblock_nr_pages <= z.end_pfn):
            return -1
        free, movable = self._count_block(start)
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
            return self.__rmqueue_smallest(z, order, start_mt)
        return -1

    def __rmqueue_steal(self, z: Zone, order: int, start_mt: int) -> int:
        """6.19 __rmqueue_steal(): take one fallback block, no ownership change."""
        for co in range(order, NR_PAGE_ORDERS):
            fmt = self.find_suitable_fallback(z, co, start_mt)
            if fmt == -1:
                continue
            pfn = self.design.first_in_list(list_id(z.zid, co, fmt))
            self._del(pfn, co, z)
            self.expand(z, pfn, order, co, fmt)
            self._list_mt = fmt
            self._trace_extfrag(pfn, start_mt)
            return pfn
        return -1

    def boost_watermark(self, z: Zone) -> bool:
        if not WATERMARK_BOOST_FACTOR or self.pageblock_nr_pages * 4 > z.managed:
            return False
        max_boost = max(self.pageblock_nr_pages, z.watermark[WMARK_HIGH] * WATERMARK_BOOST_FACTOR // 10000)
        z.watermark_boost = min(z.watermark_boost + self.pageblock_nr_pages, max_boost)
        return True

    def _count_block(self, start: int) -> tuple[int, int]:
        """Free and movable pages in one pageblock (prep_move_freepages_block)."""
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

    def move_freepages_block(self, z: Zone, pfn: int, mt: int) -> tuple[int, int]:
        """move_freepages_block(): every free buddy in the pageblock to mt's lists
        (tail), returning (pages moved, movable pages seen). 0 if the block
        crosses the zone end."""
        start = pfn & ~(self.pageblock_nr_pages - 1)
        end = start + self.pageblock_nr_pages
        if start < z.start_pfn:
            start = pfn
        if end > z.end_pfn:
            return 0, 0
        moved = movable = 0
        p = start
        bo = self.design.buddy_order
        astate = self.alloc_state
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
            self._del(p, o, z)
            self._add(p, o, z, mt, True)
            if old != mt:
                self._account(z, -(1 << o), old)
                self._account(z, 1 << o, mt)
            p += 1 << o
            moved += 1 << o
        return moved, movable

    # -- pageblocks ----------------------------------------------------------------------
    def get_pageblock_migratetype(self, pfn: int) -> int:
        return self.pb_mt[pfn >> self.pageblock_order]

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        b = pfn >> self.pageblock_order
        if self.pb_mt[b] != mt:
            self.pb_mt[b] = mt

    def change_pageblock_range(self, pfn: int, order: int, mt: int) -> None:
        n = 1 << max(0, order - self.pageblock_order)
        b = pfn >> self.pageblock_order
        for i in range(n):
            if self.pb_mt[b + i] != mt:
                self.counters.pageblock_claims += 1
            self.pb_mt[b + i] = mt

    # -- highatomic ------------------------------------------------------------------------
    def reserve_highatomic_pageblock(self, pfn: int, z: Zone, order: int) -> None:
        if self.k61:
            max_managed = z.managed // 100 + self.pageblock_nr_pages
        else:
            if z.managed // 100 < self.pageblock_nr_pages:
                return
            max_managed = -(-(z.managed // 100) // self.pageblock_nr_pages) * self.pageblock_nr_pages
        if z.nr_reserved_highatomic >= max_managed:
            return
        mt = self.get_pageblock_migratetype(pfn)
        if mt < MIGRATE_PCPTYPES and (self.k61 or order <= self.pageblock_order):
            z.nr_reserved_highatomic += self.pageblock_nr_pages
            self.move_freepages_block(z, pfn, MIGRATE_HIGHATOMIC)
            self.set_pageblock_migratetype(pfn, MIGRATE_HIGHATOMIC)
            self.counters.highatomic_reserved += 1

    def unreserve_highatomic_pageblock(self, z: Zone, mt: int, force: bool) -> bool:
        """unreserve_highatomic_pageblock(): give one reserved block back."""
        if not force and z.nr_reserved_highatomic <= self.pageblock_nr_pages:
            return False
        first = self.design.first_in_list
        for o in range(NR_PAGE_ORDERS):
            pfn = first(list_id(z.zid, o, MIGRATE_HIGHATOMIC))
            if pfn < 0:
                continue
            self.move_freepages_block(z, pfn, mt)
            if self.get_pageblock_migratetype(pfn) == MIGRATE_HIGHATOMIC:
                z.nr_reserved_highatomic -= min(self.pageblock_nr_pages, z.nr_reserved_highatomic)
                self.set_pageblock_migratetype(pfn, mt)
            self.counters.highatomic_unreserved += 1
            return True
        return False

    # ------------------------------------------------------------------------------
    # freeing
    # ------------------------------------------------------------------------------
    def check_free(self, pfn: int, order: int) -> int:
        """Validate a free_pages() call; returns the alloc_state byte. Raises BadCall."""
        if not 0 <= pfn < self.nr_pfns:
            raise BadCall(f"free of pfn {pfn:#x} out of range (max_pfn {self.machine.max_pfn:#x})", pfn, order)
        if not 0 <= order <= MAX_PAGE_ORDER:
            raise BadCall(f"free of pfn {pfn:#x}: order {order} out of range 0..{MAX_PAGE_ORDER}", pfn, order)
        st = self.alloc_state[pfn]
        if st and not st & AS_PCP:
            have = (st & AS_ORDER_MASK) - 1
            if have != order:
                raise BadCall(f"free of pfn {pfn:#x} with order {order}, but it was allocated with order {have}",
                              pfn, order)
            return st
        if self.zid_of_pfn[pfn] == NO_ZONE or not self.present_mask[pfn]:
            raise BadCall(f"free of pfn {pfn:#x} in a memory hole", pfn, order)
        if self.reserved_np[pfn]:
            raise BadCall(f"free of reserved pfn {pfn:#x}", pfn, order)
        if st & AS_PCP or self.free_block_containing(pfn) >= 0:
            raise BadCall(f"double free of pfn {pfn:#x} (order {order}): it is already free", pfn, order)
        head = self.allocated_block_containing(pfn)
        if head >= 0:
            raise BadCall(f"free of pfn {pfn:#x}: not the head of an allocated block (inside the "
                          f"order-{(self.alloc_state[head] & AS_ORDER_MASK) - 1} block at {head:#x})", pfn, order)
        raise BadCall(f"free of pfn {pfn:#x}: not allocated", pfn, order)

    def free_block_containing(self, pfn: int) -> int:
        """Head pfn of the free buddy block containing pfn, or -1."""
        bo = self.design.buddy_order
        for o in range(NR_PAGE_ORDERS):
            head = pfn & ~((1 << o) - 1)
            ho = bo(head)
            if ho >= o:
                return head if head + (1 << ho) > pfn else -1
        return -1

    def allocated_block_containing(self, pfn: int) -> int:
        astate = self.alloc_state
        for o in range(NR_PAGE_ORDERS):
            head = pfn & ~((1 << o) - 1)
            st = astate[head]
            if st and not st & AS_PCP and head + (1 << ((st & AS_ORDER_MASK) - 1)) > pfn:
                return head
        return -1

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        """__free_pages(): to the pcp list for small orders (free_unref_page(),
        inlined: every free takes it), else to buddy."""
        astate = self.alloc_state
        st = astate[pfn] if 0 <= pfn < self.nr_pfns else 0
        if not st or st & AS_PCP or (st & AS_ORDER_MASK) != order + 1:
            self.check_free(pfn, order)  # raises with the precise reason
        if cpu < 0 or cpu >= self.nr_cpus:
            raise BadCall(f"cpu {cpu} out of range 0..{self.nr_cpus - 1}", pfn, order)
        self.in_free_path += 1
        try:
            counters = self.counters
            if st & AS_META:
                counters.meta_frees += 1
            self.design.free_prepare(pfn, order)
            counters.pgfree += 1
            z = self.zones[self.zid_of_pfn[pfn]]
            mt = self.pb_mt[pfn >> self.pageblock_order]
            if not self._pcp_ok[order] or mt == MIGRATE_ISOLATE:
                astate[pfn] = 0
                self.free_one_page(z, pfn, order, mt, FPI_NONE)
                return
            # free_unref_page() / free_unref_page_commit()
            if mt >= MIGRATE_PCPTYPES:
                mt = MIGRATE_MOVABLE
            pcp = z.pcp[cpu]
            pindex = MIGRATE_PCPTYPES * order + mt if order <= PAGE_ALLOC_COSTLY_ORDER else self._pindex(order, mt)
            pcp.lists[pindex].appendleft(pfn)
            astate[pfn] = AS_PCP | (order + 1)
            pcp.count += 1 << order
            free_high = bool(pcp.free_factor and order and order <= PAGE_ALLOC_COSTLY_ORDER)
            high = 0 if free_high else pcp.high
            if pcp.count >= high:
                self.free_pcppages_bulk(z, self._nr_pcp_free(pcp, high, pcp.batch, free_high), pcp, pindex)
        finally:
            self.in_free_path -= 1

    @staticmethod
    def _nr_pcp_free(pcp: PerCpuPages, high: int, batch: int, free_high: bool) -> int:
        if free_high:
            return pcp.count
        if high < batch:
            return 1
        min_nr, max_nr = batch, high - batch
        batch <<= pcp.free_factor
        if batch < max_nr:
            pcp.free_factor += 1
        return min(max(batch, min_nr), max_nr)

    def free_pcppages_bulk(self, z: Zone, count: int, pcp: PerCpuPages, pindex: int) -> None:
        """free_pcppages_bulk(): requested list first, then round-robin, oldest first."""
        nl = self.nr_pcp_lists
        pindex -= 1
        astate = self.alloc_state
        counters = self.counters
        pb_mt = self.pb_mt
        pbo = self.pageblock_order
        count = min(count, pcp.count)
        while count > 0:
            while True:
                pindex += 1
                if pindex > nl - 1:
                    pindex = 0
                lst = pcp.lists[pindex]
                if lst:
                    break
            order = self._pindex_order(pindex)
            nr = 1 << order
            while count > 0 and lst:
                pfn = lst.pop()
                count -= nr
                pcp.count -= nr
                astate[pfn] = 0
                counters.pcp_drain += 1
                self.free_one_page(z, pfn, order, pb_mt[pfn >> pbo], FPI_NONE)

    def drain_zone_pages(self, z: Zone, cpu: int) -> None:
        pcp = z.pcp[cpu]
        if pcp.count:
            self.free_pcppages_bulk(z, pcp.count, pcp, 0)

    def drain_all_pages(self, zone: Zone | None = None) -> None:
        """drain_all_pages(): every CPU's pcp lists back to buddy."""
        self.counters.drain_all += 1
        for z in [zone] if zone else self.zones:
            for cpu in range(self.nr_cpus):
                self.drain_zone_pages(z, cpu)

    def free_one_page(self, z: Zone, pfn: int, order: int, mt: int, fpi: int) -> None:
        """free_one_page(); 6.19 splits blocks larger than a pageblock first."""
        if not self.k61 and order > self.pageblock_order:
            self._free_one_page_split(pfn, z, order, fpi)
        else:
            self.__free_one_page(pfn, z, order, mt, fpi)

    def _free_one_page_split(self, pfn: int, z: Zone, order: int, fpi: int) -> None:
        """split_large_buddy(): each pageblock-sized piece with its own type."""
        if order <= self.pageblock_order:
            self.__free_one_page(pfn, z, order, self.get_pageblock_migratetype(pfn), fpi)
            return
        step = 1 << self.pageblock_order
        end = pfn + (1 << order)
        if self.k61:
            # boot frees whole max-order chunks; the cross-pageblock rule applies in merging
            mts = {self.get_pageblock_migratetype(p) for p in range(pfn, end, step)}
            if len(mts) == 1:
                self.__free_one_page(pfn, z, order, mts.pop(), fpi)
                return
        for p in range(pfn, end, step):
            self.__free_one_page(p, z, self.pageblock_order, self.get_pageblock_migratetype(p), fpi)

    def __free_one_page(self, pfn: int, z: Zone, order: int, mt: int, fpi: int) -> None:
        """__free_one_page(): merge with free buddies up to MAX_PAGE_ORDER."""
        d = self.design
        page_is_buddy = d.page_is_buddy
        nr_free = z.nr_free
        zid = z.zid
        pbo = self.pageblock_order
        self._account(z, 1 << order, mt)
        buddy = 0
        while order < MAX_PAGE_ORDER:
            buddy = pfn ^ (1 << order)
            if not page_is_buddy(buddy, order, zid):
                break
            if order >= pbo:
                bmt = self.pb_mt[buddy >> pbo]
                if bmt != mt and (mt >= MIGRATE_PCPTYPES or bmt >= MIGRATE_PCPTYPES):
                    break
            else:
                bmt = mt
            d.del_from_free_list(buddy, order)
            nr_free[order] -= 1
            if bmt != mt and not self.k61:
                # 6.19: match the buddy's pageblock(s) to the freeing type
                b0 = buddy >> pbo
                for i in range(1 << (order - pbo)):
                    self.pb_mt[b0 + i] = mt
            pfn &= buddy
            order += 1
        if fpi & FPI_TO_TAIL:
            tail = True
        elif order < MAX_PAGE_ORDER - 1:
            # buddy_merge_likely(): is the next-order buddy of the merged block free?
            higher = (buddy & pfn) ^ (1 << (order + 1))
            tail = page_is_buddy(higher, order + 1, zid)
        else:
            tail = False
        d.add_to_free_list(pfn, order, list_id(zid, order, mt), tail)
        nr_free[order] += 1

    # ------------------------------------------------------------------------------
    # taking specific free pages (pfn-exact replay, alloc_contig_range, isolation)
    # ------------------------------------------------------------------------------
    def take_free_block(self, pfn: int, order: int) -> bool:
        """Take [pfn, pfn+2^order) off the free lists if it is entirely free inside
        one buddy block (or is a pcp page of that order); split the rest back.
        Like __isolate_free_page() + split_free_page(). Caller marks it allocated."""
        st = self.alloc_state[pfn]
        if st & AS_PCP:
            if (st & AS_ORDER_MASK) - 1 != order:
                return False
            z = self.zones[self.zid_of_pfn[pfn]]
            for pcp in z.pcp:
                for lst in pcp.lists:
                    if pfn in lst:
                        lst.remove(pfn)
                        pcp.count -= 1 << order
                        self.alloc_state[pfn] = 0
                        return True
            return False
        head = self.free_block_containing(pfn)
        if head < 0:
            return False
        ho = self.design.buddy_order(head)
        if ho < order or pfn & ((1 << order) - 1):
            return False
        z = self.zones[self.zid_of_pfn[head]]
        mt = self.get_pageblock_migratetype(head)
        self._del(head, ho, z)
        self._account(z, -(1 << ho), mt)
        # give back everything in [head, head+2^ho) except the target, as aligned pieces
        cur_pfn, cur_order = head, ho
        while cur_order > order:
            cur_order -= 1
            half = cur_pfn + (1 << cur_order)
            if pfn >= half:
                keep, give = half, cur_pfn
            else:
                keep, give = cur_pfn, half
            gmt = self.get_pageblock_migratetype(give)
            self._add(give, cur_order, z, gmt, False)
            self._account(z, 1 << cur_order, gmt)
            cur_pfn = keep
        return True

    @contextmanager
    def buddy_only(self):
        """Allocations inside go straight to the buddy lists, never through pcp:
        for allocations made while the free path holds pcp->lock (and may be
        walking the pcp lists in free_pcppages_bulk), e.g. a design's metadata."""
        saved = self._pcp_ok
        self._pcp_ok = [False] * NR_PAGE_ORDERS
        try:
            yield
        finally:
            self._pcp_ok = saved

    def take_free_range(self, pfn: int, order: int) -> None:
        """Take every page of the aligned [pfn, pfn + 2^order) off the free lists,
        in as few pieces as the free blocks allow (isolate_freepages_range() after
        test_pages_isolated(): the caller guarantees the whole range is free)."""
        if self.take_free_block(pfn, order):
            return
        if order == 0:
            raise MemdescError(f"pfn {pfn:#x} is not free (expected after test_pages_isolated)")
        self.take_free_range(pfn, order - 1)
        self.take_free_range(pfn + (1 << (order - 1)), order - 1)

    def alloc_pages_at(self, gfp: int, order: int, pfn: int, kind: str | None = None) -> int:
        """Allocate exactly the block at ``pfn`` if it is free (pfn-exact trace
        replay: follow the real kernel's placement). Returns pfn or -1."""
        if order < 0 or order > MAX_PAGE_ORDER:
            raise BadCall(f"order {order} out of range 0..{MAX_PAGE_ORDER}", order=order)
        info = self._gfp_cache.get(gfp) or self.gfp_info(gfp)
        if not 0 <= pfn < self.nr_pfns or pfn & ((1 << order) - 1) or self.zid_of_pfn[pfn] == NO_ZONE:
            return -1
        k = kind if kind is not None else "misc"
        token = self.design.prep_alloc(order, k, gfp)
        if token is None:
            return self._fail(FAIL_DESCRIPTOR, order)
        if not self.take_free_block(pfn, order):
            self.design.abort_alloc(token)
            return -1
        st = order + 1
        if info.migratetype == MIGRATE_MOVABLE:
            st |= AS_MOVABLE
        if k.startswith("meta"):
            st |= AS_META
        self.alloc_state[pfn] = st
        self.design.post_alloc(pfn, order, k, token)
        self.counters.pgalloc += 1
        return pfn

    def mark_allocated(self, pfn: int, order: int, kind: str = "misc", movable: bool = False) -> None:
        """Record a block taken with take_free_block() as allocated."""
        st = order + 1
        if movable:
            st |= AS_MOVABLE
        if kind.startswith("meta"):
            st |= AS_META
        self.alloc_state[pfn] = st
        self.design.post_alloc(pfn, order, kind, 0)
        self.counters.pgalloc += 1

    # ------------------------------------------------------------------------------
    # introspection
    # ------------------------------------------------------------------------------
    def zone_of(self, pfn: int) -> Zone:
        return self.zones[self.zid_of_pfn[pfn]]

    def free_count(self, z: Zone, order: int, mt: int) -> int:
        """Length of one free list (pagetypeinfo walks it, capped by the caller)."""
        return sum(1 for _ in self.design.list_pfns(list_id(z.zid, order, mt)))

    def pcp_pages(self, z: Zone) -> int:
        return sum(p.count for p in z.pcp)

    def totals(self) -> dict[str, Any]:
        """Page conservation per zone: free + pcp + allocated + metadata + reserved."""
        st = np.frombuffer(self.alloc_state, dtype=np.uint8)
        heads = np.nonzero((st != 0) & ((st & AS_PCP) == 0))[0]
        orders = (st[heads] & AS_ORDER_MASK).astype(np.int64) - 1
        meta = (st[heads] & AS_META) != 0
        zid = np.frombuffer(self.zid_of_pfn, dtype=np.uint8)[heads]
        out = {}
        for z in self.zones:
            sel = zid == z.zid
            pages = np.left_shift(1, orders[sel])
            out[z.zid] = {
                "allocated": int(pages[~meta[sel]].sum()),
                "metadata": int(pages[meta[sel]].sum()),
                "free": z.free_pages + (self._isolated_free(z)),
                "pcp": self.pcp_pages(z),
                "reserved": z.reserved,
                "present": z.present,
            }
        return out

    def _isolated_free(self, z: Zone) -> int:
        if not z.nr_isolate_pageblock:
            return 0
        total = 0
        for o in range(NR_PAGE_ORDERS):
            total += self.free_count(z, o, MIGRATE_ISOLATE) << o
        return total

    def check(self, raise_on_error: bool = True) -> Any:
        """Run the exhaustive invariant checker (memdesc.mm.debug_vm)."""
        from memdesc.mm.debug_vm import check_allocator
        return check_allocator(self, raise_on_error=raise_on_error)

    def metadata_summary(self) -> dict[str, Any]:
        d = self.design
        present = self.machine.present_pages
        md = dict(d.metadata())
        md.setdefault("memmap_bytes", d.memmap_bytes())
        md["struct_page_bytes"] = d.struct_page_bytes
        md["memmap_pages"] = sum(self.memmap_pages.values())
        dyn = md.get("dynamic_bytes", 0)
        total = md["memmap_bytes"] + dyn
        gib = present * (1 << PAGE_SHIFT) / (1 << 30)
        md["total_metadata_bytes"] = total
        md["metadata_bytes_per_gib"] = total / gib if gib else 0.0
        md["metadata_pct_of_ram"] = 100.0 * total / (present << PAGE_SHIFT) if present else 0.0
        return md


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a boolean array."""
    if not len(mask):
        return []
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    starts = np.nonzero(d == 1)[0]
    ends = np.nonzero(d == -1)[0]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _subtract(ranges: list[tuple[int, int]], cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, end) ranges minus the cut ranges, sorted."""
    out = sorted(ranges)
    for cs, ce in cuts:
        nxt = []
        for s, e in out:
            if ce <= s or cs >= e:
                nxt.append((s, e))
                continue
            if s < cs:
                nxt.append((s, cs))
            if ce < e:
                nxt.append((ce, e))
        out = nxt
    return sorted(out)


def _runs_of_indices(idx: np.ndarray) -> list[tuple[int, int]]:
    if not len(idx):
        return []
    breaks = np.nonzero(np.diff(idx) != 1)[0]
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks] + 1, [idx[-1] + 1]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


__all__ = ["PageAllocator", "BadCall", "MemdescError", "Zone", "MIGRATE_TYPES"]
