"""mm/mm_init.c and memblock: boot, and the per-zone set-up that follows it.

:class:`MmInit` is the boot half of :class:`memdesc.mm.page_alloc.PageAllocator` (a
mixin; the state lives on the allocator): memmap_init (holes and memblock reservations
marked PageReserved), the pageblock types memmap_init_range() and
init_cma_reserved_pageblock() set, memblock_free_all() (every managed range freed in
max-order chunks to the tail of the free lists), then init_per_zone_wmark_min():
watermarks, lowmem_reserve and the pcp batch/high sizes. memory_hotplug calls the same
functions when memory goes offline or online.

Simplifications (docs/model.md): memblock's own allocations are a count of reserved
pages per zone (from the machine, or from the zoneinfo the machine came from) placed
top-down; a smaller struct page gives back the difference to linked's 64-byte memmap.
"""

from __future__ import annotations

from math import isqrt
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm.internal import FPI_TO_TAIL, MemdescError
from memdesc.mm.mmzone import (
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_PCPTYPES,
    MIGRATE_UNMOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGE_SHIFT,
    WMARK_HIGH,
    WMARK_LOW,
    PerCpuPages,
    Zone,
    ZoneType,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

#: pfn of 1 MiB: x86 setup_arch() reserves the RAM below it
X86_LOW_RESERVE_END = 0x100
#: sysctl_lowmem_reserve_ratio[] defaults
SYSCTL_LOWMEM_RESERVE_RATIO = {ZoneType.DMA: 256, ZoneType.DMA32: 256, ZoneType.NORMAL: 32,
                               ZoneType.HIGHMEM: 0, ZoneType.MOVABLE: 0}
WATERMARK_SCALE_FACTOR = 10
SWAP_CLUSTER_MAX = 32


class MmInit:
    """Boot and zone set-up methods of PageAllocator (mm/mm_init.c, memblock, the
    watermark and pcp sizing of mm/page_alloc.c)."""

    # -- memmap and memblock reservations -------------------------------------------------
    def memmap_pages_of_node(self: PageAllocator, nid: int, struct_page_bytes: int) -> int:
        """Pages of memmap a node needs for its present pages (sparse_init's allocation)."""
        present = sum(z.present for z in self.zones if z.nid == nid)
        return -(-present * struct_page_bytes // (1 << PAGE_SHIFT))

    def memblock_zone(self: PageAllocator, nid: int) -> Zone | None:
        """Where a node's memmap and other memblock allocations go: its highest
        populated zone that is permanently mapped kernel memory."""
        cands = [z for z in self.zones if z.nid == nid and z.populated
                 and z.ztype in (ZoneType.NORMAL, ZoneType.DMA32, ZoneType.DMA)]
        return cands[-1] if cands else None

    def mm_core_init(self: PageAllocator) -> None:
        """Boot: reservations, pageblock types, memblock_free_all(), watermarks."""
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
            mz = self.memblock_zone(nid)
            if mz is None:
                continue
            mine = self.memmap_pages_of_node(nid, d.struct_page_bytes)
            self.memmap_pages[nid] = mine
            if from_zoneinfo:
                # the kernel's reservations already hold a 64-byte memmap wherever
                # memblock put it; a smaller struct page gives the difference back,
                # taken from the node's zones with the most reserved pages first
                saved = self.memmap_pages_of_node(nid, 64) - mine
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
            for s, e in self._memblock_find_top_down(z, want, cma_ranges):
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
        self.memblock_free_all()
        self.setup_per_zone_wmarks()
        self.booted = True
        self.design.boot_done()

    def memblock_free_all(self: PageAllocator) -> None:
        """memblock_free_all(): free every managed range in max aligned chunks, to tail."""
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
                self.free_pages_memory(z, z.start_pfn + s, z.start_pfn + e)

    def _memblock_find_top_down(self: PageAllocator, z: Zone, count: int, cma: list[tuple[int, int]]
                                ) -> list[tuple[int, int]]:
        """__memblock_find_range_top_down(): the highest present, non-CMA pfns of the zone."""
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

    def free_pages_memory(self: PageAllocator, z: Zone, start: int, end: int) -> None:
        """__free_pages_memory() over [start, end): __free_pages_core() of the largest
        naturally aligned chunks, to the tail (boot, and online_pages())."""
        pfn = start
        while pfn < end:
            order = min(MAX_PAGE_ORDER, (pfn & -pfn).bit_length() - 1 if pfn else MAX_PAGE_ORDER)
            while pfn + (1 << order) > end:
                order -= 1
            self.split_large_buddy(z, pfn, order, FPI_TO_TAIL)
            pfn += 1 << order

    def setup_zone_pageset(self: PageAllocator) -> None:
        """setup_zone_pageset(): one struct per_cpu_pages per zone and CPU; the lists'
        storage comes from the design. NR_PCP_LISTS: one list per pcp migratetype and
        order up to PAGE_ALLOC_COSTLY_ORDER, plus the THP list(s): one in 6.1, two in
        6.19 (movable and the rest, NR_PCP_THP: bf14ed81f571, 6.10)."""
        nr_lists = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + (1 if self.k61 else 2)
        self.nr_pcp_lists = nr_lists
        d = self.design
        for z in self.zones:
            z.pcp = [PerCpuPages([d.new_pcp_list(z.zid, cpu, i) for i in range(nr_lists)])
                     for cpu in range(self.nr_cpus)]

    # -- watermarks: __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve, pcp sizes ----
    def is_highmem(self: PageAllocator, z: Zone) -> bool:
        """is_highmem() as __setup_per_zone_wmarks() uses it: HIGHMEM; ZONE_MOVABLE too
        in 6.19, and in 6.1 when the movable zone was carved from highmem (i386). The
        6.19 change is liuq's "mm/page_alloc: fix min_free_kbytes calculation regarding
        ZONE_MOVABLE" (commit id not verified, docs/model.md)."""
        if z.ztype == ZoneType.HIGHMEM:
            return True
        if z.ztype == ZoneType.MOVABLE:
            return (not self.k61) or self.machine.arch == "i386"
        return False

    def nr_free_buffer_pages(self: PageAllocator, with_high: bool = True) -> int:
        """nr_free_zone_pages(gfp_zone(GFP_USER)): managed - high over zones <= NORMAL."""
        total = 0
        for z in self.zones:
            if z.ztype <= ZoneType.NORMAL:
                high = z.watermark[WMARK_HIGH] if with_high else 0
                if z.managed > high:
                    total += z.managed - high
        return total

    def calculate_min_free_kbytes(self: PageAllocator) -> int:
        """calculate_min_free_kbytes() then khugepaged's set_recommended_min_free_kbytes()."""
        if self.machine.min_free_kbytes is not None:
            return self.machine.min_free_kbytes
        lowmem_kbytes = self.nr_free_buffer_pages(with_high=False) * 4
        mfk = min(max(isqrt(lowmem_kbytes * 16), 128), 262144)
        if self.thp:
            nz = sum(1 for z in self.zones if z.populated and z.ztype <= ZoneType.NORMAL)
            rec = self.pageblock_nr_pages * nz * 2 + self.pageblock_nr_pages * nz * MIGRATE_PCPTYPES ** 2
            self._setup_per_zone_wmarks(mfk)  # high watermarks exist by the time khugepaged starts
            cap = self.nr_free_buffer_pages() * 5 // 100
            rec = min(rec, cap) << (PAGE_SHIFT - 10)
            mfk = max(mfk, rec)
        return mfk

    def setup_per_zone_wmarks(self: PageAllocator) -> None:
        """init_per_zone_wmark_min(): min_free_kbytes, watermarks, lowmem_reserve, pcp sizes."""
        self.min_free_kbytes = self.calculate_min_free_kbytes()
        self._setup_per_zone_wmarks(self.min_free_kbytes)
        self.setup_per_zone_lowmem_reserve()
        self.zone_pcp_update()

    def _setup_per_zone_wmarks(self: PageAllocator, min_free_kbytes: int) -> None:
        """__setup_per_zone_wmarks()."""
        pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
        lowmem_pages = sum(z.managed for z in self.zones if not self.is_highmem(z))
        for z in self.zones:
            tmp = pages_min * z.managed // lowmem_pages if lowmem_pages else 0
            if self.is_highmem(z):
                wmin = min(max(z.managed // 1024, SWAP_CLUSTER_MAX), 128)
            else:
                wmin = tmp
            delta = max(tmp >> 2, z.managed * WATERMARK_SCALE_FACTOR // 10000)
            z.watermark_boost = 0
            z.watermark = [wmin, wmin + delta, wmin + 2 * delta, wmin + 3 * delta]

    def setup_per_zone_lowmem_reserve(self: PageAllocator) -> None:
        """setup_per_zone_lowmem_reserve(): lowmem_reserve[j] of each lower zone."""
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

    def zone_pcp_update(self: PageAllocator) -> None:
        """zone_batchsize() and zone_highsize() for every zone (steady state: no CPU
        coming online; zone_set_pageset_high_and_batch())."""
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
