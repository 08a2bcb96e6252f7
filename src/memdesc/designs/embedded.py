"""`embedded`: 16-byte struct page, buddy list links squeezed into two tagged words.

Wilcox 2024, kernelnewbies MatthewWilcox/BuddyAllocator "Option 1" (kernel-facts §2.3):
``struct buddy { unsigned long next; unsigned long prev; }`` overlaid on the memdesc.

Bit layout (W = word size in bits, 64 on x86_64, 32 on i386)::

    free block head          word 0 = next << 4 | 1 (MEMDESC_BUDDY)
                             word 1 = prev << 4 | order (0..15)
    free block tail page     word 0 = 0, word 1 = 0 (never read: only heads are tested)
    allocated page (every    word 0 = memdesc: descriptor pointer | type tag (2 File,
    page of the block)                 3 Anon, 5 Slab, 8 ptdesc), or the inline Misc word
                                       (type 0, subtype bits 4-10, order bits 12-17)
                             word 1 = 0 (the descriptor's private data lives in the descriptor)
    pcp page                 word 0 = word 1 = 0

``next``/``prev`` are struct page pointers relative to the vmemmap base in units of
16 bytes, i.e. the pfn (address = vmemmap + pfn * 16, so ``pfn << 4`` is the byte
offset and the low 4 bits are free for the tags).  A free_area list head lives in
struct zone; as in linked.py the model appends one sentinel entry per list after
the last pfn, so list_add/list_del are the kernel's branch-free pointer updates
(include/linux/list.h).  Zone and node are not stored: page_is_buddy() re-derives
them from the pfn (page_zone(): section/zone tables, alloc.zid_of_pfn here) --
the "requires changes to page_zone(), page_to_nid()" of Memdescs/Path.
Migratetype is not stored either (the pageblock bitmap has it; §2.3).

32-bit (i386): Wilcox notes Option 1 "does not work on 32-bit" -- struct page would be
two 4-byte words = 8 bytes, so struct page pointers are only 8-byte aligned and have
3 free low bits, one short of the 4-bit type tag.  The model runs anyway with a
documented trick: links are *indices* (pfns) shifted left by 4, not pointers, which
costs a shift+add per list step (pfn_to_page arithmetic).  It fits because i386 has at
most 2^24 pfns (64 GiB PAE) < 2^28.  ``strict32=True`` refuses 32-bit with DesignError
instead (Wilcox's position).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from memdesc.designs.base import Design, DesignError
from memdesc.designs.descriptors import MEMDESC_BUDDY, TAG_MASK, DescriptorMixin, Descriptors
from memdesc.designs.memmap import Memmap
from memdesc.mm.mmzone import MIGRATE_TYPES, NR_PAGE_ORDERS

W = 2
F_NEXT, F_PREV = 0, 1
SHIFT = 4
LINK_POISON = 0xDEAD0  # list poison (like LIST_POISON1), tag bits 0


class EmbeddedDesign(DescriptorMixin, Design):
    """Options: ``offbook``, ``derive_kinds``, ``desc_fail_rate``, ``seed``, ``desc_sizes``,
    ``strict32`` (see module docstring and memdesc.designs.descriptors)."""

    name = "embedded"
    struct_page_bytes = 16
    unlinked_words = {F_NEXT: 0, F_PREV: 0}
    uses_descriptors = True
    fault_options = frozenset({"desc_fail_rate"})
    linked_equivalent_options = {"offbook": True}

    def __init__(self, alloc: Any, **options: Any) -> None:
        super().__init__(alloc, **options)
        unknown = set(options) - {"offbook", "derive_kinds", "desc_fail_rate", "seed", "desc_sizes", "strict32"}
        if unknown:
            raise DesignError(f"embedded: unknown design options {sorted(unknown)}")
        ws = alloc.machine.word_size
        if ws == 4 and options.get("strict32", False):
            raise DesignError("embedded (Option 1) needs 16-byte-aligned struct page pointers to free 4 tag bits; "
                              "on 32-bit struct page is 2 x 4 = 8 bytes, so pointers have only 3 free low bits "
                              "(run without strict32 to use pfn indices instead of pointers)")
        self.page_bytes = 2 * ws
        # offbook (test mode): reserve linked's 64-byte memmap at boot so zones, watermarks
        # and hence the pfn sequence equal linked's; memmap_bytes() still reports page_bytes.
        self.struct_page_bytes = 64 if options.get("offbook", False) else self.page_bytes
        self.W = W
        self.desc = Descriptors(alloc, sizes=options.get("desc_sizes"), offbook=options.get("offbook", False),
                                derive_kinds=options.get("derive_kinds", True),
                                desc_fail_rate=options.get("desc_fail_rate", 0.0), seed=options.get("seed", 0))

    def init_memmap(self) -> None:
        a = self.alloc
        nlists = len(a.zones) * NR_PAGE_ORDERS * MIGRATE_TYPES
        self.nr = a.nr_pfns
        if (self.nr + nlists) << SHIFT >= 1 << (8 * a.machine.word_size):
            raise DesignError("embedded: pfn indices do not fit the word")
        self.mm = Memmap(a.nr_pfns, W, extra=nlists)
        self.m = self.mm.buf
        self.zid = a.zid_of_pfn
        heads = np.arange(self.nr, self.nr + nlists, dtype=np.uint64) << np.uint64(SHIFT)
        self.mm.np[self.nr * W + F_NEXT::W] = heads | np.uint64(MEMDESC_BUDDY)
        self.mm.np[self.nr * W + F_PREV::W] = heads

    def set_reserved(self, start: int, end: int) -> None:
        """PageReserved lives in the (Misc) memdesc; reserved pages are never touched
        by the allocator, so the model leaves them zero (Misc subtype 0)."""

    def clear_reserved(self, start: int, end: int) -> None:
        """Reserved and free-but-unlisted pages are both the zero word: nothing to do."""

    # -- free lists: list_add / list_add_tail / list_del ---------------------------------
    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        m = self.m
        b = pfn << 1
        h = (self.nr + lid) << 1
        if tail:
            prev = m[h + 1] >> SHIFT
            m[b] = (h << 3) | MEMDESC_BUDDY  # next = head (h = idx*2, idx<<4 = h<<3)
            m[b + 1] = (prev << SHIFT) | order
            pb = prev << 1
            m[pb] = (pfn << SHIFT) | MEMDESC_BUDDY
            m[h + 1] = (m[h + 1] & TAG_MASK) | (pfn << SHIFT)
        else:
            nxt = m[h] >> SHIFT
            m[b] = (nxt << SHIFT) | MEMDESC_BUDDY
            m[b + 1] = (h << 3) | order
            nb = (nxt << 1) + 1
            m[nb] = (m[nb] & TAG_MASK) | (pfn << SHIFT)
            m[h] = (pfn << SHIFT) | MEMDESC_BUDDY

    def del_from_free_list(self, pfn: int, order: int) -> None:
        m = self.m
        b = pfn << 1
        nxt = m[b] >> SHIFT
        prv = m[b + 1] >> SHIFT
        m[prv << 1] = (nxt << SHIFT) | MEMDESC_BUDDY
        nb = (nxt << 1) + 1
        m[nb] = (m[nb] & TAG_MASK) | (prv << SHIFT)
        m[b] = 0
        m[b + 1] = 0

    def first_in_list(self, lid: int) -> int:
        h = self.nr + lid
        n = self.m[h << 1] >> SHIFT
        return -1 if n == h else n

    def list_pfns(self, lid: int) -> Iterator[int]:
        m = self.m
        h = self.nr + lid
        n = m[h << 1] >> SHIFT
        seen = 0
        while n != h:
            yield n
            n = m[n << 1] >> SHIFT
            seen += 1
            if seen > self.nr:
                raise RuntimeError(f"free list {lid} is corrupt (cycle)")

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        b = pfn << 1
        m = self.m
        return (m[b] & TAG_MASK == MEMDESC_BUDDY and m[b + 1] & TAG_MASK == order
                and self.zid[pfn] == zid)

    def buddy_order(self, pfn: int) -> int:
        b = pfn << 1
        if self.m[b] & TAG_MASK == MEMDESC_BUDDY:
            return self.m[b + 1] & TAG_MASK
        return -1

    # -- accounting and checks -----------------------------------------------------------
    def numpy_state(self) -> dict[str, Any]:
        w0 = self.mm.field(F_NEXT)
        return {
            "buddy_mask": (w0 & np.uint64(TAG_MASK)) == np.uint64(MEMDESC_BUDDY),
            "buddy_order": self.mm.field(F_PREV) & np.uint64(TAG_MASK),
        }

    def memmap_bytes(self) -> int:
        return self.alloc.machine.present_pages * self.page_bytes

    def metadata(self) -> dict[str, Any]:
        md = self.desc.metadata()
        md["memmap_bytes"] = self.memmap_bytes()
        md["memmap_bytes_stored"] = self.nr * W * self.alloc.machine.word_size
        return md

    def check(self, report: Any, state: Any) -> None:
        self.desc.check(report, state, self.mm.field(F_NEXT))
        # free blocks: the head's prev/next are consistent (list integrity), tails are zero
        w0 = self.mm.field(F_NEXT)
        w1 = self.mm.field(F_PREV)
        heads = np.nonzero((w0 & np.uint64(TAG_MASK)) == np.uint64(MEMDESC_BUDDY))[0]
        if len(heads):
            nxt = (w0[heads] >> np.uint64(SHIFT)).astype(np.int64)
            back = self.mm.np[nxt * W + F_PREV] >> np.uint64(SHIFT)
            bad = np.nonzero(back != heads.astype(np.uint64))[0]
            for i in bad[:5]:
                report.add("list_links", f"free head {heads[i]:#x}: next {nxt[i]:#x} does not point back")
            orders = (w1[heads] & np.uint64(TAG_MASK)).astype(np.int64)
            sizes = np.left_shift(1, orders)
            total = int(sizes.sum())
            pages = (np.repeat(heads, sizes) + np.arange(total)
                     - np.repeat(np.cumsum(sizes) - sizes, sizes))
            tails = pages[(pages < self.nr) & ~np.isin(pages, heads)]
            bad = np.nonzero((w0[tails] != 0) | (w1[tails] != 0))[0]
            for i in bad[:5]:
                report.add("embedded_tail", f"free tail page {tails[i]:#x} holds nonzero words")
