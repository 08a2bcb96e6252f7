"""`linked`: Linux today. 64-byte struct page, free lists are list_heads in it.

Of struct page's eight words the model stores the five the page allocator uses
(everything is reported as 64 bytes per page, what the kernel pays)::

    model word  struct page offset   field
    0           0                    flags: node bits at [W-NODES_SHIFT, W), zone bits below,
                                     PG_reserved (bit 12), PG_head (bit 16)
    1           8                    lru.next / buddy_list.next  (a pfn; >= nr_pfns is a list head)
    2           16                   lru.prev / buddy_list.prev
    3           40                   private: buddy order of a free block head
    4           48                   low 32: page_type/_mapcount (6.1 PAGE_TYPE_BASE 0xf0000000,
                                     PG_buddy 0x80 cleared = buddy); high 32: _refcount

A free_area list head (struct zone) is an extra entry after the last pfn, so
list_add/list_del are the kernel's branch-free pointer updates
(include/linux/list.h). Zone and node come from page->flags (page_zone_id()).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from memdesc.designs.base import Design
from memdesc.designs.memmap import Memmap
from memdesc.mm.mmzone import MIGRATE_TYPES, NR_PAGE_ORDERS

W = 5
F_FLAGS, F_NEXT, F_PREV, F_PRIVATE, F_TYPE = range(W)
PG_reserved = 1 << 12
PG_head = 1 << 16
PAGE_TYPE_BASE = 0xF0000000
PG_buddy = 0x00000080
PAGE_TYPE_NONE = 0xFFFFFFFF  # _mapcount == -1
PAGE_TYPE_BUDDY = PAGE_TYPE_NONE & ~PG_buddy
LIST_POISON = 0xDEAD000000000100  # LIST_POISON1-like marker for unlinked pages
NODES_SHIFT = 10  # Debian x86_64 CONFIG_NODES_SHIFT
ZONES_SHIFT = 3


def zoneid_layout(word_bits: int) -> tuple[int, int]:
    """(ZONES_PGSHIFT, NODES_PGSHIFT) for a flags word of ``word_bits`` bits."""
    nodes_shift = NODES_SHIFT if word_bits == 64 else 0
    node_pgshift = word_bits - nodes_shift
    return node_pgshift - ZONES_SHIFT, node_pgshift


class LinkedDesign(Design):
    name = "linked"
    struct_page_bytes = 64
    linked_equivalent_options: dict[str, Any] = {}
    unlinked_words = {F_NEXT: LIST_POISON, F_PREV: LIST_POISON, F_PRIVATE: 0, F_TYPE: PAGE_TYPE_NONE}

    def init_memmap(self) -> None:
        a = self.alloc
        nlists = len(a.zones) * NR_PAGE_ORDERS * MIGRATE_TYPES
        self.nr = a.nr_pfns
        self.mm = Memmap(a.nr_pfns, W, extra=nlists)
        self.m = self.mm.buf
        word_bits = 8 * a.machine.word_size
        self.zones_pgshift, self.nodes_pgshift = zoneid_layout(word_bits)
        self.zoneid_mask = ((1 << (word_bits - self.zones_pgshift)) - 1) << self.zones_pgshift
        self.zoneid_bits = [self._zoneid(z.nid, a.machine.kernel_zone_index(z.ztype)) for z in a.zones]
        flags = self.mm.field(F_FLAGS)
        for z in a.zones:
            if z.spanned:
                flags[z.start_pfn:z.end_pfn] = self.zoneid_bits[z.zid]
        self.mm.field(F_TYPE)[:] = PAGE_TYPE_NONE
        # list heads point to themselves (INIT_LIST_HEAD)
        heads = np.arange(self.nr, self.nr + nlists, dtype=np.uint64)
        self.mm.np[self.nr * W + F_NEXT::W] = heads
        self.mm.np[self.nr * W + F_PREV::W] = heads

    def _zoneid(self, nid: int, kidx: int) -> int:
        return ((nid << ZONES_SHIFT) | kidx) << self.zones_pgshift

    def set_reserved(self, start: int, end: int) -> None:
        f = self.mm.field(F_FLAGS)
        f[start:end] |= np.uint64(PG_reserved)

    def clear_reserved(self, start: int, end: int) -> None:
        f = self.mm.field(F_FLAGS)
        f[start:end] &= ~np.uint64(PG_reserved)

    # -- free lists ------------------------------------------------------------------
    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        m = self.m
        b = pfn * W
        h = self.nr + lid
        if tail:
            prev = m[h * W + F_PREV]
            m[b + F_NEXT] = h
            m[b + F_PREV] = prev
            m[prev * W + F_NEXT] = pfn
            m[h * W + F_PREV] = pfn
        else:
            nxt = m[h * W + F_NEXT]
            m[b + F_NEXT] = nxt
            m[b + F_PREV] = h
            m[nxt * W + F_PREV] = pfn
            m[h * W + F_NEXT] = pfn
        m[b + F_PRIVATE] = order
        m[b + F_TYPE] = PAGE_TYPE_BUDDY

    def del_from_free_list(self, pfn: int, order: int) -> None:
        m = self.m
        b = pfn * W
        nxt = m[b + F_NEXT]
        prv = m[b + F_PREV]
        m[prv * W + F_NEXT] = nxt
        m[nxt * W + F_PREV] = prv
        m[b + F_NEXT] = LIST_POISON
        m[b + F_PREV] = LIST_POISON
        m[b + F_PRIVATE] = 0
        m[b + F_TYPE] = PAGE_TYPE_NONE

    def first_in_list(self, lid: int) -> int:
        h = self.nr + lid
        n = self.m[h * W + F_NEXT]
        return -1 if n == h else n

    def list_pfns(self, lid: int) -> Iterator[int]:
        m = self.m
        h = self.nr + lid
        n = m[h * W + F_NEXT]
        seen = 0
        while n != h:
            yield n
            n = m[n * W + F_NEXT]
            seen += 1
            if seen > self.nr:
                raise RuntimeError(f"free list {lid} is corrupt (cycle)")

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        m = self.m
        b = pfn * W
        return (m[b + F_TYPE] & 0xF0000080 == PAGE_TYPE_BASE and m[b + F_PRIVATE] == order
                and m[b] & self.zoneid_mask == self.zoneid_bits[zid])

    def buddy_order(self, pfn: int) -> int:
        b = pfn * W
        if self.m[b + F_TYPE] & 0xF0000080 == PAGE_TYPE_BASE:
            return self.m[b + F_PRIVATE]
        return -1

    # -- allocated memory --------------------------------------------------------------
    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        m = self.m
        b = pfn * W
        m[b + F_TYPE] = (1 << 32) | PAGE_TYPE_NONE  # set_page_refcounted()
        if order:
            m[b] |= PG_head

    def free_prepare(self, pfn: int, order: int) -> None:
        m = self.m
        b = pfn * W
        m[b + F_TYPE] = PAGE_TYPE_NONE
        m[b] &= ~PG_head

    # -- accounting ------------------------------------------------------------------
    def numpy_state(self) -> dict[str, Any]:
        t = self.mm.field(F_TYPE)
        return {
            "buddy_mask": (t & np.uint64(0xF0000080)) == np.uint64(PAGE_TYPE_BASE),
            "buddy_order": self.mm.field(F_PRIVATE),
            "reserved_mask": (self.mm.field(F_FLAGS) & np.uint64(PG_reserved)) != 0,
        }

    def metadata(self) -> dict[str, Any]:
        return {"memmap_bytes": self.memmap_bytes(), "memmap_bytes_stored": self.mm.nbytes_stored}

    def check(self, report: Any, state: Any) -> None:
        # CONFIG_DEBUG_LIST: every listed head's neighbours point back at it
        if len(state.H):
            H = state.H
            buf = self.mm.np
            nxt = buf[H * W + F_NEXT].astype(np.int64)
            prv = buf[H * W + F_PREV].astype(np.int64)
            bad = np.nonzero((buf[prv * W + F_NEXT] != H.astype(np.uint64))
                             | (buf[nxt * W + F_PREV] != H.astype(np.uint64)))[0]
            for i in bad[:5]:
                report.add("list_links", f"free head {H[i]:#x}: prev {prv[i]:#x} / next {nxt[i]:#x} do not point back")
            report.more("list_links", len(bad) - 5)
        # page_zone_id() of every present pfn matches the zone that spans it
        flags = self.mm.field(F_FLAGS)
        for z in self.alloc.zones:
            if not z.spanned:
                continue
            zb = flags[z.start_pfn:z.end_pfn] & np.uint64(self.zoneid_mask)
            bad = np.nonzero(zb != np.uint64(self.zoneid_bits[z.zid]))[0]
            if len(bad):
                report.add("zone_bits", f"pfn {z.start_pfn + int(bad[0]):#x}: flags zone/node bits do not "
                           f"match zone {z.name} of node {z.nid} ({len(bad)} pfns)")
