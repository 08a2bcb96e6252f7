"""The page allocator core: mm/page_alloc.c.

Design-independent: zonelists, watermarks and lowmem_reserve, gfp -> allocation
context, get_page_from_freelist(), rmqueue (pcp lists and buddy), __rmqueue_smallest()
and expand(), __free_one_page() merging, the pcp lists' refill and drain, highatomic
reserves, pageblock types. Boot is in memdesc.mm.mm_init, migratetype fallback (6.1 and
6.19 side by side) in memdesc.mm.fallback. Free lists and struct page belong to the
design (memdesc.designs), reached only through the contract in designs/base.py; the
core keeps every counter.

Kernel semantics follow 6.19 by default; ``kernel="6.1"`` builds the 6.1 allocator
(:class:`PageAllocator61`): ALLOC_HARDER/ALLOC_HIGH instead of
ALLOC_NON_BLOCK/ALLOC_MIN_RESERVE, the 6.1 fallback, the merge rule across pageblocks,
pcp batch sizes and list count, highatomic limits, watermarks of ZONE_MOVABLE. Function
names are the kernel's (with one leading underscore where the kernel's has two);
docs/model.md lists the upstream commits behind each difference.

Simplifications (docs/model.md): no reclaim or kswapd (memory comes back only when the
workload frees it; a watermark boost decays when free pages pass high+boost, as kswapd
would make them), no cpusets/memcg, no page shuffling, no guard pages, pcp auto-tuning
of 6.5+ not modelled (pcp->high is high_min), the pcp migratetype is re-read from the
pageblock at drain (6.19).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from memdesc.designs.base import Design
from memdesc.machine import Machine
from memdesc.mm import gfp as G
from memdesc.mm.debug_vm import CheckReport, check_allocator
from memdesc.mm.fallback import Fallback61, Fallback619
from memdesc.mm.internal import (
    ALLOC_CMA,
    ALLOC_CPUSET,
    ALLOC_HARDER,
    ALLOC_HIGH,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    ALLOC_WMARK_MIN,
    AS_META,
    AS_MOVABLE,
    AS_ORDER_MASK,
    AS_PCP,
    FAIL_DESCRIPTOR,
    FAIL_FRAGMENTED,
    FAIL_INJECTED,
    FAIL_WATERMARK,
    FPI_NONE,
    FPI_TO_TAIL,
    GFP_ATOMIC_BIT,
    GFP_DIRECT_RECLAIM,
    GFP_HIGH,
    GFP_KSWAPD_RECLAIM,
    GFP_MEMALLOC,
    GFP_NOMEMALLOC,
    HPAGE_PMD_ORDER,
    NO_ZONE,
    RMQUEUE_NORMAL,
    AllocContext,
    AllocCounters,
    BadCall,
    CompactStats,
    MemdescError,
    MigrateStats,
    Op,
)
from memdesc.mm.mm_init import MmInit
from memdesc.mm.mmzone import (
    MAX_ORDER_NR_PAGES,
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGE_SHIFT,
    WMARK_HIGH,
    WMARK_MIN,
    PerCpuPages,
    Zone,
    ZoneType,
    list_id,
    split_list_id,
)


class PageAllocator(MmInit):
    """A machine's page allocator running one design.

    ``PageAllocator(machine, DesignClass, kernel="6.19")`` builds the allocator of that
    kernel (a :class:`PageAllocator619` or :class:`PageAllocator61`) and boots it.
    ``alloc_pages`` returns the first pfn of the block, or -1 when the allocation fails
    (``last_failure`` says why). Bad calls raise BadCall before any state changes."""

    def __new__(cls, machine: Machine, design: type[Design], kernel: str = "6.19", *args: Any,
                **kwargs: Any) -> PageAllocator:
        if cls is PageAllocator:
            cls = _BY_KERNEL.get(kernel, cls)
        return super().__new__(cls)

    def __init__(self, machine: Machine, design: type[Design], kernel: str = "6.19", pcp: bool = True,
                 design_options: dict | None = None, thp: bool = True) -> None:
        if kernel not in G.KERNELS:
            raise MemdescError(f"unknown kernel {kernel!r} (known: {', '.join(G.KERNELS)})")
        if not (isinstance(design, type) and issubclass(design, Design)):
            raise MemdescError(f"design must be a Design subclass, not {design!r} "
                               "(memdesc.designs.get_design() resolves a registered name)")
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
        self.migrate_stats = MigrateStats()  # mm/migrate.c vm events
        self.compact_stats = CompactStats()  # mm/compaction.c vm events
        self.compaction_running = False  # current->flags & PF_MEMALLOC of direct compaction
        self.offlined: dict[int, int] = {}  # memory_hotplug: {start_pfn: nr_pages} offline
        self.last_failure: str | None = None
        #: nesting depth of alloc_pages() (1 inside a top-level allocation; descriptor and
        #: metadata allocations nest); read only outside the core
        self.alloc_depth = 0
        #: > 0 while inside free_pages(): an allocation now is an allocation on the free path
        self.in_free_path = 0
        self.allocs_in_free_path = 0
        self.fail_hook: Callable[[int, int, int], bool] | None = None  # fault injection
        self.compact_hook: Callable[[Zone, int, int, int], bool] | None = None  # direct compaction
        # called as on_migrate(old_pfn, new_pfn, order) when a block moves (runner's handle map)
        self.on_migrate: Callable[[int, int, int], None] | None = None
        self._ctx_cache: dict[int, AllocContext] = {}
        self._zl_cache: dict[tuple[int, ZoneType], list[Zone]] = {}
        # pcp_allowed_order(), per order (buddy_only() swaps it)
        self._pcp_allowed = [pcp and (o <= PAGE_ALLOC_COSTLY_ORDER or (o == HPAGE_PMD_ORDER and thp))
                             for o in range(NR_PAGE_ORDERS)]
        # the kernel-version dependent alloc_flags bit of high-order atomic reserves
        self._ha_flag = ALLOC_HARDER if self.k61 else ALLOC_HIGHATOMIC

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

        self.design = design(self, **(design_options or {}))
        self.design.init_memmap()
        # hooks a design does not override are not called on the hot paths
        cls = type(self.design)
        self._design_prep = cls.prep_alloc is not Design.prep_alloc
        self._design_split = cls.on_split_free is not Design.on_split_free
        self._op_hooks = cls.op_begin is not Design.op_begin or cls.op_end is not Design.op_end
        self.setup_zone_pageset()
        self.mm_core_init()

    # ------------------------------------------------------------------------------
    # services for designs (designs/base.py CORE_SERVICES)
    # ------------------------------------------------------------------------------
    def zone_of(self, pfn: int) -> Zone:
        """page_zone() of a pfn."""
        return self.zones[self.zid_of_pfn[pfn]]

    def PageHighMem(self, pfn: int) -> bool:  # noqa: N802 - the kernel's name
        """PageHighMem(): the page is not permanently mapped (ZONE_HIGHMEM, or
        ZONE_MOVABLE when it was carved from highmem, zone_movable_is_highmem())."""
        zt = self.zones[self.zid_of_pfn[pfn]].ztype
        return zt == ZoneType.HIGHMEM or (zt == ZoneType.MOVABLE and self.machine.arch == "i386")

    def pageblock_base_migratetype(self, pfn: int) -> int:
        """The pageblock's migratetype underneath MIGRATE_ISOLATE (6.19 keeps it in the
        3 type bits beside PB_migrate_isolate; 6.1 saves it at isolation)."""
        b = pfn >> self.pageblock_order
        mt = self.pb_mt[b]
        return self.pb_saved[b] if mt == MIGRATE_ISOLATE else mt

    def nr_pcp_blocks(self) -> int:
        """Blocks on the pcp lists of every zone and CPU."""
        n = 0
        for z in self.zones:
            for p in z.pcp:
                if p.count:
                    for lst in p.lists:
                        n += len(lst)
        return n

    @contextmanager
    def buddy_only(self) -> Iterator[None]:
        """Allocations inside go straight to the buddy lists, never through pcp:
        for allocations made while the free path holds pcp->lock (and may be
        walking the pcp lists in free_pcppages_bulk), e.g. a design's metadata."""
        saved = self._pcp_allowed
        self._pcp_allowed = [False] * NR_PAGE_ORDERS
        try:
            yield
        finally:
            self._pcp_allowed = saved

    def carve_meta_page(self, pfn: int, order: int, lid: int, tail: bool, kind: str,
                        on_page: Callable[[int], None]) -> int:
        """For a design that cannot hold the free block [pfn, pfn + 2^order) it is asked
        to add to list ``lid`` (the core has counted it there): its last page becomes an
        allocated metadata block of ``kind`` (``on_page(npfn)`` runs as soon as it is),
        the rest is added back as free blocks of orders order-1 .. 0. Returns npfn."""
        zid, _, mt = split_list_id(lid)
        z = self.zones[zid]
        npfn = pfn + (1 << order) - 1
        self.account_freepages(z, -1, mt)
        z.nr_free[order] -= 1
        self.mark_allocated(npfn, 0, kind)
        on_page(npfn)
        p = pfn
        for j in range(order - 1, -1, -1):
            self._add_to_free_list(z, p, j, mt, tail)
            p += 1 << j
        return npfn

    # ------------------------------------------------------------------------------
    # gfp -> allocation context (prepare_alloc_pages, gfp_to_alloc_flags)
    # ------------------------------------------------------------------------------
    def alloc_context(self, gfp: int) -> AllocContext:
        """The allocation context of a gfp mask (cached); BadCall for a mask the kernel
        would BUG on."""
        ac = self._ctx_cache.get(gfp)
        if ac is None:
            try:
                G.validate_gfp(gfp, self.kernel)
            except G.GfpError as e:
                raise BadCall(str(e)) from None
            ac = self.prepare_alloc_pages(gfp)
            self._ctx_cache[gfp] = ac
        return ac

    def prepare_alloc_pages(self, gfp: int) -> AllocContext:
        """prepare_alloc_pages() + gfp_to_alloc_flags() + __gfp_pfmemalloc_flags().

        6.1 -> 6.19: ALLOC_HARDER (from __GFP_ATOMIC) became ALLOC_NON_BLOCK,
        ALLOC_MIN_RESERVE and ALLOC_HIGHATOMIC (Mel Gorman, 6.3: 524c48072e56,
        eb2e2b425c69, ab3508854353, 1ebbb21811b7; 2973d8229b78 "mm: discard
        __GFP_ATOMIC"); f945116e4e19 (6.6) removed 6.1's pcp bypass for MOVABLE
        requests without ALLOC_CMA (``pcp_skip``)."""
        hz = G.gfp_zone(gfp)
        types = self.machine.kernel_zone_types
        if hz == ZoneType.HIGHMEM and ZoneType.HIGHMEM not in types:
            hz = ZoneType.NORMAL
        if hz == ZoneType.DMA32 and ZoneType.DMA32 not in types:
            hz = ZoneType.NORMAL
        mt = G.gfp_migratetype(gfp)
        cma = ALLOC_CMA if (self.machine.config_cma and mt == MIGRATE_MOVABLE) else 0
        fast = ALLOC_WMARK_LOW | cma | (gfp & GFP_KSWAPD_RECLAIM and ALLOC_KSWAPD)
        # gfp_to_alloc_flags()
        slow = ALLOC_WMARK_MIN | ALLOC_CPUSET | cma
        if gfp & GFP_HIGH:
            slow |= ALLOC_HIGH  # == ALLOC_MIN_RESERVE
        if gfp & GFP_KSWAPD_RECLAIM:
            slow |= ALLOC_KSWAPD
        if self.k61:
            if gfp & GFP_ATOMIC_BIT and not gfp & GFP_NOMEMALLOC:
                slow |= ALLOC_HARDER
                slow &= ~ALLOC_CPUSET
        else:
            if not gfp & GFP_DIRECT_RECLAIM and not gfp & GFP_NOMEMALLOC:
                slow |= ALLOC_NON_BLOCK
                if slow & ALLOC_MIN_RESERVE:
                    slow |= ALLOC_HIGHATOMIC  # only used for order > 0
            if slow & ALLOC_MIN_RESERVE:
                slow &= ~ALLOC_CPUSET
        reserve = 0
        if gfp & GFP_MEMALLOC and not gfp & GFP_NOMEMALLOC:
            reserve = ALLOC_NO_WATERMARKS
        ac = AllocContext(hz, mt, fast, slow, reserve, bool(gfp & GFP_DIRECT_RECLAIM))
        for nid in range(self.nr_nodes):
            zl = self.zonelist(nid, hz)
            ac.zl_by_node.append(zl)
            ac.fast_by_node.append(fast | self.alloc_flags_nofragment(zl))
        ac.st_base = AS_MOVABLE if mt == MIGRATE_MOVABLE else 0
        ac.pindex = [self.order_to_pindex(o, mt) if o <= PAGE_ALLOC_COSTLY_ORDER or o == HPAGE_PMD_ORDER else -1
                     for o in range(NR_PAGE_ORDERS)]
        ac.pcp_skip = self.k61 and self.machine.config_cma and mt == MIGRATE_MOVABLE and not cma
        return ac

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

    def alloc_flags_nofragment(self, zl: list[Zone]) -> int:
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
        ac = self._ctx_cache.get(gfp) or self.alloc_context(gfp)
        if nid < 0:
            if cpu < 0 or cpu >= self.nr_cpus:
                raise BadCall(f"cpu {cpu} out of range 0..{self.nr_cpus - 1}")
            nid = self.cpu_to_node[cpu]
        elif nid >= self.nr_nodes:
            raise BadCall(f"node {nid} out of range 0..{self.nr_nodes - 1}")
        if self.in_free_path:
            self.allocs_in_free_path += 1
        depth = self.alloc_depth + 1
        self.alloc_depth = depth
        counters = self.counters
        if depth > counters.max_recursion:
            counters.max_recursion = depth
        hooks = self._op_hooks
        if hooks:
            self.design.op_begin(Op.ALLOC, False, self.in_free_path > 0)
        try:
            if self.fail_hook is not None and self.fail_hook(gfp, order, depth):
                return self._fail(FAIL_INJECTED, order)
            k = kind if kind is not None else "misc"
            design = self.design
            token = design.prep_alloc(order, k, gfp) if self._design_prep else 0
            if token is None:
                return self._fail(FAIL_DESCRIPTOR, order)
            zl = ac.zl_by_node[nid]
            pfn = self.get_page_from_freelist(gfp, order, ac.fast_by_node[nid], zl, ac, cpu)
            if pfn < 0:
                pfn = self._alloc_pages_slowpath(gfp, order, zl, ac, cpu)
                if pfn < 0:
                    design.abort_alloc(token)
                    return -1
            if movable is None:
                st = ac.st_base + order + 1
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
            self.alloc_depth -= 1
            if hooks:
                self.design.op_end(Op.ALLOC)

    def _fail(self, reason: str, order: int) -> int:
        self.last_failure = reason
        c = self.counters
        c.alloc_fail[reason] = c.alloc_fail.get(reason, 0) + 1
        c.alloc_fail_order[order] += 1
        return -1

    def _alloc_pages_slowpath(self, gfp: int, order: int, zl: list[Zone], ac: AllocContext, cpu: int) -> int:
        """__alloc_pages_slowpath() without reclaim: min watermark, reserves,
        direct compaction (if hooked), one drain of pcp + highatomic unreserve."""
        self.counters.slowpath += 1
        flags = ac.slow_flags
        if not self.k61 and not (order > 0 and flags & ALLOC_MIN_RESERVE):
            flags &= ~ALLOC_HIGHATOMIC
        pfn = self.get_page_from_freelist(gfp, order, flags, zl, ac, cpu)
        if pfn >= 0:
            return pfn
        costly = order > PAGE_ALLOC_COSTLY_ORDER
        if (ac.can_direct_reclaim and (costly or (order > 0 and ac.migratetype != MIGRATE_MOVABLE))
                and self.compact_hook is not None and not ac.reserve_flags):
            if self.compact_hook(zl[0], order, gfp, ac.migratetype):
                pfn = self.get_page_from_freelist(gfp, order, flags, zl, ac, cpu)
                if pfn >= 0:
                    return pfn
        if ac.reserve_flags:
            pfn = self.get_page_from_freelist(gfp, order, flags | ac.reserve_flags, zl, ac, cpu)
            if pfn >= 0:
                return pfn
        if not ac.can_direct_reclaim:
            return self._fail(self._failure_reason(order, zl), order)
        # __alloc_pages_direct_reclaim: nothing to reclaim here, but the retry after
        # unreserve_highatomic_pageblock(force=false) and drain_all_pages() is real.
        for z in zl:
            self.unreserve_highatomic_pageblock(z, ac.migratetype, force=False)
        self.drain_all_pages()
        pfn = self.get_page_from_freelist(gfp, order, flags, zl, ac, cpu)
        if pfn >= 0:
            return pfn
        if self.compact_hook is not None and order > 0:
            if self.compact_hook(zl[0], order, gfp, ac.migratetype):
                pfn = self.get_page_from_freelist(gfp, order, flags, zl, ac, cpu)
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
                               ac: AllocContext, cpu: int) -> int:
        """get_page_from_freelist(): first zone passing its watermark that rmqueues.

        The order-0 zone_watermark_fast() shortcut and rmqueue() (a pcp list hit,
        else rmqueue_pcplist() refill, else rmqueue_buddy()) are inlined: they are
        the hot path of every run."""
        hz = ac.highest
        use_pcp = self._pcp_allowed[order] and not ac.pcp_skip
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
                    lst = pcp.lists[ac.pindex[order]]
                    if lst:
                        pcp.free_factor >>= 1
                        pfn = lst.popleft()
                        pcp.count -= 1 << order
                        self.alloc_state[pfn] = 0
                    else:
                        pfn = self.rmqueue_pcplist(z, order, ac.migratetype, alloc_flags, cpu)
                        if pfn < 0:
                            pfn = self.rmqueue_buddy(z, order, alloc_flags, ac.migratetype)
                else:
                    pfn = self.rmqueue_buddy(z, order, alloc_flags, ac.migratetype)
                if pfn >= 0:
                    if order and alloc_flags & self._ha_flag:
                        self.reserve_highatomic_pageblock(pfn, z, order)
                    return pfn
            if restart:
                continue
            if no_fallback:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                continue
            return -1

    def _zone_watermark_unusable_free(self, z: Zone, order: int, alloc_flags: int) -> int:
        """__zone_watermark_unusable_free(): 6.1 keeps the whole reserved highatomic
        pageblocks out, 6.19 only their free pages (nr_free_highatomic, c928807f6f6b
        "mm/page_alloc: keep track of free highatomic", 6.12)."""
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
        """zone_watermark_fast(): the order-0 shortcut, __zone_watermark_ok(), and the
        retry at the unboosted min watermark for atomic order-0 requests (__GFP_ATOMIC in
        6.1, __GFP_HIGH in 6.19)."""
        free = z.free_pages
        if not order:
            usable = free - min(free, self._zone_watermark_unusable_free(z, 0, alloc_flags))
            if usable > mark + z.lowmem_reserve[hz]:
                return True
        if self.zone_watermark_ok(z, order, mark, hz, alloc_flags, free):
            return True
        atomic_bit = GFP_ATOMIC_BIT if self.k61 else GFP_HIGH
        if (not order and gfp & atomic_bit and z.watermark_boost
                and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN):
            return self.zone_watermark_ok(z, order, z.watermark[WMARK_MIN], hz, alloc_flags, free)
        return False

    def zone_watermark_ok(self, z: Zone, order: int, mark: int, hz: int, alloc_flags: int, free: int) -> bool:
        """__zone_watermark_ok(): free pages above mark + lowmem_reserve (with the
        reserve discounts of the alloc_flags), and for order > 0 a free block of at
        least the order on a list the request may use."""
        mn = mark
        free -= self._zone_watermark_unusable_free(z, order, alloc_flags)
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

    def wmark_pages(self, z: Zone, i: int) -> int:
        """wmark_pages(): a watermark plus the current boost."""
        return z.watermark[i] + z.watermark_boost

    # -- pcp lists ---------------------------------------------------------------------
    def order_to_pindex(self, order: int, mt: int) -> int:
        """order_to_pindex(): 6.1 has one THP list, 6.19 two (movable and the rest,
        bf14ed81f571 "Separate THP PCP into movable and non-movable categories", 6.10)."""
        if order > PAGE_ALLOC_COSTLY_ORDER:
            base = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
            return base if self.k61 else base + (mt == MIGRATE_MOVABLE)
        return MIGRATE_PCPTYPES * order + mt

    def pindex_to_order(self, pindex: int) -> int:
        """pindex_to_order()."""
        base = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
        return HPAGE_PMD_ORDER if pindex >= base else pindex // MIGRATE_PCPTYPES

    def rmqueue_pcplist(self, z: Zone, order: int, mt: int, alloc_flags: int, cpu: int) -> int:
        """rmqueue_pcplist() / __rmqueue_pcplist(): refill an empty list, take its head."""
        pcp = z.pcp[cpu]
        pcp.free_factor >>= 1
        lst = pcp.lists[self.order_to_pindex(order, mt)]
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

    def rmqueue_bulk(self, z: Zone, order: int, count: int, lst: Any, mt: int, alloc_flags: int) -> int:
        """rmqueue_bulk(): refill a pcp list at its tail from __rmqueue().

        The common step of __rmqueue() -- no CMA balancing due, and
        __rmqueue_smallest() finds a block of ``mt`` itself -- is inlined (with the
        accounting of a pcp migratetype, which touches only NR_FREE_PAGES); any other
        step calls __rmqueue(), which starts over and takes the same decisions.  6.19
        keeps an ``enum rmqueue_mode`` across the iterations (see __rmqueue())."""
        hooks = self._op_hooks
        if hooks:
            self.design.op_begin(Op.PCP_REFILL, True, self.in_free_path > 0)
        st = AS_PCP | (order + 1)
        astate = self.alloc_state
        d = self.design
        find_smallest = self._find_smallest
        nr_free = z.nr_free
        counters = self.counters
        nr = 1 << order
        cma = alloc_flags & ALLOC_CMA
        run_ok = not self._design_split
        mode = RMQUEUE_NORMAL  # 6.19 enum rmqueue_mode rmqm
        i = 0
        try:
            while i < count:
                pfn = co = -1
                if mode == RMQUEUE_NORMAL and not (cma and z.nr_free_cma > z.free_pages // 2):
                    pfn, co = find_smallest(z, order, mt)
                if pfn < 0:
                    pfn, list_mt, mode = self._rmqueue(z, order, mt, alloc_flags, mode)
                    if pfn < 0:
                        return i
                    self.account_freepages(z, -nr, list_mt)
                    astate[pfn] = st
                    lst.append(pfn)
                    i += 1
                    continue
                d.del_from_free_list(pfn, co)
                nr_free[co] -= 1
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
        finally:
            if hooks:
                d.op_end(Op.PCP_REFILL)

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
            nr_free[o] += 1
            add(start, o, list_id(zid, o, mt), False)
            start += 1 << o

    def rmqueue_buddy(self, z: Zone, order: int, alloc_flags: int, mt: int) -> int:
        """rmqueue_buddy(): straight from the free lists under zone->lock; high-order
        atomic requests try the highatomic reserve first (and, in 6.19, order-0
        ALLOC_OOM / ALLOC_NON_BLOCK requests after everything else failed: 281dd25c1a01
        "mm/page_alloc: let GFP_ATOMIC order-0 allocs access highatomic reserves")."""
        hooks = self._op_hooks
        if hooks:
            self.design.op_begin(Op.ALLOC_BUDDY, True, self.in_free_path > 0)
        try:
            pfn = -1
            list_mt = MIGRATE_HIGHATOMIC
            if order > 0 and alloc_flags & self._ha_flag:
                pfn = self._rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
            if pfn < 0:
                pfn, list_mt, _ = self._rmqueue(z, order, mt, alloc_flags, RMQUEUE_NORMAL)
                if pfn < 0 and not self.k61 and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                    pfn = self._rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
                    list_mt = MIGRATE_HIGHATOMIC
                if pfn < 0:
                    return -1
            self.account_freepages(z, -(1 << order), list_mt)
            if z.boosted:
                z.boosted = False  # ZONE_BOOSTED_WATERMARK: kswapd is woken (not modelled)
            return pfn
        finally:
            if hooks:
                self.design.op_end(Op.ALLOC_BUDDY)

    def account_freepages(self, z: Zone, nr: int, mt: int) -> None:
        """account_freepages() / __mod_zone_freepage_state(). The model also drops a
        watermark boost once free pages pass high + boost (what kswapd would achieve)."""
        if mt == MIGRATE_ISOLATE:
            return
        z.free_pages += nr
        if mt == MIGRATE_CMA:
            z.nr_free_cma += nr
        elif mt == MIGRATE_HIGHATOMIC:
            z.nr_free_highatomic += nr
        if nr > 0 and z.watermark_boost and z.free_pages > z.watermark[WMARK_HIGH] + z.watermark_boost:
            z.watermark_boost = 0  # kswapd would have balanced the zone by now

    # -- the buddy lists -------------------------------------------------------------
    def _add_to_free_list(self, z: Zone, pfn: int, order: int, mt: int, tail: bool) -> None:
        """__add_to_free_list(): count the block, then the design links it."""
        z.nr_free[order] += 1
        self.design.add_to_free_list(pfn, order, list_id(z.zid, order, mt), tail)

    def del_page_from_free_list(self, z: Zone, pfn: int, order: int) -> None:
        """__del_page_from_free_list() (the caller accounts the pages)."""
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

    def _rmqueue_smallest(self, z: Zone, order: int, mt: int) -> int:
        """__rmqueue_smallest(): head of the smallest non-empty list of ``mt`` at
        ``order`` or above, split down to ``order`` (the caller accounts the pages)."""
        pfn, co = self._find_smallest(z, order, mt)
        if pfn < 0:
            return -1
        self.del_page_from_free_list(z, pfn, co)
        self.expand(z, pfn, order, co, mt)
        self.counters.zone_locked += 1
        return pfn

    def _rmqueue(self, z: Zone, order: int, mt: int, alloc_flags: int, mode: int) -> tuple[int, int, int]:
        """__rmqueue(): (pfn, migratetype of its list, rmqueue_mode) -- memdesc.mm.fallback."""
        raise NotImplementedError

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
                nr_free[high] += 1
                add(pfn + size, high, lid, False)

    # -- pageblocks ----------------------------------------------------------------------
    def get_pageblock_migratetype(self, pfn: int) -> int:
        """get_pageblock_migratetype() (MIGRATE_ISOLATE while isolated)."""
        return self.pb_mt[pfn >> self.pageblock_order]

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        """set_pageblock_migratetype()."""
        b = pfn >> self.pageblock_order
        if self.pb_mt[b] != mt:
            self.pb_mt[b] = mt

    # -- highatomic ------------------------------------------------------------------------
    def reserve_highatomic_pageblock(self, pfn: int, z: Zone, order: int) -> None:
        """reserve_highatomic_pageblock(): up to ~1 % of the zone for high-order atomic
        allocations (6.1: managed/100 + a pageblock; 6.19: rounded up to pageblocks,
        none below one pageblock: d68e39fc45f7, 9cd20f3fe045). The model refuses blocks
        above pageblock_order in 6.19; 7cc5a5d65011 reserves every pageblock such a block
        covers (docs/model.md lists this as a known difference)."""
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
        """Head pfn of the allocated (not pcp) block containing pfn, or -1."""
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
        hooks = self._op_hooks
        if hooks:
            self.design.op_begin(Op.FREE, False, True)
        try:
            counters = self.counters
            if st & AS_META:
                counters.meta_frees += 1
            self.design.free_prepare(pfn, order)
            counters.pgfree += 1
            z = self.zones[self.zid_of_pfn[pfn]]
            mt = self.pb_mt[pfn >> self.pageblock_order]
            if not self._pcp_allowed[order] or mt == MIGRATE_ISOLATE:
                astate[pfn] = 0
                self.free_one_page(z, pfn, order, mt, FPI_NONE)
                return
            # free_unref_page() / free_unref_page_commit()
            if mt >= MIGRATE_PCPTYPES:
                mt = MIGRATE_MOVABLE
            pcp = z.pcp[cpu]
            pindex = MIGRATE_PCPTYPES * order + mt if order <= PAGE_ALLOC_COSTLY_ORDER else \
                self.order_to_pindex(order, mt)
            pcp.lists[pindex].appendleft(pfn)
            astate[pfn] = AS_PCP | (order + 1)
            pcp.count += 1 << order
            free_high = bool(pcp.free_factor and order and order <= PAGE_ALLOC_COSTLY_ORDER)
            high = 0 if free_high else pcp.high
            if pcp.count >= high:
                self.free_pcppages_bulk(z, self.nr_pcp_free(pcp, high, pcp.batch, free_high), pcp, pindex)
        finally:
            self.in_free_path -= 1
            if hooks:
                self.design.op_end(Op.FREE)

    @staticmethod
    def nr_pcp_free(pcp: PerCpuPages, high: int, batch: int, free_high: bool) -> int:
        """nr_pcp_free() (6.1): how many pages a free past pcp->high drains."""
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
        hooks = self._op_hooks
        if hooks:
            self.design.op_begin(Op.PCP_DRAIN, True, self.in_free_path > 0)
        nl = self.nr_pcp_lists
        pindex -= 1
        astate = self.alloc_state
        counters = self.counters
        pb_mt = self.pb_mt
        pbo = self.pageblock_order
        count = min(count, pcp.count)
        try:
            while count > 0:
                while True:
                    pindex += 1
                    if pindex > nl - 1:
                        pindex = 0
                    lst = pcp.lists[pindex]
                    if lst:
                        break
                order = self.pindex_to_order(pindex)
                nr = 1 << order
                while count > 0 and lst:
                    pfn = lst.pop()
                    count -= nr
                    pcp.count -= nr
                    astate[pfn] = 0
                    counters.pcp_drain += 1
                    self._free_one_page_locked(z, pfn, order, pb_mt[pfn >> pbo], FPI_NONE)
        finally:
            if hooks:
                self.design.op_end(Op.PCP_DRAIN)

    def drain_zone_pages(self, z: Zone, cpu: int) -> None:
        """drain_pages_zone(): one CPU's pcp lists of one zone back to buddy."""
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
        """free_one_page(): take zone->lock and free to buddy."""
        if self._op_hooks:
            self.design.op_begin(Op.FREE_BUDDY, True, self.in_free_path > 0)
            try:
                self._free_one_page_locked(z, pfn, order, mt, fpi)
            finally:
                self.design.op_end(Op.FREE_BUDDY)
        else:
            self._free_one_page_locked(z, pfn, order, mt, fpi)

    def _free_one_page_locked(self, z: Zone, pfn: int, order: int, mt: int, fpi: int) -> None:
        """free_one_page()'s body: 6.19 splits blocks larger than a pageblock first
        (split_large_buddy()), 6.1 frees the block with the given type."""
        if not self.k61 and order > self.pageblock_order:
            self.split_large_buddy(z, pfn, order, fpi)
        else:
            self._free_one_page(pfn, z, order, mt, fpi)

    def split_large_buddy(self, z: Zone, pfn: int, order: int, fpi: int) -> None:
        """split_large_buddy() (6.19; fd919a85cd55, 6.10): each pageblock-sized piece
        with its own type.
        In 6.1 it is only reached at boot (free_pages_memory()), where a chunk whose
        pageblocks have one type is freed whole."""
        if order <= self.pageblock_order:
            self._free_one_page(pfn, z, order, self.get_pageblock_migratetype(pfn), fpi)
            return
        step = 1 << self.pageblock_order
        end = pfn + (1 << order)
        if self.k61:
            # boot frees whole max-order chunks; the cross-pageblock rule applies in merging
            mts = {self.get_pageblock_migratetype(p) for p in range(pfn, end, step)}
            if len(mts) == 1:
                self._free_one_page(pfn, z, order, mts.pop(), fpi)
                return
        for p in range(pfn, end, step):
            self._free_one_page(p, z, self.pageblock_order, self.get_pageblock_migratetype(p), fpi)

    def _free_one_page(self, pfn: int, z: Zone, order: int, mt: int, fpi: int) -> None:
        """__free_one_page(): merge with free buddies up to MAX_PAGE_ORDER. Across
        pageblocks only mergeable types merge; 6.19 then gives the buddy's pageblock(s)
        the freeing type (e6cf9e1c4cde "mm: page_alloc: fix up block types when merging
        compatible blocks", 6.10)."""
        d = self.design
        page_is_buddy = d.page_is_buddy
        nr_free = z.nr_free
        zid = z.zid
        pbo = self.pageblock_order
        self.account_freepages(z, 1 << order, mt)
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
        nr_free[order] += 1
        d.add_to_free_list(pfn, order, list_id(zid, order, mt), tail)

    # ------------------------------------------------------------------------------
    # taking specific free pages (pfn-exact replay, alloc_contig_range, isolation)
    # ------------------------------------------------------------------------------
    def isolate_free_page(self, pfn: int, order: int) -> bool:
        """__isolate_free_page() + split_free_page(): take [pfn, pfn+2^order) off the
        free lists if it is entirely free inside one buddy block (or is a pcp page of
        that order); the rest of the buddy block goes back as aligned pieces. The
        caller marks it allocated (mark_allocated) or frees it again."""
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
        self.del_page_from_free_list(z, head, ho)
        self.account_freepages(z, -(1 << ho), mt)
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
            self._add_to_free_list(z, give, cur_order, gmt, False)
            self.account_freepages(z, 1 << cur_order, gmt)
            cur_pfn = keep
        return True

    def isolate_free_range(self, pfn: int, order: int) -> None:
        """Take every page of the aligned [pfn, pfn + 2^order) off the free lists,
        in as few pieces as the free blocks allow (isolate_freepages_range() after
        test_pages_isolated(): the caller guarantees the whole range is free)."""
        if self.isolate_free_page(pfn, order):
            return
        if order == 0:
            raise MemdescError(f"pfn {pfn:#x} is not free (expected after test_pages_isolated)")
        self.isolate_free_range(pfn, order - 1)
        self.isolate_free_range(pfn + (1 << (order - 1)), order - 1)

    def alloc_pages_at(self, gfp: int, order: int, pfn: int, kind: str | None = None) -> int:
        """Allocate exactly the block at ``pfn`` if it is free (pfn-exact trace
        replay: follow the real kernel's placement). Returns pfn or -1."""
        if order < 0 or order > MAX_PAGE_ORDER:
            raise BadCall(f"order {order} out of range 0..{MAX_PAGE_ORDER}", order=order)
        ac = self._ctx_cache.get(gfp) or self.alloc_context(gfp)
        if not 0 <= pfn < self.nr_pfns or pfn & ((1 << order) - 1) or self.zid_of_pfn[pfn] == NO_ZONE:
            return -1
        k = kind if kind is not None else "misc"
        token = self.design.prep_alloc(order, k, gfp)
        if token is None:
            return self._fail(FAIL_DESCRIPTOR, order)
        if not self.isolate_free_page(pfn, order):
            self.design.abort_alloc(token)
            return -1
        st = order + 1
        if ac.migratetype == MIGRATE_MOVABLE:
            st |= AS_MOVABLE
        if k.startswith("meta"):
            st |= AS_META
        self.alloc_state[pfn] = st
        self.design.post_alloc(pfn, order, k, token)
        self.counters.pgalloc += 1
        return pfn

    def mark_allocated(self, pfn: int, order: int, kind: str = "misc", movable: bool = False) -> None:
        """Record a block taken with isolate_free_page() as allocated (prep_new_page
        without a prepared descriptor: the design allocates one late)."""
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
    def free_count(self, z: Zone, order: int, mt: int) -> int:
        """Length of one free list (pagetypeinfo walks it, capped by the caller)."""
        return sum(1 for _ in self.design.list_pfns(list_id(z.zid, order, mt)))

    def pcp_pages(self, z: Zone) -> int:
        """Pages on the zone's pcp lists (the counters)."""
        return sum(p.count for p in z.pcp)

    def totals(self) -> dict[int, dict[str, int]]:
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
                "free": z.free_pages + self._isolated_free(z),
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

    def check(self, raise_on_error: bool = True) -> CheckReport:
        """Run the exhaustive invariant checker (memdesc.mm.debug_vm)."""
        return check_allocator(self, raise_on_error=raise_on_error)

    def metadata_summary(self) -> dict[str, Any]:
        """The design's metadata accounting plus memmap totals for reports."""
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


class PageAllocator61(Fallback61, PageAllocator):
    """The 6.1 allocator (the real traces' kernel)."""


class PageAllocator619(Fallback619, PageAllocator):
    """The 6.19 allocator (the default)."""


_BY_KERNEL: dict[str, type[PageAllocator]] = {"6.1": PageAllocator61, "6.19": PageAllocator619}

__all__ = ["PageAllocator", "PageAllocator61", "PageAllocator619", "BadCall", "MemdescError"]
