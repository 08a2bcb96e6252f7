"""`buddy-desc`: 8-byte struct page (one memdesc word) and a separately allocated
``struct buddy`` per free block -- Matthew Wilcox, linux-mm, 25 Oct 2021 (kernel-facts §1.1).

Memmap (one word per pfn)::

    free block head     memdesc = &struct buddy | 1 (MEMDESC_BUDDY)
    free block tail     0  -- not written on split/merge: the kernel only asks
                        page_is_buddy() about block *heads*, and pointing every page
                        at the struct buddy would cost O(2^order) writes per split and
                        merge; tails are zeroed once, by free_pages_prepare(), which
                        touches every page of the block anyway
    allocated page      the descriptor's memdesc (every page of the block), or the inline
                        Misc word (see memdesc.designs.descriptors)
    pcp page            0

``struct buddy { unsigned long flags; struct list_head list; unsigned int order;
struct page *page; }`` = 8 + 16 + 4 (+4 padding) + 8 = 40 bytes, rounded up to 48 by the
16-byte alignment every memdesc target needs (kernel-facts §2.1), from its own slab cache
``buddy`` (order-3 slabs, 682 objects: see "the loop" below).  The model keeps the
objects in a struct-of-arrays table ``self.b`` (array('Q'), 5 words per row) with the
object's slab address in ``rowptr``; list pointers are stored as row numbers (the model's
stand-in for the list_head address, as linked.py stores pfns).  Rows 0..nlists-1 are the
free_area list heads of struct zone (sentinels, not struct buddies, not counted).

``flags`` bits::

    0-3    migratetype of the list the block is on (the kernel today re-reads the
           pageblock; kept here so the checker needs no walk)
    4-7    zone index within the node (kernel zone numbering, ZONES_SHIFT <= 3)
    8-17   node id (NODES_SHIFT 10)
    20     BUDDY_FREE: attached to a free block (clear while in the reserve pool)

``order`` holds the block order, ``page`` the head pfn (the back-pointer Wilcox added so
the allocator can go from a struct buddy to its memory).  page_is_buddy(pfn, order, zid)
= memdesc tag is Buddy, and the struct buddy's page == pfn, order == order and zone/node
bits == zid's.

Never allocate when freeing (the invariant of the email).  A reserve pool of free struct
buddies is kept so that, at all times outside an allocation,

    pool >= committed = #allocated blocks (incl. metadata) + #pcp blocks

since each of those may become a free block without any merge; a merge releases the
absorbed buddy's struct buddy to the pool, so the free path never needs more than the
pool.  The allocation path tops the pool up *before* taking pages (prep_alloc) to

    committed + margin(order) + H_desc + H_buddy + MAX_PAGE_ORDER,
    margin(o) = B(o) * (MAX_PAGE_ORDER - o)   (B(o) = blocks one call may take out of
                buddy: the pcp refill batch for pcp orders, else 1; each split of an
                order-k block for order o needs k - o new struct buddies, its own is
                released, and the block joins "committed")
    H_desc  = margin(order of the descriptor slab)   -- a folio slab page allocated later
    H_buddy = margin(order of the buddy slab)        -- a buddy slab page during the top-up

(the last MAX_PAGE_ORDER is headroom for one split the core makes without prep_alloc:
isolate_free_page() for migration/compaction/contig allocation, topped up again in
post_alloc() when mark_allocated() follows).
If the pool cannot be filled (slab page or injected failure) the allocation fails before
any page is touched (FAIL_DESCRIPTOR, counted in ``buddy_desc_failures``).

The "solvable but ugly loop" (Wilcox, Jan 2024): filling the pool may need a new slab page
for the buddy cache, i.e. a nested alloc_pages(kind='meta:slab:buddy').  A nested
(depth >= 2) allocation never tops up; it only checks pool >= committed + margin(order)
and fails otherwise.  So the recursion depth is 2 (counted in counters.max_recursion).
It terminates because a buddy slab yields 682 objects and its own allocation consumes at
most H_buddy = 7 * 7 = 49 (order 3 goes through the pcp lists with a batch >> 3 refill).

Boot: memblock_free_all() frees all memory before any slab exists.  Struct buddies for
the boot free blocks (and H_buddy more, so the first buddy slab can be allocated) come
from an off-book boot pool (memblock-like, addresses in the vmalloc area of the model);
they are counted in ``boot_bytes`` and included in ``dynamic_bytes``.  They are reused
like any other struct buddy and never returned.  After boot the pool must never run dry;
if it does (a core path that takes pages without prep_alloc, e.g. isolate_free_page), a
boot object is used and ``pool_exhausted`` is reported by check().
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np

from memdesc.designs.base import Design, DesignError
from memdesc.designs.descriptors import (
    MEMDESC_BUDDY,
    OFFBOOK_BASE,
    OFFBOOK_SPAN,
    TAG_MASK,
    DescriptorMixin,
    Descriptors,
)
from memdesc.designs.memmap import Memmap
from memdesc.mm.mmzone import MAX_PAGE_ORDER, MIGRATE_TYPES, NR_PAGE_ORDERS, PAGE_ALLOC_COSTLY_ORDER, split_list_id

BW = 5
BF_FLAGS, BF_NEXT, BF_PREV, BF_ORDER, BF_PAGE = range(BW)
FL_MT_MASK = 0xF
FL_ZONE_SHIFT = 4
FL_NODE_SHIFT = 8
FL_ZONENODE_MASK = (0x3FF << FL_NODE_SHIFT) | (0xF << FL_ZONE_SHIFT)
BUDDY_FREE = 1 << 20
STRUCT_BUDDY_BYTES = 40  # flags 8 + list_head 16 + order 4 + pad 4 + page 8
BUDDY_SLAB_ORDER = 3
HPAGE_PMD_ORDER = 9

_OPTIONS = {"offbook", "derive_kinds", "desc_fail_rate", "seed", "desc_sizes", "buddy_slab_order"}


class BuddyDescDesign(DescriptorMixin, Design):
    """Options: ``offbook``, ``derive_kinds``, ``desc_fail_rate`` (also applies to the
    struct buddy cache), ``seed``, ``desc_sizes``, ``buddy_slab_order`` (default 3)."""

    name = "buddy-desc"
    struct_page_bytes = 8
    uses_descriptors = True
    fault_options = frozenset({"desc_fail_rate"})
    linked_equivalent_options = {"offbook": True}
    variants = ({}, {"desc_fail_rate": 0.05})

    def __init__(self, alloc: Any, **options: Any) -> None:
        super().__init__(alloc, **options)
        unknown = set(options) - _OPTIONS
        if unknown:
            raise DesignError(f"buddy-desc: unknown design options {sorted(unknown)}")
        ws = alloc.machine.word_size
        self.page_bytes = ws
        # offbook (test mode): reserve linked's 64-byte memmap at boot so zones, watermarks
        # and hence the pfn sequence equal linked's; memmap_bytes() still reports page_bytes.
        self.struct_page_bytes = 64 if options.get("offbook", False) else self.page_bytes
        self.W = 1
        self.offbook = bool(options.get("offbook", False))
        self.desc = Descriptors(alloc, sizes=options.get("desc_sizes"), offbook=self.offbook,
                                derive_kinds=options.get("derive_kinds", True),
                                desc_fail_rate=options.get("desc_fail_rate", 0.0), seed=options.get("seed", 0))
        self.bcache = self.desc.new_cache("buddy", STRUCT_BUDDY_BYTES,
                                          order=options.get("buddy_slab_order", BUDDY_SLAB_ORDER))
        self.boot_base = OFFBOOK_BASE[ws] + OFFBOOK_SPAN[ws] // 2
        self.nr_boot = 0
        self.nr_alloc = 0  # allocated blocks (post_alloc - free_prepare)
        self.pool_exhausted = 0
        self.buddy_desc_failures = 0
        self.topup_slab_allocs = 0
        self.pool_peak = 0
        self._margins: list[int] | None = None
        self._seeded = False

    # -- boot ------------------------------------------------------------------------------
    def init_memmap(self) -> None:
        a = self.alloc
        self.nlists = nlists = len(a.zones) * NR_PAGE_ORDERS * MIGRATE_TYPES
        self.nr = a.nr_pfns
        self.mm = Memmap(a.nr_pfns, 1)
        self.m = self.mm.buf
        self.b = array("Q", [0]) * (nlists * BW)
        for h in range(nlists):
            self.b[h * BW + BF_NEXT] = h
            self.b[h * BW + BF_PREV] = h
        self.rowptr: list[int] = [0] * nlists
        self.ptr2row: dict[int, int] = {}
        self.free_rows: list[int] = []
        self.pool: list[int] = []
        self.zone_bits = [(z.nid << FL_NODE_SHIFT) | (z.node_zone_idx << FL_ZONE_SHIFT) for z in a.zones]
        self.lid_flags = [BUDDY_FREE | self.zone_bits[split_list_id(lid)[0]] | split_list_id(lid)[2]
                          for lid in range(nlists)]

    def set_reserved(self, start: int, end: int) -> None:
        """Reserved pages keep memdesc 0 (Misc, subtype 0 "reserved")."""

    def clear_reserved(self, start: int, end: int) -> None:
        """Reserved and free-but-unlisted pages are both memdesc 0: nothing to do."""

    # -- struct buddy objects ------------------------------------------------------------------
    def _new_row(self, ptr: int) -> int:
        if self.free_rows:
            r = self.free_rows.pop()
            self.rowptr[r] = ptr
        else:
            r = len(self.rowptr)
            self.rowptr.append(ptr)
            self.b.extend((0, 0, 0, 0, 0))
        self.ptr2row[ptr] = r
        return r

    def _boot_object(self) -> int:
        """A struct buddy from the memblock-like boot pool (row number)."""
        ptr = self.boot_base + self.nr_boot * self.bcache.size
        self.nr_boot += 1
        return self._new_row(ptr)

    def _margins_table(self) -> list[int]:
        """margin(o) for every order (see module docstring); pcp sizes exist after boot."""
        a = self.alloc
        b0 = max((p.batch for z in a.zones for p in z.pcp), default=1) if a.pcp_enabled else 1
        out = []
        for o in range(NR_PAGE_ORDERS):
            pcp = a.pcp_enabled and (o <= PAGE_ALLOC_COSTLY_ORDER or (o == HPAGE_PMD_ORDER and a.thp))
            nb = (b0 if o == 0 else max(b0 >> o, 2)) if pcp else 1
            out.append(nb * (MAX_PAGE_ORDER - o))
        return out

    def committed(self) -> int:
        """Blocks that may become free without a merge: allocated + pcp blocks."""
        return self.nr_alloc + self.alloc.nr_pcp_blocks()

    def _topup(self, target: int, gfp: int) -> bool:
        """Fill the reserve pool to ``target`` objects (may nest one alloc_pages per slab)."""
        pool = self.pool
        c = self.bcache
        while len(pool) < target:
            slabs = c.slab_allocs
            ptr = c.alloc(gfp)
            if c.slab_allocs != slabs:
                self.topup_slab_allocs += 1
            if not ptr:
                return False
            pool.append(self._new_row(ptr))
        if len(pool) > self.pool_peak:
            self.pool_peak = len(pool)
        return True

    def _trim(self, target: int) -> None:
        """Return surplus reserve objects to the slab (kmem_cache_free; may free slab pages)."""
        pool = self.pool
        keep = []
        while len(pool) + len(keep) > target and pool:
            r = pool.pop()
            ptr = self.rowptr[r]
            if ptr >= self.boot_base:
                keep.append(r)
                continue
            del self.ptr2row[ptr]
            self.free_rows.append(r)
            self.bcache.free(ptr)
        pool.extend(reversed(keep))

    # -- allocated memory ----------------------------------------------------------------------
    def prep_alloc(self, order: int, kind: str, gfp: int) -> Any:
        """Struct buddies first (reserve), then the descriptor (kmem_cache_alloc); None = fail."""
        margins = self._margins
        if margins is None:
            margins = self._margins = self._margins_table()
            self.h_desc = max(margins[c.order] for c in self.desc.by_kind.values())
            self.h_buddy = margins[self.bcache.order]
        if not self._seeded:
            self._seeded = True
            while len(self.pool) < self.h_buddy:
                self.pool.append(self._boot_object())
        committed = self.committed()
        if self.alloc.alloc_depth > 1 or self.alloc.in_free_path:
            # nested (a slab page for a descriptor or struct buddy cache): no top-up
            if len(self.pool) < committed + margins[order]:
                self.buddy_desc_failures += 1
                return None
        else:
            target = committed + margins[order] + self.h_desc + self.h_buddy + MAX_PAGE_ORDER
            if not self._topup(target, gfp):
                self.buddy_desc_failures += 1
                return None
            slack = self.bcache.objects_per_slab
            if len(self.pool) > target + 2 * slack:
                self._trim(target + slack)
        return self.desc.prepare(order, kind, gfp)

    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        self.nr_alloc += 1
        super().post_alloc(pfn, order, kind, token)
        if not token and self._margins is not None and not self.alloc.in_free_path:
            # mark_allocated() after isolate_free_page(): that split was not prepared for
            # (it used the MAX_PAGE_ORDER of spare headroom); restore the headroom now.
            target = self.committed() + self.h_buddy + MAX_PAGE_ORDER
            if not self._topup(target, 0):
                self.buddy_desc_failures += 1

    def free_prepare(self, pfn: int, order: int) -> None:
        self.nr_alloc -= 1
        super().free_prepare(pfn, order)

    # -- free lists --------------------------------------------------------------------------------
    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        pool = self.pool
        if pool:
            r = pool.pop()
        else:
            if self._seeded:
                self.pool_exhausted += 1
            r = self._boot_object()
        b = self.b
        rb = r * BW
        hb = lid * BW
        if tail:
            prev = b[hb + BF_PREV]
            b[rb + BF_NEXT] = lid
            b[rb + BF_PREV] = prev
            b[prev * BW + BF_NEXT] = r
            b[hb + BF_PREV] = r
        else:
            nxt = b[hb + BF_NEXT]
            b[rb + BF_NEXT] = nxt
            b[rb + BF_PREV] = lid
            b[nxt * BW + BF_PREV] = r
            b[hb + BF_NEXT] = r
        b[rb + BF_FLAGS] = self.lid_flags[lid]
        b[rb + BF_ORDER] = order
        b[rb + BF_PAGE] = pfn
        self.m[pfn] = self.rowptr[r] | MEMDESC_BUDDY

    def del_from_free_list(self, pfn: int, order: int) -> None:
        m = self.m
        r = self.ptr2row[m[pfn] & ~TAG_MASK]
        b = self.b
        rb = r * BW
        nxt = b[rb + BF_NEXT]
        prv = b[rb + BF_PREV]
        b[prv * BW + BF_NEXT] = nxt
        b[nxt * BW + BF_PREV] = prv
        b[rb + BF_FLAGS] = 0
        self.pool.append(r)
        m[pfn] = 0

    def move_to_free_list(self, pfn: int, order: int, lid: int) -> None:
        """list_move_tail(): the same struct buddy changes lists, no pool traffic."""
        r = self.ptr2row[self.m[pfn] & ~TAG_MASK]
        b = self.b
        rb = r * BW
        nxt = b[rb + BF_NEXT]
        prv = b[rb + BF_PREV]
        b[prv * BW + BF_NEXT] = nxt
        b[nxt * BW + BF_PREV] = prv
        hb = lid * BW
        prev = b[hb + BF_PREV]
        b[rb + BF_NEXT] = lid
        b[rb + BF_PREV] = prev
        b[prev * BW + BF_NEXT] = r
        b[hb + BF_PREV] = r
        b[rb + BF_FLAGS] = self.lid_flags[lid]

    def first_in_list(self, lid: int) -> int:
        b = self.b
        n = b[lid * BW + BF_NEXT]
        return -1 if n == lid else b[n * BW + BF_PAGE]

    def list_pfns(self, lid: int) -> Iterator[int]:
        b = self.b
        n = b[lid * BW + BF_NEXT]
        seen = 0
        while n != lid:
            yield b[n * BW + BF_PAGE]
            n = b[n * BW + BF_NEXT]
            seen += 1
            if seen > self.nr:
                raise RuntimeError(f"free list {lid} is corrupt (cycle)")

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        w = self.m[pfn]
        if w & TAG_MASK != MEMDESC_BUDDY:
            return False
        rb = self.ptr2row[w & ~TAG_MASK] * BW
        b = self.b
        return (b[rb + BF_ORDER] == order and b[rb + BF_PAGE] == pfn
                and b[rb + BF_FLAGS] & FL_ZONENODE_MASK == self.zone_bits[zid])

    def buddy_order(self, pfn: int) -> int:
        w = self.m[pfn]
        if w & TAG_MASK != MEMDESC_BUDDY:
            return -1
        rb = self.ptr2row[w & ~TAG_MASK] * BW
        return self.b[rb + BF_ORDER] if self.b[rb + BF_PAGE] == pfn else -1

    # -- accounting and checks -----------------------------------------------------------------
    def _head_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(pfns whose memdesc is Buddy-tagged, their struct buddy rows or -1)."""
        w = self.mm.np[:self.nr]
        heads = np.nonzero((w & np.uint64(TAG_MASK)) == np.uint64(MEMDESC_BUDDY))[0]
        rows = np.full(len(heads), -1, dtype=np.int64)
        if len(heads) and self.ptr2row:
            keys = np.fromiter(self.ptr2row.keys(), dtype=np.uint64, count=len(self.ptr2row))
            vals = np.fromiter(self.ptr2row.values(), dtype=np.int64, count=len(self.ptr2row))
            idx = np.argsort(keys)
            keys, vals = keys[idx], vals[idx]
            want = w[heads] & ~np.uint64(TAG_MASK)
            pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            hit = keys[pos] == want
            rows[hit] = vals[pos[hit]]
        return heads, rows

    def numpy_state(self) -> dict[str, Any]:
        heads, rows = self._head_rows()
        bnp = np.frombuffer(self.b, dtype=np.uint64)
        mask = np.zeros(self.nr, dtype=bool)
        order = np.zeros(self.nr, dtype=np.uint64)
        ok = rows >= 0
        good = heads[ok]
        r = rows[ok]
        ok2 = bnp[r * BW + BF_PAGE] == good.astype(np.uint64)
        mask[good[ok2]] = True
        order[good[ok2]] = bnp[r[ok2] * BW + BF_ORDER]
        return {"buddy_mask": mask, "buddy_order": order}

    def memmap_bytes(self) -> int:
        return self.alloc.machine.present_pages * self.page_bytes

    def fingerprint_state(self) -> list[Any]:
        return [*super().fingerprint_state(), self.b, self.rowptr, sorted(self.ptr2row.items()), self.free_rows,
                self.pool, self.nr_boot, self.nr_alloc]

    def metadata(self) -> dict[str, Any]:
        md = self.desc.metadata()
        boot_bytes = self.nr_boot * self.bcache.size
        md["memmap_bytes"] = self.memmap_bytes()
        md["memmap_bytes_stored"] = self.nr * self.alloc.machine.word_size
        md["boot_bytes"] = boot_bytes
        md["dynamic_bytes"] += -(-boot_bytes // 4096) * 4096
        md["dynamic_bytes_peak"] += -(-boot_bytes // 4096) * 4096
        md["struct_buddy_bytes"] = self.bcache.size
        md["struct_buddy_in_use"] = len(self.ptr2row) - len(self.pool)
        md["struct_buddy_pool"] = len(self.pool)
        md["struct_buddy_pool_peak"] = self.pool_peak
        md["buddy_desc_failures"] = self.buddy_desc_failures
        md["buddy_topup_slab_allocs"] = self.topup_slab_allocs
        md["pool_exhausted"] = self.pool_exhausted
        md["allocs_in_free_path"] = self.alloc.allocs_in_free_path
        return md

    def check(self, report: Any, state: Any) -> None:
        a = self.alloc
        self.desc.check(report, state, self.mm.np)
        # every struct buddy on a list describes its block; count them
        b = self.b
        in_use = 0
        for lid in range(self.nlists):
            zid, order, mt = split_list_id(lid)
            n = b[lid * BW + BF_NEXT]
            prev = lid
            while n != lid:
                rb = n * BW
                pfn = b[rb + BF_PAGE]
                in_use += 1
                if b[rb + BF_PREV] != prev:  # CONFIG_DEBUG_LIST
                    report.add("list_links", f"struct buddy {self.rowptr[n]:#x}: prev {b[rb + BF_PREV]} is not "
                               f"the entry before it ({prev})")
                prev = n
                if (b[rb + BF_ORDER] != order or b[rb + BF_FLAGS] != self.lid_flags[lid]
                        or self.m[pfn] != self.rowptr[n] | MEMDESC_BUDDY or a.zid_of_pfn[pfn] != zid):
                    report.add("struct_buddy", f"struct buddy {self.rowptr[n]:#x} on list (zone {zid}, order "
                               f"{order}, mt {mt}) describes pfn {pfn:#x} order {b[rb + BF_ORDER]} flags "
                               f"{b[rb + BF_FLAGS]:#x}, memdesc {self.m[pfn]:#x}")
                n = b[rb + BF_NEXT]
        heads, rows = self._head_rows()
        if len(heads) != in_use or np.any(rows < 0):
            report.add("struct_buddy", f"{len(heads)} Buddy memdescs but {in_use} struct buddies on lists")
        # tails of free blocks are zero
        if len(heads) and not np.any(rows < 0):
            bnp = np.frombuffer(b, dtype=np.uint64)
            sizes = np.left_shift(1, bnp[rows * BW + BF_ORDER].astype(np.int64))
            total = int(sizes.sum())
            pages = np.repeat(heads, sizes) + np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            tails = pages[pages != np.repeat(heads, sizes)]
            bad = np.nonzero(self.mm.np[tails] != 0)[0] if len(tails) else []
            for i in bad[:5]:
                report.add("struct_buddy", f"free tail page {tails[i]:#x} holds memdesc {int(self.mm.np[tails[i]]):#x}")
        # objects: owned = in use + pool; no leak against the slab and boot pool
        owned = len(self.ptr2row)
        if owned != in_use + len(self.pool):
            report.add("buddy_leak", f"{owned} struct buddies owned but {in_use} in use + {len(self.pool)} pooled")
        if owned != self.bcache.objects_live + self.nr_boot:
            report.add("buddy_leak", f"{owned} struct buddies owned but the slab holds {self.bcache.objects_live} "
                       f"and the boot pool {self.nr_boot}")
        # never allocate on free: the reserve covers every block that can be freed
        n_alloc = len(state.AH)
        n_pcp = len(state.PH)
        if n_alloc != self.nr_alloc:
            report.add("buddy_reserve", f"{n_alloc} allocated blocks but the design counts {self.nr_alloc}")
        if self._seeded and len(self.pool) < n_alloc + n_pcp:
            report.add("buddy_reserve", f"reserve pool {len(self.pool)} < allocated {n_alloc} + pcp {n_pcp} blocks: "
                       "a free could need to allocate a struct buddy")
        if self.pool_exhausted:
            report.add("buddy_reserve", f"the reserve ran dry {self.pool_exhausted} times after boot")
