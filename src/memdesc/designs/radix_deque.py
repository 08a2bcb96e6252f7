"""`radix-deque`: Kent Overstreet's two-word struct page (linux-mm, Oct 2021), plus a
one-word variant. Free lists are deques implemented as radix trees keyed by a
running index (memdesc.designs.radix_tree); a free block stores its index, so a
buddy merge removes it from the middle of its list without list pointers.

Bit layout (W = word bits: 64 on x86_64, 32 on i386; full text in
docs/design-radix-deque.md)::

    words=2 (16 B / 8 B per page)
      word 0, allocator state (page->flags' allocator half):
        bits 0-3  order of a free block head
        bits 4-6  migratetype of the free list it is on (6.1 lets it differ from the pageblock)
        bit  7    PG_buddy: free block head, in its radix tree
        bit  8    PG_buddy_deferred: free block head, parked on the zone's deferred list
        bit  12   PG_reserved            bit 16  PG_head (allocated compound head)
        top       node and zone bits, exactly as page->flags (linked.zoneid_layout)
      word 1: allocated -> memdesc word (descriptor pointer | type tag, or inline Misc word);
              PG_buddy -> the block's index in its deque (two's complement, W bits);
              PG_buddy_deferred -> pfn + 1 of the next deferred block (0 ends the list).
    words=1 (8 B / 4 B per page): the memdesc word
        bits 0-3  type: 1 Buddy (in its tree), 14 BuddyDeferred, else an allocated memdesc
        bits 4-7  order          bits 8-10  migratetype
        bits 11.. index + 2^(W-12) (x86_64: 53 bits, i386: 21 bits) / next deferred pfn + 1
        zone and node come from the pfn (alloc.zid_of_pfn), as page_zone() would via sections.

Where tree nodes come from is the ``policy`` option (docs/design-radix-deque.md
has the measurements): ``reserve`` (default) keeps a pool of node pages refilled on
the allocation path; ``defer`` parks blocks when no node is free; ``self`` consumes
the freed block (Overstreet's idea; a rule violation in HIGHMEM, ZONE_MOVABLE, CMA
and isolated pageblocks); ``borrow`` allocates on the free path; ``movable-nodes``
lets node pages live in movable memory and relocates them (relocate_node_page).
Every policy falls back to deferring, so no free block is ever lost.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from memdesc.designs.base import Design, DesignError
from memdesc.designs.descriptors import MEMDESC_BUDDY, Descriptors, misc_word
from memdesc.designs.linked import zoneid_layout
from memdesc.designs.memmap import Memmap
from memdesc.designs.radix_tree import EMPTY, RadixDeques, dense_nodes_bound
from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_META, AS_MOVABLE
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGE_SIZE,
    ZoneType,
    split_list_id,
)

POLICIES = ("reserve", "defer", "self", "borrow", "movable-nodes")
DEFAULT_POLICY = "reserve"

# words=2, word 0
ORDER_MASK = 0xF
MT_SHIFT = 4
PG_buddy = 1 << 7
PG_buddy_deferred = 1 << 8
PG_reserved = 1 << 12
PG_head = 1 << 16
FREE_BITS = PG_buddy | PG_buddy_deferred
# words=1
TAG_MASK = 0xF
TAG_BUDDY = MEMDESC_BUDDY  # 1
TAG_BUDDY_DEFERRED = 14  # unassigned in the kernelnewbies table
W1_ORDER_SHIFT = 4
W1_MT_SHIFT = 8
W1_INDEX_SHIFT = 11

_NOWARN = getattr(G, "__GFP_NOWARN")
_KSWAPD = getattr(G, "__GFP_KSWAPD_RECLAIM")
_MOVABLE = getattr(G, "__GFP_MOVABLE")
_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
#: node pages: GFP_NOWAIT | __GFP_NOWARN -- lowmem, MIGRATE_UNMOVABLE, may fail
GFP_NODE = _KSWAPD | _NOWARN

# how add_to_free_list may obtain node pages
MODE_NONE, MODE_ALLOC, MODE_FREEPATH, MODE_OFFBOOK = range(4)


class RadixDequeDesign(Design):
    """Two-word (or one-word) struct page; free lists are radix-tree deques."""

    name = "radix-deque"
    struct_page_bytes = 16
    uses_descriptors = True
    fault_options = frozenset({"desc_fail_rate", "meta_fail_rate"})
    linked_equivalent_options = {"offbook": True}
    variants = ({}, {"words": 1}, {"policy": "borrow"}, {"policy": "defer", "meta_fail_rate": 0.2},
                {"policy": "movable-nodes"}, {"policy": "self"})

    @classmethod
    def expected_violations(cls, options: dict[str, Any]) -> frozenset[str]:
        """``borrow`` allocates node pages on the free path; ``self`` puts nodes in the
        freed page wherever it is (HIGHMEM, ZONE_MOVABLE, CMA, isolated pageblocks)."""
        return {"borrow": frozenset({"alloc_in_free_path"}),
                "self": frozenset({"unmovable_meta_in_movable"})}.get(options.get("policy", DEFAULT_POLICY),
                                                                       frozenset())

    def __init__(self, alloc: Any, words: int = 2, policy: str = DEFAULT_POLICY, fanout: int = 64,
                 offbook: bool = False, meta_fail_rate: float = 0.0, seed: int = 0,
                 index_bits: int | None = None, reserve_nodes: int | None = None,
                 descriptors: bool = True, desc_fail_rate: float = 0.0, **options: Any) -> None:
        super().__init__(alloc, **options)
        if options:
            raise DesignError(f"radix-deque: unknown options {sorted(options)}")
        if words not in (1, 2):
            raise DesignError(f"radix-deque: words must be 1 or 2, not {words}")
        if policy not in POLICIES:
            raise DesignError(f"radix-deque: policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if fanout < 2 or fanout & (fanout - 1):
            raise DesignError(f"radix-deque: fanout must be a power of two >= 2, not {fanout}")
        ws = alloc.machine.word_size
        self.words = words
        self.policy = policy
        self.fanout = fanout
        self.offbook = offbook
        self.meta_fail_rate = meta_fail_rate
        self.rng = random.Random(seed)
        self.word_size = ws
        self.word_bits = 8 * ws
        self.struct_page_bytes = words * ws
        # index field width, and the (possibly narrower, for tests) running-index range
        self.field_bits = self.word_bits if words == 2 else self.word_bits - W1_INDEX_SHIFT
        self.index_bits = min(self.field_bits, index_bits) if index_bits else self.field_bits
        if self.index_bits < 2:
            raise DesignError("radix-deque: index_bits must be >= 2")
        self.kmin = -(1 << (self.index_bits - 1))
        self.kmax = 1 << (self.index_bits - 1)
        self.fmin = -(1 << (self.field_bits - 1))  # words=1: stored field = k - fmin
        # node geometry: fanout slots of one word + header (occupancy bitmap, and one word
        # of shift/offset/count/parent-slot), rounded to 8 bytes
        self.node_bytes = -(-(fanout * ws + max(fanout // 8, ws) + ws) // 8) * 8
        self.nodes_per_page = PAGE_SIZE // self.node_bytes
        if self.nodes_per_page < 1:
            raise DesignError(f"radix-deque: a {self.node_bytes}-byte node does not fit a page")
        self.desc = Descriptors(alloc, offbook=offbook, desc_fail_rate=desc_fail_rate, seed=seed) \
            if descriptors else None
        # pool targets: reserve and movable-nodes keep spare nodes for the free path
        if reserve_nodes is None:
            reserve_nodes = 2 * self.nodes_per_page
        self.target_nodes = reserve_nodes if policy in ("reserve", "movable-nodes") else 0
        # empty node pages kept instead of freed: the reserve (+1 against thrashing); none
        # for the other policies, whose node pages come and go with the trees
        self.keep_empty = -(-self.target_nodes // self.nodes_per_page) + 1 if self.target_nodes else 0
        self.node_gfp = GFP_NODE
        if policy == "movable-nodes":
            # movable and CMA memory; never HIGHMEM (nodes must be permanently mapped)
            self.node_gfp = GFP_NODE | _MOVABLE | (_HIGHMEM if alloc.machine.arch == "x86_64" else 0)
        # counters
        self.renumberings = 0
        self.deferred_events = 0  # blocks parked after boot (no node could be had)
        self.deferred_free_path = 0  # ... of which inside free_pages()
        self.boot_deferred = 0  # blocks parked by memblock_free_all, drained by the first allocation
        self.carved_pages = 0
        self.meta_failures = 0
        self.relocations = 0
        self.borrowed_pages = 0
        self.violations: dict[str, int] = {"HighMem": 0, "Movable": 0, "CMA": 0, "Isolate": 0}
        self._busy = False
        # migration may relocate node pages only under the movable-nodes policy
        self.relocates_meta = policy == "movable-nodes"

    # ------------------------------------------------------------------------------
    # boot
    # ------------------------------------------------------------------------------
    def init_memmap(self) -> None:
        a = self.alloc
        nlists = len(a.zones) * NR_PAGE_ORDERS * MIGRATE_TYPES
        self.nlists = nlists
        self.W = self.words
        self.MD = 1 if self.words == 2 else 0  # the memdesc word
        self.mm = Memmap(a.nr_pfns, self.words)
        self.m = self.mm.buf
        if self.words == 1 and a.nr_pfns + 1 >= 1 << self.field_bits:
            raise DesignError(f"radix-deque words=1: {self.field_bits} index bits cannot link "
                              f"{a.nr_pfns} pfns on the deferred lists")
        self.zones_pgshift, _ = zoneid_layout(self.word_bits)
        self.zbits = [((z.nid << 3) | a.machine.kernel_zone_index(z.ztype)) << self.zones_pgshift
                      for z in a.zones]
        self.zmask = ((1 << self.word_bits) - 1) ^ ((1 << self.zones_pgshift) - 1)
        zb2zid = [-1] * (1 << (self.word_bits - self.zones_pgshift))
        for z in a.zones:
            zb2zid[self.zbits[z.zid] >> self.zones_pgshift] = z.zid
        self.zb2zid = zb2zid
        # per-list constant parts of a free head's words
        self.lid_w0 = [0] * nlists
        for lid in range(nlists):
            zid, order, mt = split_list_id(lid)
            if self.words == 2:
                self.lid_w0[lid] = self.zbits[zid] | (mt << MT_SHIFT) | order
            else:
                self.lid_w0[lid] = (order << W1_ORDER_SHIFT) | (mt << W1_MT_SHIFT)
        if self.words == 2:
            f0 = self.mm.field(0)
            for z in a.zones:
                if z.spanned:
                    f0[z.start_pfn:z.end_pfn] = self.zbits[z.zid]
        self.tree = RadixDeques(nlists, self.fanout, self._alloc_node, self._free_node)
        # deferred lists: singly linked through the blocks' own index words, FIFO
        self.dhead = [EMPTY] * nlists
        self.dtail = [EMPTY] * nlists
        self.dcount = [0] * nlists
        self.ndeferred = 0
        # node pages: page index pi holds node ids pi*NPP .. pi*NPP+NPP-1
        self.page_pfn: list[int] = []
        self.page_free: list[int] = []
        self.page_live: list[int] = []
        # node pools: one shared pool, or (policy self) one per free list -- the block
        # being freed hosts the nodes its own list needs, as in Overstreet's proposal
        self.npools = nlists if self.policy == "self" else 1
        self.lid_pool = list(range(nlists)) if self.npools > 1 else [0] * nlists
        self.page_pool: list[int] = []
        self.partial: list[dict[int, None]] = [{} for _ in range(self.npools)]
        self.empty: list[dict[int, None]] = [{} for _ in range(self.npools)]
        self.pool_free = [0] * self.npools
        self.n_empty = 0
        self._cur_pool = 0
        self.free_pis: list[int] = []
        self.pfn_to_pi: dict[int, int] = {}
        self.free_nodes = 0
        self.node_pages_live = 0
        self.node_pages_peak = 0
        self._offbook_next = 0

    def set_reserved(self, start: int, end: int) -> None:
        if self.words == 2:
            f = self.mm.field(0)
            f[start:end] |= np.uint64(PG_reserved)
        # words=1: a reserved page is type 0 (Misc) subtype 0, i.e. the zero word

    def clear_reserved(self, start: int, end: int) -> None:
        if self.words == 2:
            f = self.mm.field(0)
            f[start:end] &= ~np.uint64(PG_reserved)

    # ------------------------------------------------------------------------------
    # node pool
    # ------------------------------------------------------------------------------
    def _add_node_page(self, pfn: int, pool: int = 0) -> int:
        npp = self.nodes_per_page
        if self.free_pis:
            pi = self.free_pis.pop()
            self.page_pfn[pi] = pfn
            self.page_free[pi] = (1 << npp) - 1
            self.page_live[pi] = 0
            self.page_pool[pi] = pool
        else:
            pi = len(self.page_pfn)
            self.page_pfn.append(pfn)
            self.page_free.append((1 << npp) - 1)
            self.page_live.append(0)
            self.page_pool.append(pool)
            self.tree.reserve_ids((pi + 1) * npp)
        self.empty[pool][pi] = None
        self.n_empty += 1
        self.pfn_to_pi[pfn] = pi
        self.free_nodes += npp
        self.pool_free[pool] += npp
        self.node_pages_live += 1
        if self.node_pages_live > self.node_pages_peak:
            self.node_pages_peak = self.node_pages_live
        return pi

    def _take_slot(self, pi: int, s: int) -> None:
        self.page_free[pi] &= ~(1 << s)
        live = self.page_live[pi] + 1
        self.page_live[pi] = live
        self.free_nodes -= 1
        pool = self.page_pool[pi]
        self.pool_free[pool] -= 1
        if live == 1:
            del self.empty[pool][pi]
            self.n_empty -= 1
            self.partial[pool][pi] = None
        if live == self.nodes_per_page:
            del self.partial[pool][pi]

    def _give_slot(self, pi: int, s: int) -> None:
        self.page_free[pi] |= 1 << s
        live = self.page_live[pi] - 1
        self.page_live[pi] = live
        self.free_nodes += 1
        pool = self.page_pool[pi]
        self.pool_free[pool] += 1
        if live == self.nodes_per_page - 1:
            self.partial[pool][pi] = None
        if live == 0:
            del self.partial[pool][pi]
            self.empty[pool][pi] = None
            self.n_empty += 1

    def _alloc_node(self) -> int:
        """RadixDeques callback: a free node slot, fullest pages first."""
        pool = self._cur_pool
        if self.partial[pool]:
            pi = next(iter(self.partial[pool]))
        elif self.empty[pool]:
            pi = next(iter(self.empty[pool]))
        else:
            return EMPTY
        b = self.page_free[pi]
        s = (b & -b).bit_length() - 1
        self._take_slot(pi, s)
        return pi * self.nodes_per_page + s

    def _free_node(self, node: int) -> None:
        pi, s = divmod(node, self.nodes_per_page)
        self._give_slot(pi, s)

    def _alloc_node_page(self, mode: int, pool: int = 0) -> bool:
        """Get one more node page (MODE_ALLOC: allocation path, MODE_FREEPATH: borrow)."""
        if mode == MODE_OFFBOOK or self.offbook:
            self._offbook_next += 1
            self._add_node_page(-1 - self._offbook_next, pool)  # fake pfns -2, -3, ... (-1 = unused)
            return True
        if mode == MODE_NONE:
            return False
        if self.meta_fail_rate and self.rng.random() < self.meta_fail_rate:
            self.meta_failures += 1
            return False
        a = self.alloc
        busy = self._busy
        self._busy = True
        try:
            if mode == MODE_FREEPATH:
                # the free path holds pcp->lock: take the page straight from buddy
                with a.buddy_only():
                    pfn = a.alloc_pages(self.node_gfp, 0, kind="meta:radix")
            else:
                pfn = a.alloc_pages(self.node_gfp, 0, kind="meta:radix")
        finally:
            self._busy = busy
        if pfn < 0:
            self.meta_failures += 1
            return False
        if mode == MODE_FREEPATH:
            self.borrowed_pages += 1
        self._add_node_page(pfn, pool)
        return True

    def _release_page(self, pi: int) -> None:
        """Give an empty node page back (allocation path only)."""
        pool = self.page_pool[pi]
        del self.empty[pool][pi]
        self.n_empty -= 1
        self.pool_free[pool] -= self.nodes_per_page
        pfn = self.page_pfn[pi]
        self.page_pfn[pi] = EMPTY
        self.page_free[pi] = 0
        self.free_pis.append(pi)
        del self.pfn_to_pi[pfn]
        self.free_nodes -= self.nodes_per_page
        self.node_pages_live -= 1
        if pfn >= 0:
            busy = self._busy
            self._busy = True
            try:
                self.alloc.free_pages(pfn, 0)
            finally:
                self._busy = busy

    def _mode(self) -> int:
        if self.offbook:
            return MODE_OFFBOOK
        a = self.alloc
        if not a.booted:
            return MODE_NONE  # boot (memblock_free_all): defer, drained by the first allocation
        if self.policy == "borrow" and a.in_free_path and not self._busy:
            return MODE_FREEPATH
        return MODE_NONE

    # ------------------------------------------------------------------------------
    # free-block words
    # ------------------------------------------------------------------------------
    def _set_free(self, pfn: int, lid: int, k: int) -> None:
        if self.words == 2:
            b = pfn << 1
            self.m[b] = self.lid_w0[lid] | PG_buddy
            self.m[b + 1] = k & ((1 << self.word_bits) - 1)
        else:
            self.m[pfn] = self.lid_w0[lid] | TAG_BUDDY | ((k - self.fmin) << W1_INDEX_SHIFT)

    def _write_index(self, pfn: int, k: int) -> None:
        if self.words == 2:
            self.m[(pfn << 1) + 1] = k & ((1 << self.word_bits) - 1)
        else:
            w = self.m[pfn]
            self.m[pfn] = (w & ((1 << W1_INDEX_SHIFT) - 1)) | ((k - self.fmin) << W1_INDEX_SHIFT)

    def _decode(self, pfn: int) -> tuple[int, int, int]:
        """(state, lid, index-or-link) of a pfn: state 0 not free, 1 in tree, 2 deferred."""
        if self.words == 2:
            w0 = self.m[pfn << 1]
            if not w0 & FREE_BITS:
                return 0, -1, 0
            zid = self.zb2zid[w0 >> self.zones_pgshift]
            lid = (zid * NR_PAGE_ORDERS + (w0 & ORDER_MASK)) * MIGRATE_TYPES + ((w0 >> MT_SHIFT) & 7)
            v = self.m[(pfn << 1) + 1]
            if w0 & PG_buddy:
                if v >> (self.word_bits - 1):
                    v -= 1 << self.word_bits
                return 1, lid, v
            return 2, lid, v
        w = self.m[pfn]
        t = w & TAG_MASK
        if t != TAG_BUDDY and t != TAG_BUDDY_DEFERRED:
            return 0, -1, 0
        zid = self.alloc.zid_of_pfn[pfn]
        lid = (zid * NR_PAGE_ORDERS + ((w >> W1_ORDER_SHIFT) & 0xF)) * MIGRATE_TYPES + ((w >> W1_MT_SHIFT) & 7)
        if t == TAG_BUDDY:
            return 1, lid, (w >> W1_INDEX_SHIFT) + self.fmin
        return 2, lid, w >> W1_INDEX_SHIFT

    def _clear_free(self, pfn: int) -> None:
        if self.words == 2:
            b = pfn << 1
            self.m[b] &= self.zmask
            self.m[b + 1] = 0
        else:
            self.m[pfn] = 0

    # -- deferred lists ---------------------------------------------------------------
    def _set_link(self, pfn: int, nxt: int) -> None:
        if self.words == 2:
            self.m[(pfn << 1) + 1] = nxt + 1
        else:
            w = self.m[pfn]
            self.m[pfn] = (w & ((1 << W1_INDEX_SHIFT) - 1)) | ((nxt + 1) << W1_INDEX_SHIFT)

    def _defer(self, pfn: int, lid: int) -> None:
        """Park a free block: no node needed, no memory lost (drained on allocation)."""
        if self.words == 2:
            self.m[pfn << 1] = self.lid_w0[lid] | PG_buddy_deferred
            self.m[(pfn << 1) + 1] = 0
        else:
            self.m[pfn] = self.lid_w0[lid] | TAG_BUDDY_DEFERRED
        t = self.dtail[lid]
        if t >= 0:
            self._set_link(t, pfn)
        else:
            self.dhead[lid] = pfn
        self.dtail[lid] = pfn
        self.dcount[lid] += 1
        self.ndeferred += 1
        if self.alloc.booted:
            self.deferred_events += 1
            if self.alloc.in_free_path:
                self.deferred_free_path += 1
        else:
            self.boot_deferred += 1

    def _deferred_pfns(self, lid: int) -> Iterator[int]:
        p = self.dhead[lid]
        seen = 0
        while p >= 0:
            yield p
            seen += 1
            if seen > self.dcount[lid]:
                raise RuntimeError(f"deferred list {lid} is corrupt")
            p = self._decode(p)[2] - 1

    def _undefer(self, pfn: int, lid: int) -> None:
        prev = EMPTY
        p = self.dhead[lid]
        while p != pfn:
            if p < 0:
                raise RuntimeError(f"pfn {pfn:#x} is not on deferred list {lid}")
            prev = p
            p = self._decode(p)[2] - 1
        nxt = self._decode(pfn)[2] - 1
        if prev < 0:
            self.dhead[lid] = nxt
        else:
            self._set_link(prev, nxt)
        if self.dtail[lid] == pfn:
            self.dtail[lid] = prev
        self.dcount[lid] -= 1
        self.ndeferred -= 1

    # ------------------------------------------------------------------------------
    # free lists (the Design interface)
    # ------------------------------------------------------------------------------
    def _try_insert(self, pfn: int, lid: int, tail: bool, mode: int) -> bool:
        """Insert a block at the head or tail of its deque if nodes can be had in
        ``mode``. Any node-page allocation may change the deque (nested expand), so the
        key and the node count are recomputed after each one."""
        t = self.tree
        pool = self.lid_pool[lid]
        while True:
            if t.count[lid]:
                k = t.tail[lid] if tail else t.head[lid] - 1
                if not self.kmin <= k < self.kmax:
                    if not self._renumber(lid, mode):
                        return False
                    continue
                need = t.nodes_needed(lid, k)
            else:
                k = 0
                need = 1
            if need <= self.pool_free[pool]:
                break
            if not self._alloc_node_page(mode, pool):
                return False
        self._cur_pool = pool
        t.insert(lid, k, pfn)
        self._set_free(pfn, lid, k)
        return True

    def _renumber(self, lid: int, mode: int) -> bool:
        """The running index would leave the index field: compact the deque to
        consecutive indices centred on 0 and rewrite every block's index."""
        t = self.tree
        pool = self.lid_pool[lid]
        while True:
            n = t.count[lid]
            if n + 2 > self.kmax - self.kmin:
                return False  # the deque fills the whole index space: documented limit
            need = dense_nodes_bound(n, self.fanout) - t.nnodes[lid]
            if need <= self.pool_free[pool]:
                break
            if not self._alloc_node_page(mode, pool):
                return False
        self._cur_pool = pool
        items = t.clear(lid)
        start = -(n // 2)
        for i, (_, pfn) in enumerate(items):
            t.insert(lid, start + i, pfn)
            self._write_index(pfn, start + i)
        self.renumberings += 1
        return True

    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        if self._try_insert(pfn, lid, tail, self._mode()):
            return
        if self.policy in ("self", "movable-nodes") and self.alloc.booted \
                and not self.offbook and self._carve_ok(pfn):
            self._carve(pfn, order, lid, tail)
            return
        self._defer(pfn, lid)

    def _placement(self, pfn: int) -> str | None:
        """Why unmovable metadata may not live at pfn (None: it may)."""
        a = self.alloc
        zt = a.zone_of(pfn).ztype
        if zt == ZoneType.HIGHMEM:
            return "HighMem"
        if zt == ZoneType.MOVABLE:
            return "Movable"
        if a.pageblock_base_migratetype(pfn) == MIGRATE_CMA:
            return "CMA"
        if a.get_pageblock_migratetype(pfn) == MIGRATE_ISOLATE:
            return "Isolate"
        return None

    def _unmapped(self, pfn: int) -> bool:
        return self.alloc.PageHighMem(pfn)

    def _carve_ok(self, pfn: int) -> bool:
        if self.policy == "self":
            return True
        # movable-nodes: anywhere permanently mapped and not being isolated
        return not self._unmapped(pfn) and self._placement(pfn) != "Isolate"

    def _carve(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        """Consume the last page of the block being freed as a node page; the core
        adds the rest back as free pieces of orders order-1 .. 0 (carve_meta_page)."""
        npfn = pfn + (1 << order) - 1
        self._clear_free(pfn)  # a drained deferred block still carries its old state
        where = self._placement(npfn)
        if where is not None and (self.policy != "movable-nodes" or self._unmapped(npfn)):
            self.violations[where] += 1
        pool = self.lid_pool[lid]

        def on_page(p: int) -> None:
            self._add_node_page(p, pool)
            self.carved_pages += 1

        self.alloc.carve_meta_page(pfn, order, lid, tail, "meta:radix", on_page)

    def del_from_free_list(self, pfn: int, order: int) -> None:
        state, lid, v = self._decode(pfn)
        if state == 1:
            self.tree.remove(lid, v)
        elif state == 2:
            self._undefer(pfn, lid)
        else:
            raise RuntimeError(f"del_from_free_list: pfn {pfn:#x} is not a free block head")
        self._clear_free(pfn)

    def first_in_list(self, lid: int) -> int:
        h = self.tree.headval[lid]
        return h if h >= 0 else self.dhead[lid]

    def list_pfns(self, lid: int) -> Iterator[int]:
        yield from self.tree.values(lid)
        yield from self._deferred_pfns(lid)

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        if self.words == 2:
            w0 = self.m[pfn << 1]
            return bool(w0 & FREE_BITS) and (w0 & (self.zmask | ORDER_MASK)) == self.zbits[zid] | order
        w = self.m[pfn]
        t = w & TAG_MASK
        return ((t == TAG_BUDDY or t == TAG_BUDDY_DEFERRED) and (w >> W1_ORDER_SHIFT) & 0xF == order
                and self.alloc.zid_of_pfn[pfn] == zid)

    def buddy_order(self, pfn: int) -> int:
        if self.words == 2:
            w0 = self.m[pfn << 1]
            return w0 & ORDER_MASK if w0 & FREE_BITS else -1
        w = self.m[pfn]
        t = w & TAG_MASK
        return (w >> W1_ORDER_SHIFT) & 0xF if t == TAG_BUDDY or t == TAG_BUDDY_DEFERRED else -1

    # ------------------------------------------------------------------------------
    # allocated memory: descriptors, and the allocation-path maintenance
    # ------------------------------------------------------------------------------
    def prep_alloc(self, order: int, kind: str, gfp: int) -> Any:
        if not self._busy and not kind.startswith("meta") and not self.alloc.in_free_path and (
                self.ndeferred or self.pool_free[0] < self.target_nodes or self.n_empty > self.keep_empty):
            self.maintain()
        if self.desc is None:
            return misc_word(kind, order)
        return self.desc.prepare(order, kind, gfp)

    def maintain(self) -> None:
        """Allocation path (may allocate, may fail): drain deferred blocks into their
        trees, refill the node reserve, give surplus empty node pages back."""
        if self._busy or not self.alloc.booted:
            return
        self._busy = True
        try:
            mode = MODE_OFFBOOK if self.offbook else MODE_ALLOC
            budget = 256
            t = self.tree
            if self.policy == "self" and not self.offbook:
                self._drain_self()
            for lid in range(self.nlists) if self.ndeferred else ():
                while self.dhead[lid] >= 0 and budget > 0:
                    # nodes first, while the block is still findable on its deferred list
                    k = t.push_tail_key(lid)
                    if not self.kmin <= k < self.kmax:
                        if not self._renumber(lid, mode):
                            budget = 0
                        continue
                    pool = self.lid_pool[lid]
                    if t.nodes_needed(lid, k) > self.pool_free[pool]:
                        budget -= 1
                        if not self._alloc_node_page(mode, pool):
                            budget = 0
                        continue
                    pfn = self.dhead[lid]
                    self._undefer(pfn, lid)
                    self._cur_pool = pool
                    t.insert(lid, k, pfn)
                    self._set_free(pfn, lid, k)
            while self.pool_free[0] < self.target_nodes and budget > 0:
                budget -= 1
                if not self._alloc_node_page(mode):
                    break
            for pool in range(self.npools):
                # bounded: under `self` a released page may be carved right back into
                # a node page by the free it triggers, which would loop forever
                excess = self.n_empty - self.keep_empty
                while excess > 0 and self.empty[pool]:
                    excess -= 1
                    self._release_page(next(iter(self.empty[pool])))
        finally:
            self._busy = False

    def _drain_self(self) -> None:
        """`self` never allocates node pages: a deferred block is re-added (the core
        counts it on its list already), and if its deque has no free node it becomes
        (part of) one."""
        for lid in range(self.nlists):
            while self.dhead[lid] >= 0:
                pfn = self.dhead[lid]
                self._undefer(pfn, lid)
                self.add_to_free_list(pfn, split_list_id(lid)[1], lid, True)

    def abort_alloc(self, token: Any) -> None:
        if self.desc is not None:
            self.desc.abort(token)

    def _write_memdesc(self, pfn: int, order: int, word: int) -> None:
        W = self.W
        md = self.MD
        if order <= 2:
            m = self.m
            for p in range(pfn * W + md, (pfn + (1 << order)) * W, W):
                m[p] = word
        else:
            self.mm.np[pfn * W + md:(pfn + (1 << order)) * W:W] = word

    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        if self.desc is not None:
            if not token:
                self.desc.late_allocs += 1  # mark_allocated() skips prep_alloc
                token = self.desc.prepare(order, kind, 0)
                if token is None:
                    token = misc_word("misc", order)
            self._write_memdesc(pfn, order, token)
            self.desc.commit(pfn, token)
        else:
            self._write_memdesc(pfn, order, misc_word(kind, order))
        if self.words == 2 and order:
            self.m[pfn << 1] |= PG_head

    def free_prepare(self, pfn: int, order: int) -> None:
        if self.desc is not None:
            self.desc.release(self.m[pfn * self.W + self.MD])
        self._write_memdesc(pfn, order, 0)
        if self.words == 2:
            self.m[pfn << 1] &= ~PG_head

    # ------------------------------------------------------------------------------
    # movable node pages
    # ------------------------------------------------------------------------------
    def relocate_node_page(self, pfn: int, gfp: int | None = None) -> int:
        """Move every node on node page ``pfn`` to a newly allocated page, rewriting
        the one parent slot (or root) that references each, and free ``pfn``.
        Returns the new pfn, or -1 if no page could be had (nothing changed)."""
        pi = self.pfn_to_pi.get(pfn)
        if pi is None:
            raise ValueError(f"pfn {pfn:#x} is not a radix node page")
        busy = self._busy
        self._busy = True
        try:
            new = self.alloc.alloc_pages(self.node_gfp if gfp is None else gfp, 0, kind="meta:radix")
        finally:
            self._busy = busy
        if new < 0:
            return -1
        npi = self._add_node_page(new, self.page_pool[pi])
        npp = self.nodes_per_page
        live = ~self.page_free[pi] & ((1 << npp) - 1)
        while live:
            s = (live & -live).bit_length() - 1
            live &= live - 1
            self._take_slot(npi, s)
            self.tree.move_node(pi * npp + s, npi * npp + s)
            self._give_slot(pi, s)
        self.relocations += 1
        busy = self._busy
        self._busy = True
        try:
            self._release_page(pi)
        finally:
            self._busy = busy
        return new

    def meta_movable(self, pfn: int) -> bool:
        """Under movable-nodes a node page is movable (has_unmovable_pages)."""
        return self.policy == "movable-nodes" and pfn in self.pfn_to_pi

    def relocate_meta(self, pfn: int) -> int:
        """Node pages move (movable-nodes), other metadata (slab) does not."""
        if not self.relocates_meta or pfn not in self.pfn_to_pi:
            return -1
        return self.relocate_node_page(pfn)

    def meta_kind(self, pfn: int) -> str | None:
        """'radix-node' for node pages (blocker reports)."""
        return "radix-node" if pfn in self.pfn_to_pi else None

    def node_page_pfns(self) -> list[int]:
        return [p for p in self.page_pfn if p >= 0]

    # ------------------------------------------------------------------------------
    # accounting and checks
    # ------------------------------------------------------------------------------
    def numpy_state(self) -> dict[str, Any]:
        w = self.mm.field(0)
        if self.words == 2:
            return {
                "buddy_mask": (w & np.uint64(FREE_BITS)) != 0,
                "buddy_order": w & np.uint64(ORDER_MASK),
                "reserved_mask": (w & np.uint64(PG_reserved)) != 0,
            }
        t = w & np.uint64(TAG_MASK)
        return {
            "buddy_mask": (t == np.uint64(TAG_BUDDY)) | (t == np.uint64(TAG_BUDDY_DEFERRED)),
            "buddy_order": (w >> np.uint64(W1_ORDER_SHIFT)) & np.uint64(0xF),
        }

    def live_violations(self) -> dict[str, int]:
        """Node pages now sitting where unmovable metadata may not live."""
        out = {"HighMem": 0, "Movable": 0, "CMA": 0, "Isolate": 0}
        for pfn in self.node_page_pfns():
            where = self._placement(pfn)
            if where is not None and (self.policy != "movable-nodes" or self._unmapped(pfn)):
                out[where] += 1
        return out

    def metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = {}
        if self.desc is not None:
            md.update(self.desc.metadata())
        node_bytes = self.node_pages_live * PAGE_SIZE
        md.update({
            "memmap_bytes": self.memmap_bytes(),
            "memmap_bytes_stored": self.alloc.machine.present_pages * self.struct_page_bytes,
            "dynamic_bytes": node_bytes + md.get("dynamic_bytes", 0),
            "radix_node_pages_live": self.node_pages_live,
            "radix_node_pages_peak": self.node_pages_peak,
            "radix_nodes_live": self.tree.nr_allocated,
            "radix_nodes_peak": self.tree.nr_allocated_peak,
            "radix_node_bytes": self.node_bytes,
            "radix_nodes_per_page": self.nodes_per_page,
            "reserve_pages": self.n_empty,
            "reserve_nodes_free": self.free_nodes,
            "deferred_blocks": self.ndeferred,
            "deferred_events": self.deferred_events,
            "deferred_free_path": self.deferred_free_path,
            "boot_deferred": self.boot_deferred,
            "renumberings": self.renumberings,
            "carved_pages": self.carved_pages,
            "borrowed_pages": self.borrowed_pages,
            "relocations": self.relocations,
            "meta_alloc_failures": self.meta_failures,
            "allocs_in_free_path": self.alloc.allocs_in_free_path,
            "violations": {"unmovable_meta_in_movable": sum(self.violations.values()), **self.violations,
                           "live": self.live_violations(),
                           "allocs_in_free_path": self.alloc.allocs_in_free_path},
            "policy": self.policy,
            "words": self.words,
            "index_bits": self.index_bits,
            "offbook": self.offbook,
        })
        return md

    def fingerprint_state(self) -> list[Any]:
        t = self.tree
        out = [self.mm.buf, self.dhead, self.dtail, self.dcount, self.page_pfn, self.page_free, self.page_live,
               self.page_pool, self.pool_free, [list(p) for p in self.partial], [list(e) for e in self.empty],
               sorted(self.pfn_to_pi.items()), self.free_pis, *t.fingerprint_state()]
        if self.desc is not None:
            out += self.desc.fingerprint_state()
        return out

    def check(self, report: Any, state: Any) -> None:
        astate = state.alloc_state
        desc_state = state
        t = self.tree
        deferred = 0
        for lid in range(self.nlists):
            for e in t.verify(lid):
                report.add("radix_tree", e)
            for k, pfn in t.items(lid):
                state, wl, wk = self._decode(pfn)
                if state != 1 or wl != lid or wk != k:
                    report.add("radix_index", f"pfn {pfn:#x} sits in deque {lid} at index {k} but its words say "
                               f"state {state}, list {wl}, index {wk}")
                if not self.kmin <= k < self.kmax:
                    report.add("radix_index", f"deque {lid}: index {k} outside {self.index_bits} bits")
            n = 0
            for pfn in self._deferred_pfns(lid):
                n += 1
                state, wl, _ = self._decode(pfn)
                if state != 2 or wl != lid:
                    report.add("radix_deferred", f"pfn {pfn:#x} on deferred list {lid}: words say state {state}, "
                               f"list {wl}")
            if n != self.dcount[lid] or (n and self._decode(self.dtail[lid])[2] != 0):
                report.add("radix_deferred", f"deferred list {lid}: {n} blocks, count {self.dcount[lid]}")
            deferred += n
        if deferred != self.ndeferred:
            report.add("radix_deferred", f"{deferred} deferred blocks, counter {self.ndeferred}")
        live = sum(self.page_live[pi] for pi in range(len(self.page_pfn)) if self.page_pfn[pi] != EMPTY)
        if live != t.nr_allocated:
            report.add("radix_nodes", f"node pages hold {live} nodes, trees have {t.nr_allocated}")
        free = sum(self.nodes_per_page - self.page_live[pi] for pi in range(len(self.page_pfn))
                   if self.page_pfn[pi] != EMPTY)
        if free != self.free_nodes or free != sum(self.pool_free):
            report.add("radix_nodes", f"{free} free node slots, counters {self.free_nodes} {self.pool_free}")
        if not self.offbook:
            st = astate
            for pfn in self.node_page_pfns():
                if int(st[pfn]) & ~AS_MOVABLE != (AS_META | 1):
                    report.add("radix_meta", f"node page {pfn:#x} has alloc_state {int(st[pfn]):#x}, "
                               "not an order-0 metadata page")
            for where, n in self.live_violations().items():
                if n:
                    report.add("unmovable_meta_in_movable", f"{n} radix node pages in {where} memory", n)
        if self.desc is not None:
            self.desc.check(report, desc_state, self.mm.field(self.MD))


__all__ = ["RadixDequeDesign", "POLICIES", "DEFAULT_POLICY"]
