"""Memory descriptors: the slab model and the memdesc word (shared by every design but `linked`).

Mirrors mm/slub.c (kmem_cache_alloc / kmem_cache_free / allocate_slab /
discard_slab) at the level that costs memory, and the memdesc plan of
kernelnewbies.org/MatthewWilcox/Memdescs (kernel-facts.md §2).

Public API (stable; other designs, e.g. ``radix-deque``, build on it)
------------------------------------------------------------------------
Constants
    ``MEMDESC_MISC, MEMDESC_BUDDY, MEMDESC_FILE, MEMDESC_ANON, MEMDESC_SLAB,
    MEMDESC_PTDESC`` -- 4-bit type tags (latest kernelnewbies table: 0 Misc,
    1 Buddy, 2 File, 3 Anon, 5 Slab, 8 ptdesc).  ``TAG_MASK = 0xF``.
    ``KIND_TAG[kind]`` -- tag of an allocation kind; ``DESC_KINDS`` -- kinds that get a
    separately allocated descriptor; ``DEFAULT_DESC_SIZES`` -- their sizes in bytes.
    ``MISC_SUBTYPE[kind]`` -- Misc (type 0) subtype of descriptor-less kinds.
``kind_from_gfp(gfp, order) -> str``
    Heuristic kind of an allocation whose caller gave none (traces).
``misc_word(kind, order) -> int``
    The inline type-0 memdesc word: subtype in bits 4-10, order in bits 12-17.
``KmemCache(alloc, name, object_size, align=16, *, offbook=False, order=None, rng=None, fail_rate=0.0)``
    ``.alloc(gfp) -> ptr`` (0 = NULL), ``.free(ptr)``, ``.slab_of(ptr) -> (slab_pfn, index)``,
    ``.ptr_of(slab_pfn, index)``, ``.slab_pfns()`` (real slab head pfns), ``.stats()`` and the
    counters ``objects_live/peak, slab_pages_live/peak, size, order, objects_per_slab``.
    Object pointers are fake kernel virtual addresses ``PAGE_OFFSET + pfn*4096 + idx*size``,
    16-byte aligned, so a memdesc word can hold ``ptr | tag``.
``Descriptors(alloc, *, sizes=None, offbook=False, derive_kinds=True, desc_fail_rate=0.0, seed=0)``
    The descriptor life cycle for a design: ``kind_of(kind, gfp, order)``, ``prepare(order, kind,
    gfp) -> token`` (the memdesc word to write, None = failure), ``abort(token)``,
    ``commit(pfn, token)``, ``release(word)``, ``new_cache(...)`` (extra caches, e.g. struct buddy,
    share accounting and fault injection), ``metadata()``, ``check(report, words)``.
``DescriptorMixin``
    Design.prep_alloc/abort_alloc/post_alloc/free_prepare on top of ``self.desc``
    (a Descriptors) for a design whose memdesc word is word 0 of each struct page in
    ``self.mm`` (a Memmap).

Descriptor sizes (``sizes=`` overrides, bytes, rounded up to 16):
    file/anon 80  -- proposed separate struct folio, kernel-facts §2.7 field count;
    slab 64       -- [U] assumption: today's struct slab overlay of struct page;
    pgtable 64    -- [U] assumption: today's struct ptdesc overlay;
    misc/vmalloc  -- none: type 0 Misc keeps subtype + order inline (kernelnewbies type 0);
    meta:*        -- none: the allocator's own metadata (slab pages of descriptor caches,
                     radix nodes) is type 0 Misc, model-private subtype 9 "allocator metadata".

Kinds: ``kind`` comes from the API.  The core passes ``'misc'`` when the caller gave
none; with ``derive_kinds=True`` (default) ``'misc'`` means "derive from gfp" through
kind_from_gfp().  Note synthetic workloads also say ``'misc'`` explicitly (kernel stacks,
kmalloc_large): with derive_kinds they are re-derived too (GFP_KERNEL order 2 -> 'slab').

Recursion: a descriptor may need a new slab page; that page is allocated with kind
``'meta:slab:<cache>'``, which needs no descriptor, so alloc_pages nests at most 2 deep
(plus what a design's own metadata needs; see buddy_desc.py).

Slab pages are requested with GFP_KERNEL (GFP_NOWAIT|__GFP_NOWARN when the requesting
context cannot reclaim), never __GFP_HIGHMEM/__GFP_MOVABLE, so they are lowmem and
unmovable: never HIGHMEM, ZONE_MOVABLE or a MIGRATE_CMA pageblock.  Empty slabs go back
to the page allocator at once (SLUB keeps min_partial empty slabs; the model keeps none).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np

from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_META, AS_ORDER_MASK, AS_PCP
from memdesc.mm.mmzone import MIGRATE_CMA, PAGE_SHIFT, PAGE_SIZE, ZoneType

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

# -- memdesc type tags (kernel-facts §2.2, latest table) ------------------------------
TAG_MASK = 0xF
MEMDESC_MISC = 0
MEMDESC_BUDDY = 1
MEMDESC_FILE = 2
MEMDESC_ANON = 3
MEMDESC_KSM = 4
MEMDESC_SLAB = 5
MEMDESC_PTDESC = 8

#: kinds that get a separately allocated descriptor, and their memdesc tag
KIND_TAG: dict[str, int] = {"file": MEMDESC_FILE, "anon": MEMDESC_ANON, "slab": MEMDESC_SLAB,
                            "pgtable": MEMDESC_PTDESC}
DESC_KINDS = tuple(KIND_TAG)
#: descriptor sizes in bytes (see module docstring for sources)
DEFAULT_DESC_SIZES: dict[str, int] = {"file": 80, "anon": 80, "slab": 64, "pgtable": 64}
#: slab cache names of the descriptor kinds (kernelnewbies Memdescs/Path: one cache per kind)
DESC_CACHE_NAME = {"file": "folio", "anon": "anon_folio", "slab": "slab", "pgtable": "ptdesc"}

# Type 0 (Misc) subtypes (kernelnewbies type-0 layout); 9 is model-private.
MISC_UNKNOWN = 2  # bare alloc_pages() users (Wilcox, lkml 2605.3/03483)
MISC_VMALLOC = 3
MISC_META = 9  # allocator metadata (unassigned range 9-127)
MISC_SUBTYPE_SHIFT = 4
MISC_ORDER_SHIFT = 12


def misc_word(kind: str, order: int) -> int:
    """Inline type-0 memdesc word: subtype bits 4-10, order bits 12-17 (bit 11
    "may be mapped" clear; zone/node/section bits are re-derived from the pfn)."""
    if kind.startswith("meta"):
        sub = MISC_META
    elif kind == "vmalloc":
        sub = MISC_VMALLOC
    else:
        sub = MISC_UNKNOWN
    return (sub << MISC_SUBTYPE_SHIFT) | (order << MISC_ORDER_SHIFT) | MEMDESC_MISC


_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
_MOVABLE = getattr(G, "__GFP_MOVABLE")
_RECLAIMABLE = getattr(G, "__GFP_RECLAIMABLE")
_WRITE = getattr(G, "__GFP_WRITE")
_ZERO = getattr(G, "__GFP_ZERO")
_ACCOUNT = getattr(G, "__GFP_ACCOUNT")
_DIRECT_RECLAIM = getattr(G, "__GFP_DIRECT_RECLAIM")
_HIGH = getattr(G, "__GFP_HIGH")
_MEMALLOC = getattr(G, "__GFP_MEMALLOC")
_NOMEMALLOC = getattr(G, "__GFP_NOMEMALLOC")
_NOWARN = getattr(G, "__GFP_NOWARN")
_COMP = getattr(G, "__GFP_COMP")
_ATOMIC = getattr(G, "__GFP_ATOMIC")
_IO_FS = getattr(G, "__GFP_IO") | getattr(G, "__GFP_FS")
_ZONE_BITS = G.GFP_ZONEMASK


def kind_from_gfp(gfp: int, order: int) -> str:
    """Guess an allocation's kind from its gfp mask and order (for traces).

    * __GFP_MOVABLE: user memory.  'file' when __GFP_WRITE is set (only the page
      cache write path, grab_cache_page_write_begin(), sets it); 'anon' otherwise
      (anon faults use GFP_HIGHUSER_MOVABLE, often with __GFP_ZERO).  Page-cache
      reads also lack __GFP_WRITE, so file pages are under-counted; both cost the
      same 80-byte folio, so the byte totals do not depend on the guess.
    * __GFP_RECLAIMABLE: 'slab' (reclaimable slab caches: dentries, inodes).
    * __GFP_ACCOUNT|__GFP_ZERO at order 0: 'pgtable' (GFP_PGTABLE_USER).
    * GFP_KERNEL (reclaim + IO + FS, no zone modifier) at order 0..3: 'slab'
      (allocate_slab() orders; kmalloc_large is also GFP_KERNEL but rarer).
    * anything else: 'misc' (no descriptor).
    """
    if gfp & _MOVABLE:
        return "file" if gfp & _WRITE else "anon"
    if gfp & _RECLAIMABLE:
        return "slab"
    if order == 0 and gfp & _ACCOUNT and gfp & _ZERO:
        return "pgtable"
    if order <= 3 and not gfp & _ZONE_BITS and gfp & _DIRECT_RECLAIM and gfp & _IO_FS == _IO_FS:
        return "slab"
    return "misc"


# -- fake kernel virtual addresses ----------------------------------------------------
#: direct map base: x86_64 __PAGE_OFFSET (4-level), i386 3G/1G split
PAGE_OFFSET = {8: 0xFFFF888000000000, 4: 0xC0000000}
#: memory not taken from the modelled allocator (offbook slabs, boot pools): the
#: vmalloc area, which can never alias a direct-map address of a real pfn.
OFFBOOK_BASE = {8: 0xFFFFC90000000000, 4: 0xF8000000}
OFFBOOK_SPAN = {8: 1 << 40, 4: 0x03FF0000}


def slab_gfp(gfp: int, kernel: str) -> int:
    """The gfp of a slab page for an object requested with ``gfp`` (allocate_slab():
    GFP_RECLAIM_MASK bits of the caller; GFP_NOWAIT|__GFP_NOWARN in atomic context)."""
    out = G.GFP_KERNEL if gfp & _DIRECT_RECLAIM else G.GFP_NOWAIT | _NOWARN
    out |= gfp & (_HIGH | _MEMALLOC | _NOMEMALLOC | _NOWARN)
    if kernel == "6.1":
        out |= gfp & _ATOMIC
    return out


def calculate_order(size: int) -> int:
    """Slab order, roughly mm/slub.c calculate_order(): order 0 for objects up to
    512 B, else the smallest order wasting at most 1/16 of the slab, capped at
    PAGE_ALLOC_COSTLY_ORDER."""
    if size <= 512:
        return 0
    for order in range(4):
        slab = PAGE_SIZE << order
        if slab >= size and slab % size <= slab // 16:
            return order
    return 3


class OffbookArea:
    """Fake page numbers for slabs not taken from the modelled allocator (offbook mode);
    shared by the caches of one Descriptors so their pointers never alias."""

    def __init__(self, word_size: int) -> None:
        self.limit = OFFBOOK_SPAN[word_size] >> PAGE_SHIFT
        self.next = 0
        self.free: dict[int, list[int]] = {}

    def get(self, order: int) -> int:
        lst = self.free.get(order)
        if lst:
            return lst.pop()
        n = 1 << order
        page = -(-self.next // n) * n
        self.next = page + n
        if self.next > self.limit:
            raise RuntimeError("offbook area exhausted")
        return page

    def put(self, page: int, order: int) -> None:
        self.free.setdefault(order, []).append(page)


class KmemCache:
    """struct kmem_cache: objects of ``size`` bytes in slabs of 2^order pages.

    A slab is identified by its head pfn (or, off book, a fake page number);
    object ``idx`` of slab ``p`` has the pointer ``base + p*4096 + idx*size``.
    Slabs with free objects sit on ``partial`` (most recently freed-to last, taken
    first like the per-cpu slab); full slabs are on no list (SLUB keeps none)."""

    def __init__(self, alloc: PageAllocator, name: str, object_size: int, align: int = 16, *,
                 offbook: bool = False, order: int | None = None, rng: random.Random | None = None,
                 fail_rate: float = 0.0, on_pages: Any = None, area: OffbookArea | None = None) -> None:
        if align < 16 or align & (align - 1):
            raise ValueError("align must be a power of two >= 16 (memdesc tags need 4 low bits)")
        self.page_alloc = alloc
        self.name = name
        self.object_size = object_size
        self.size = -(-object_size // align) * align
        self.order = calculate_order(self.size) if order is None else order
        self.objects_per_slab = (PAGE_SIZE << self.order) // self.size
        if self.objects_per_slab < 1:
            raise ValueError(f"cache {name}: object of {self.size} B does not fit an order-{self.order} slab")
        self.offbook = offbook
        ws = alloc.machine.word_size
        self.base = OFFBOOK_BASE[ws] if offbook else PAGE_OFFSET[ws]
        self.kind = f"meta:slab:{name}"
        self.rng = rng
        self.fail_rate = fail_rate
        self.on_pages = on_pages  # callback(delta_pages) for shared accounting
        self.free_idx: dict[int, list[int]] = {}  # slab -> stack of free object indices
        self.partial: dict[int, None] = {}
        self.area = area if area is not None else OffbookArea(ws)
        self.objects_live = 0
        self.objects_peak = 0
        self.slab_pages_live = 0
        self.slab_pages_peak = 0
        self.nr_slabs = 0
        self.alloc_failures = 0
        self.injected_failures = 0
        self.slab_allocs = 0
        self.slab_frees = 0

    # -- pointers ------------------------------------------------------------------------
    def ptr_of(self, slab: int, idx: int) -> int:
        return self.base + (slab << PAGE_SHIFT) + idx * self.size

    def slab_of(self, ptr: int) -> tuple[int, int]:
        """(slab head pfn, object index) of an object pointer (virt_to_slab())."""
        off = ptr - self.base
        slab = (off >> PAGE_SHIFT) & ~((1 << self.order) - 1)
        return slab, (off - (slab << PAGE_SHIFT)) // self.size

    # -- slab pages --------------------------------------------------------------------------
    def _new_slab(self, gfp: int) -> int:
        """allocate_slab(): a slab from the page allocator (kind meta:slab:<name>), or -1."""
        npages = 1 << self.order
        if self.offbook:
            slab = self.area.get(self.order)
        else:
            g = slab_gfp(gfp, self.page_alloc.kernel)
            if self.order:
                g |= _COMP
            slab = self.page_alloc.alloc_pages(g, self.order, kind=self.kind)
            if slab < 0:
                return -1
        self.slab_allocs += 1
        self.free_idx[slab] = list(range(self.objects_per_slab - 1, -1, -1))
        self.partial[slab] = None
        self.nr_slabs += 1
        self.slab_pages_live += npages
        if self.slab_pages_live > self.slab_pages_peak:
            self.slab_pages_peak = self.slab_pages_live
        if self.on_pages is not None:
            self.on_pages(npages)
        return slab

    def _discard_slab(self, slab: int) -> None:
        """discard_slab(): an empty slab goes back to the page allocator."""
        del self.free_idx[slab]
        self.partial.pop(slab, None)
        npages = 1 << self.order
        self.nr_slabs -= 1
        self.slab_pages_live -= npages
        self.slab_frees += 1
        if self.on_pages is not None:
            self.on_pages(-npages)
        if self.offbook:
            self.area.put(slab, self.order)
        else:
            self.page_alloc.free_pages(slab, self.order)

    # -- objects ---------------------------------------------------------------------------
    def alloc(self, gfp: int = G.GFP_KERNEL) -> int:
        """kmem_cache_alloc(): an object pointer, or 0 (NULL) on failure."""
        if self.fail_rate and self.rng is not None and self.rng.random() < self.fail_rate:
            self.injected_failures += 1
            self.alloc_failures += 1
            return 0
        if self.partial:
            slab = next(reversed(self.partial))
        else:
            slab = self._new_slab(gfp)
            if slab < 0:
                self.alloc_failures += 1
                return 0
        stack = self.free_idx[slab]
        idx = stack.pop()
        if not stack:
            del self.partial[slab]  # now full
        self.objects_live += 1
        if self.objects_live > self.objects_peak:
            self.objects_peak = self.objects_live
        return self.ptr_of(slab, idx)

    def free(self, ptr: int) -> None:
        """kmem_cache_free(): never allocates; may return an empty slab's pages."""
        slab, idx = self.slab_of(ptr)
        stack = self.free_idx.get(slab)
        if stack is None or idx in stack[-1:]:
            raise RuntimeError(f"cache {self.name}: bad or double free of {ptr:#x}")
        stack.append(idx)
        self.objects_live -= 1
        if len(stack) == self.objects_per_slab:
            self._discard_slab(slab)
        elif len(stack) == 1:
            self.partial[slab] = None  # full -> partial

    # -- accounting ------------------------------------------------------------------------
    def slab_pfns(self) -> list[int]:
        """Head pfns of the slabs taken from the page allocator (none off book)."""
        return [] if self.offbook else list(self.free_idx)

    @property
    def nr_partial(self) -> int:
        return len(self.partial)

    @property
    def nr_full(self) -> int:
        return self.nr_slabs - len(self.partial)

    @property
    def bytes_live(self) -> int:
        return self.objects_live * self.size

    @property
    def bytes_peak(self) -> int:
        return self.objects_peak * self.size

    @property
    def waste_bytes(self) -> int:
        """Slab bytes not holding live object data (free slots, alignment, slab tail)."""
        return (self.slab_pages_live << PAGE_SHIFT) - self.objects_live * self.object_size

    def stats(self) -> dict[str, int]:
        return {"object_size": self.object_size, "size": self.size, "order": self.order,
                "objects_per_slab": self.objects_per_slab, "objects_live": self.objects_live,
                "objects_peak": self.objects_peak, "bytes_live": self.bytes_live, "bytes_peak": self.bytes_peak,
                "slabs": self.nr_slabs, "partial": self.nr_partial, "full": self.nr_full,
                "slab_pages_live": self.slab_pages_live, "slab_pages_peak": self.slab_pages_peak,
                "waste_bytes": self.waste_bytes, "alloc_failures": self.alloc_failures}


class Descriptors:
    """Descriptor caches of one allocator: life cycle, accounting, fault injection, checks.

    ``prepare`` allocates the descriptor (FolioAlloc step 1, kmem_cache_alloc) and
    returns the memdesc word ``ptr | tag`` (or the inline Misc word for kinds without a
    descriptor); ``commit`` records which block it describes (step 2 done);
    ``release`` frees it again (free_pages_prepare -> folio freed to slab)."""

    def __init__(self, alloc: PageAllocator, *, sizes: dict[str, int] | None = None, offbook: bool = False,
                 derive_kinds: bool = True, desc_fail_rate: float = 0.0, seed: int = 0) -> None:
        self.alloc = alloc
        self.offbook = offbook
        self.derive_kinds = derive_kinds
        self.rng = random.Random(seed)
        self.fail_rate = desc_fail_rate
        self.sizes = {**DEFAULT_DESC_SIZES, **(sizes or {})}
        self.slab_pages_live = 0
        self.slab_pages_peak = 0
        self.caches: list[KmemCache] = []
        self.area = OffbookArea(alloc.machine.word_size)
        self.by_tag: dict[int, KmemCache] = {}
        self.by_kind: dict[str, KmemCache] = {}
        self.cache_kind: dict[str, str] = {}
        for kind, tag in KIND_TAG.items():
            c = self.new_cache(DESC_CACHE_NAME[kind], self.sizes[kind])
            self.by_tag[tag] = c
            self.by_kind[kind] = c
        self.owner: dict[int, int] = {}  # descriptor ptr -> head pfn of the block it describes
        self.failures = 0
        self.late_allocs = 0  # post_alloc without prep_alloc (mark_allocated)
        self.max_depth = 0  # deepest alloc_pages nesting seen while allocating a slab page
        self._derive_cache: dict[tuple[int, int], str] = {}

    def new_cache(self, name: str, object_size: int, align: int = 16, order: int | None = None) -> KmemCache:
        """A cache sharing this allocator's accounting, offbook mode and fault injection."""
        c = KmemCache(self.alloc, name, object_size, align, order=order, offbook=self.offbook, rng=self.rng,
                      fail_rate=self.fail_rate, on_pages=self._on_pages, area=self.area)
        self.caches.append(c)
        return c

    def _on_pages(self, delta: int) -> None:
        self.slab_pages_live += delta
        if self.slab_pages_live > self.slab_pages_peak:
            self.slab_pages_peak = self.slab_pages_live
        d = self.alloc.alloc_depth + (delta > 0 and not self.offbook)
        if d > self.max_depth:
            self.max_depth = d

    # -- life cycle ----------------------------------------------------------------------------
    def kind_of(self, kind: str, gfp: int, order: int) -> str:
        """The effective kind: 'misc' is derived from gfp when derive_kinds is set."""
        if kind == "misc" and self.derive_kinds:
            key = (gfp, order)
            k = self._derive_cache.get(key)
            if k is None:
                k = self._derive_cache[key] = kind_from_gfp(gfp, order)
            return k
        return kind

    def prepare(self, order: int, kind: str, gfp: int) -> int | None:
        """Descriptor first: the memdesc word for the block, or None (no memory)."""
        k = self.kind_of(kind, gfp, order)
        cache = self.by_kind.get(k)
        if cache is None:
            return misc_word(k, order)
        ptr = cache.alloc(gfp)
        if not ptr:
            self.failures += 1
            return None
        return ptr | KIND_TAG[k]

    def abort(self, word: int) -> None:
        """The pages could not be had: the descriptor goes back to its cache."""
        c = self.by_tag.get(word & TAG_MASK)
        if c is not None:
            c.free(word & ~TAG_MASK)

    def commit(self, pfn: int, word: int) -> None:
        if word & TAG_MASK in self.by_tag:
            self.owner[word & ~TAG_MASK] = pfn

    def release(self, word: int) -> None:
        """free_pages_prepare(): the block's descriptor is freed (never allocates)."""
        c = self.by_tag.get(word & TAG_MASK)
        if c is not None:
            ptr = word & ~TAG_MASK
            del self.owner[ptr]
            c.free(ptr)

    # -- accounting ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        live: dict[str, int] = {}
        peak: dict[str, int] = {}
        for kind, c in self.by_kind.items():
            live[kind] = c.bytes_live
            peak[kind] = c.bytes_peak
        for c in self.caches:
            if c not in self.by_kind.values():
                live[c.name] = c.bytes_live
                peak[c.name] = c.bytes_peak
        return {
            "dynamic_bytes": self.slab_pages_live << PAGE_SHIFT,
            "dynamic_bytes_peak": self.slab_pages_peak << PAGE_SHIFT,
            "descriptor_bytes_live": live,
            "descriptor_bytes_peak": peak,
            "slab_pages_live": self.slab_pages_live,
            "slab_pages_peak": self.slab_pages_peak,
            "slab_waste_bytes": sum(c.waste_bytes for c in self.caches),
            "descriptor_alloc_failures": self.failures,
            "max_recursion": max(self.alloc.counters.max_recursion, self.max_depth),
            "descriptor_late_allocs": self.late_allocs,
            "offbook": self.offbook,
            "caches": {c.name: c.stats() for c in self.caches},
        }

    # -- checks ----------------------------------------------------------------------------------
    def check_slab_pages(self, report: Any, state: Any) -> None:
        """Slab pages are AS_META blocks of the cache's order, lowmem, unmovable, not CMA."""
        a = self.alloc
        st = state.alloc_state
        total = 0
        for c in self.caches:
            for pfn in c.slab_pfns():
                total += 1 << c.order
                s = int(st[pfn])
                if s & AS_PCP or not s & AS_META or (s & AS_ORDER_MASK) - 1 != c.order:
                    report.add("desc_slab", f"slab {pfn:#x} of cache {c.name}: alloc_state {s:#x} is not an "
                               f"order-{c.order} metadata block")
                z = a.zone_of(pfn)
                if z.ztype in (ZoneType.HIGHMEM, ZoneType.MOVABLE):
                    report.add("desc_slab", f"slab {pfn:#x} of cache {c.name} is in zone {z.name}")
                if a.pageblock_base_migratetype(pfn) == MIGRATE_CMA:
                    report.add("desc_slab", f"slab {pfn:#x} of cache {c.name} is in a CMA pageblock")
        if not self.offbook and total != self.slab_pages_live:
            report.add("desc_slab", f"{self.slab_pages_live} slab pages accounted but caches hold {total}")

    def check(self, report: Any, state: Any, words: np.ndarray) -> None:
        """Memdesc words vs blocks.  ``words[pfn]`` is the word holding the memdesc of an
        allocated page (word 0 of struct page); ``state`` is the checker's CheckState.
        Checks: every page of an allocated block holds the head's word; a descriptor
        word points at a live descriptor owned by exactly that block; every descriptor
        is referenced (counts equal, no leak); slab pages are metadata in lowmem,
        unmovable, non-CMA pageblocks."""
        words = words[:state.n]
        AH, AS, PH, PS = state.AH, state.AS, state.PH, state.PS
        if len(AH):
            total = int(AS.sum())
            starts = np.repeat(AH, AS)
            offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(AS) - AS, AS)
            pages = starts + offs
            bad = np.nonzero(words[pages] != words[starts])[0]
            for i in bad[:5]:
                report.add("memdesc", f"page {pages[i]:#x} of the allocated block at {starts[i]:#x} holds "
                           f"{int(words[pages[i]]):#x}, the head holds {int(words[starts[i]]):#x}")
            report.more("memdesc", len(bad) - 5)
            hw = words[AH]
            tags = hw & np.uint64(TAG_MASK)
            bad = np.nonzero(tags == MEMDESC_BUDDY)[0]
            for i in bad[:5]:
                report.add("memdesc", f"allocated block {AH[i]:#x} has a Buddy memdesc")
            desc = np.isin(tags, np.array(list(self.by_tag), dtype=np.uint64))
            misc = tags == MEMDESC_MISC
            mbad = np.nonzero(misc & (((hw >> np.uint64(MISC_ORDER_SHIFT)) & np.uint64(0x3F)).astype(np.int64)
                                      != np.log2(AS).astype(np.int64)))[0]
            for i in mbad[:5]:
                report.add("memdesc", f"Misc block {AH[i]:#x} stores the wrong order in {int(hw[i]):#x}")
            nd = int(desc.sum())
            if nd != len(self.owner):
                report.add("desc_leak", f"{nd} allocated blocks carry descriptors but {len(self.owner)} "
                           "descriptors are owned")
            for h, w in zip(AH[desc].tolist(), hw[desc].tolist(), strict=True):
                ptr = w & ~TAG_MASK
                if self.owner.get(ptr) != h:
                    report.add("memdesc", f"block {h:#x}: descriptor {ptr:#x} is owned by "
                               f"{self.owner.get(ptr, -1):#x}")
        elif self.owner:
            report.add("desc_leak", f"{len(self.owner)} descriptors owned but no block is allocated")
        if len(PH):
            total = int(PS.sum())
            pages = np.repeat(PH, PS) + np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(PS) - PS, PS)
            bad = np.nonzero(words[pages] != 0)[0]
            for i in bad[:5]:
                report.add("memdesc", f"pcp page {pages[i]:#x} holds memdesc {int(words[pages[i]]):#x}")
        per_tag: dict[int, int] = {}
        for ptr in self.owner:
            for tag, c in self.by_tag.items():
                s, _ = c.slab_of(ptr)
                if s in c.free_idx:
                    per_tag[tag] = per_tag.get(tag, 0) + 1
                    break
        for tag, c in self.by_tag.items():
            if per_tag.get(tag, 0) != c.objects_live:
                report.add("desc_leak", f"cache {c.name}: {c.objects_live} live objects but "
                           f"{per_tag.get(tag, 0)} owned by blocks")
        self.check_slab_pages(report, state)

    def fingerprint_state(self) -> list[Any]:
        """Everything the descriptor model stores (for the bad-call tests)."""
        return [sorted(self.owner.items()), [c.stats() for c in self.caches],
                [(sorted(c.free_idx.items()), list(c.partial)) for c in self.caches]]


class DescriptorMixin:
    """Design.prep_alloc/abort_alloc/post_alloc/free_prepare for descriptor designs.

    Needs ``self.desc`` (Descriptors), ``self.m`` (array('Q') memmap buffer),
    ``self.mm`` (Memmap) and ``self.W`` (words per struct page); the memdesc is word 0."""

    desc: Descriptors
    m: Any
    mm: Any
    W: int

    def prep_alloc(self, order: int, kind: str, gfp: int) -> Any:
        return self.desc.prepare(order, kind, gfp)

    def abort_alloc(self, token: Any) -> None:
        self.desc.abort(token)

    def _write_memdesc(self, pfn: int, order: int, word: int) -> None:
        """Write ``word`` into word 0 of every page of the block (alloc_page_desc())."""
        W = self.W
        if order <= 2:
            m = self.m
            for p in range(pfn * W, (pfn + (1 << order)) * W, W):
                m[p] = word
        else:
            self.mm.np[pfn * W:(pfn + (1 << order)) * W:W] = word

    def _clear_block(self, pfn: int, order: int) -> None:
        """Zero every word of the block's struct pages (free_pages_prepare())."""
        W = self.W
        if order <= 2 and W == 1:
            m = self.m
            for p in range(pfn, pfn + (1 << order)):
                m[p] = 0
        else:
            self.mm.np[pfn * W:(pfn + (1 << order)) * W] = 0

    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        if not token:
            # mark_allocated() (isolate_free_page users) skips prep_alloc: allocate late.
            self.desc.late_allocs += 1
            token = self.desc.prepare(order, kind, 0)
            if token is None:
                token = misc_word("misc", order)
        self._write_memdesc(pfn, order, token)
        self.desc.commit(pfn, token)

    def free_prepare(self, pfn: int, order: int) -> None:
        self.desc.release(self.m[pfn * self.W])
        self._clear_block(pfn, order)

    def fingerprint_state(self) -> list[Any]:
        return [self.mm.buf, *self.desc.fingerprint_state()]


__all__ = [
    "TAG_MASK", "MEMDESC_MISC", "MEMDESC_BUDDY", "MEMDESC_FILE", "MEMDESC_ANON", "MEMDESC_SLAB",
    "MEMDESC_PTDESC", "KIND_TAG", "DESC_KINDS", "DEFAULT_DESC_SIZES", "DESC_CACHE_NAME",
    "MISC_UNKNOWN", "MISC_VMALLOC", "MISC_META", "misc_word", "kind_from_gfp", "slab_gfp",
    "calculate_order", "PAGE_OFFSET", "OFFBOOK_BASE", "OffbookArea", "KmemCache", "Descriptors", "DescriptorMixin",
]
