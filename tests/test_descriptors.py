"""memdesc.designs.descriptors: the slab model, memdesc words, kinds, fault injection, recursion."""

from __future__ import annotations

import random

import pytest

from memdesc.designs.descriptors import (
    DEFAULT_DESC_SIZES,
    MEMDESC_ANON,
    MEMDESC_FILE,
    MEMDESC_MISC,
    MEMDESC_PTDESC,
    MEMDESC_SLAB,
    MISC_META,
    MISC_VMALLOC,
    PAGE_OFFSET,
    TAG_MASK,
    KmemCache,
    calculate_order,
    kind_from_gfp,
    misc_word,
)
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_META, AS_ORDER_MASK, AS_PCP
from memdesc.mm.mmzone import MIGRATE_CMA, ZoneType
from memdesc.mm.page_alloc import PageAllocator

RECL = getattr(G, "__GFP_RECLAIMABLE")
WRITE = getattr(G, "__GFP_WRITE")
ZERO = getattr(G, "__GFP_ZERO")
ACCOUNT = getattr(G, "__GFP_ACCOUNT")


@pytest.fixture(scope="module")
def m1g():
    return parse_machine("x86_64:1G")


def workload(a: PageAllocator, n: int, seed: int = 1, check_every: int = 0) -> list[tuple[int, int]]:
    """Random alloc/free mix with explicit kinds and kind=None (derived from gfp)."""
    rng = random.Random(seed)
    gfps = [G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | RECL, G.GFP_TRANSHUGE,
            G.GFP_ATOMIC_61 if a.k61 else G.GFP_ATOMIC]
    kinds = [None, "anon", "file", "slab", "pgtable", "vmalloc", "misc"]
    live: list[tuple[int, int]] = []
    for i in range(n):
        if live and rng.random() < 0.47:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            a.free_pages(*live.pop())
        else:
            o = rng.choice([0] * 12 + [1, 2, 3, 9])
            pfn = a.alloc_pages(rng.choice(gfps), o, kind=rng.choice(kinds))
            if pfn >= 0:
                live.append((pfn, o))
        if check_every and i % check_every == 0:
            a.check()
    return live


# -- slab model ------------------------------------------------------------------------------
def test_calculate_order_and_objects_per_slab(m1g):
    a = new_allocator(m1g)
    assert calculate_order(80) == 0 and calculate_order(512) == 0
    c = KmemCache(a, "folio", 80)
    assert (c.size, c.order, c.objects_per_slab) == (80, 0, 51)
    c = KmemCache(a, "buddy", 40)
    assert (c.size, c.objects_per_slab) == (48, 85)
    c = KmemCache(a, "big", 1500)
    assert c.order == 3 and c.objects_per_slab == (4096 << 3) // 1504
    c = KmemCache(a, "b3", 40, order=3)
    assert c.objects_per_slab == 682
    with pytest.raises(ValueError):
        KmemCache(a, "bad", 64, align=8)


def test_slab_transitions_pages_and_accounting(m1g):
    a = new_allocator(m1g)
    free0 = sum(z.free_pages for z in a.zones)
    c = KmemCache(a, "t", 80)
    ptrs = [c.alloc() for _ in range(c.objects_per_slab)]
    assert c.nr_slabs == 1 and c.nr_full == 1 and c.nr_partial == 0
    slab = c.slab_pfns()[0]
    st = a.alloc_state[slab]
    assert st & AS_META and not st & AS_PCP and (st & AS_ORDER_MASK) == 1
    assert c.slab_pages_live == 1 and c.objects_live == 51
    assert c.bytes_live == 51 * 80 and c.waste_bytes == 4096 - 51 * 80
    a.check()
    extra = c.alloc()  # a second slab
    assert c.nr_slabs == 2 and c.nr_partial == 1
    c.free(ptrs[0])  # full -> partial
    assert c.nr_partial == 2 and c.nr_full == 0
    for p in ptrs[1:]:
        c.free(p)
    assert c.nr_slabs == 1  # the first slab was empty and went back
    assert a.alloc_state[slab] in (0, AS_PCP | 1)
    c.free(extra)
    assert c.nr_slabs == 0 and c.slab_pages_live == 0 and c.slab_pages_peak == 2
    assert c.objects_live == 0 and c.objects_peak == 52
    a.drain_all_pages()
    assert sum(z.free_pages for z in a.zones) == free0
    a.check()


def test_object_pointers_round_trip(m1g):
    a = new_allocator(m1g)
    for size, order in ((80, None), (48, 3), (1500, None)):
        c = KmemCache(a, f"c{size}", size, order=order)
        ptrs = [c.alloc() for _ in range(c.objects_per_slab + 3)]
        assert len(set(ptrs)) == len(ptrs)
        for p in ptrs:
            assert p & TAG_MASK == 0
            s, i = c.slab_of(p)
            assert s in c.slab_pfns() and 0 <= i < c.objects_per_slab
            assert c.ptr_of(s, i) == p
            assert p - PAGE_OFFSET[8] >> 12 in range(s, s + (1 << c.order))
        for p in ptrs:
            c.free(p)
    a.check()


def test_cache_fault_injection(m1g):
    a = new_allocator(m1g)
    c = KmemCache(a, "f", 64, rng=random.Random(5), fail_rate=0.5)
    got = [c.alloc() for _ in range(200)]
    assert 50 < got.count(0) < 150
    assert c.injected_failures == got.count(0) == c.alloc_failures
    assert c.objects_live == 200 - got.count(0)


def test_offbook_cache_takes_no_pages(m1g):
    a = new_allocator(m1g)
    free0 = sum(z.free_pages for z in a.zones)
    c = KmemCache(a, "o", 80, offbook=True)
    ptrs = [c.alloc() for _ in range(500)]
    assert sum(z.free_pages for z in a.zones) == free0 and c.slab_pfns() == []
    assert c.slab_pages_live == -(-500 // 51)
    for p in ptrs:
        c.free(p)
    assert c.slab_pages_live == 0


# -- words and kinds ------------------------------------------------------------------------------
def test_misc_word_layout():
    w = misc_word("vmalloc", 5)
    assert w & TAG_MASK == MEMDESC_MISC and (w >> 4) & 0x7F == MISC_VMALLOC and (w >> 12) & 0x3F == 5
    assert (misc_word("meta:slab:folio", 3) >> 4) & 0x7F == MISC_META
    assert not misc_word("misc", 0) & (1 << 11)  # not mappable


def test_kind_from_gfp():
    assert kind_from_gfp(G.GFP_HIGHUSER_MOVABLE, 0) == "anon"
    assert kind_from_gfp(G.GFP_HIGHUSER_MOVABLE | ZERO, 0) == "anon"
    assert kind_from_gfp(G.GFP_HIGHUSER_MOVABLE | WRITE, 0) == "file"
    assert kind_from_gfp(G.GFP_TRANSHUGE, 9) == "anon"
    assert kind_from_gfp(G.GFP_KERNEL | RECL, 0) == "slab"
    assert kind_from_gfp(G.GFP_KERNEL_ACCOUNT | ZERO, 0) == "pgtable"
    assert kind_from_gfp(G.GFP_KERNEL, 0) == "slab"
    assert kind_from_gfp(G.GFP_KERNEL, 3) == "slab"
    assert kind_from_gfp(G.GFP_KERNEL, 4) == "misc"
    assert kind_from_gfp(G.GFP_ATOMIC, 0) == "misc"
    assert kind_from_gfp(G.GFP_DMA | G.GFP_KERNEL, 0) == "misc"
    assert DEFAULT_DESC_SIZES == {"file": 80, "anon": 80, "slab": 64, "pgtable": 64}


@pytest.mark.parametrize("design", ["embedded", "buddy-desc"])
def test_memdesc_words_by_kind(m1g, design):
    a = new_allocator(m1g, design=design)
    m = a.design.mm.np
    W = a.design.W
    for kind, tag in (("file", MEMDESC_FILE), ("anon", MEMDESC_ANON), ("slab", MEMDESC_SLAB),
                      ("pgtable", MEMDESC_PTDESC)):
        pfn = a.alloc_pages(G.GFP_KERNEL, 2, kind=kind)
        words = {int(m[(pfn + i) * W]) for i in range(4)}
        assert len(words) == 1
        w = words.pop()
        assert w & TAG_MASK == tag and a.design.desc.owner[w & ~TAG_MASK] == pfn
    pfn = a.alloc_pages(G.GFP_KERNEL, 1, kind="vmalloc")
    assert int(m[pfn * W]) == misc_word("vmalloc", 1)
    # kind None -> 'misc' -> derived from gfp
    pfn = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    assert int(m[pfn * W]) & TAG_MASK == MEMDESC_ANON
    a.check()
    b = new_allocator(m1g, design=design, design_options={"derive_kinds": False})
    pfn = b.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    assert int(b.design.mm.np[pfn * W]) == misc_word("misc", 0)
    b.check()


@pytest.mark.parametrize("design", ["embedded", "buddy-desc"])
def test_descriptor_failure_is_clean(m1g, design):
    a = new_allocator(m1g, design=design, design_options={"desc_fail_rate": 1.0})
    free0 = [z.free_pages for z in a.zones]
    assert a.alloc_pages(G.GFP_KERNEL, 0, kind="anon") == -1
    assert a.last_failure == "descriptor" and a.counters.alloc_fail["descriptor"] >= 1
    assert [z.free_pages for z in a.zones] == free0
    md = a.design.metadata()
    assert md["descriptor_alloc_failures"] + md.get("buddy_desc_failures", 0) >= 1
    a.check()


@pytest.mark.parametrize("design", ["embedded", "buddy-desc"])
def test_recursion_bounded_and_metadata_keys(m1g, design):
    a = new_allocator(m1g, design=design)
    workload(a, 3000)
    md = a.design.metadata()
    for key in ("memmap_bytes", "dynamic_bytes", "descriptor_bytes_live", "descriptor_bytes_peak",
                "slab_pages_live", "slab_pages_peak", "slab_waste_bytes", "descriptor_alloc_failures",
                "max_recursion"):
        assert key in md
    assert md["max_recursion"] == 2 == a.counters.max_recursion
    assert md["slab_pages_live"] > 0 and md["dynamic_bytes"] >= md["slab_pages_live"] * 4096
    assert md["descriptor_bytes_live"]["anon"] > 0 and md["descriptor_bytes_peak"]["anon"] >= \
        md["descriptor_bytes_live"]["anon"]
    assert a.allocs_in_free_path == 0
    a.check()


@pytest.mark.parametrize("spec", ["i386:4G", "x86_64:1G,movablecore=25%", "x86_64:1G,cma=64M"])
@pytest.mark.parametrize("design", ["embedded", "buddy-desc"])
def test_slab_pages_never_highmem_movable_cma(spec, design):
    a = new_allocator(parse_machine(spec), design=design)
    live = []
    for i in range(4000):  # user pages land in HIGHMEM / MOVABLE / CMA; their folios must not
        pfn = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0, kind="anon" if i % 2 else "file")
        if pfn >= 0:
            live.append(pfn)
    user_zones = {a.zone_of(p).ztype for p in live}
    slabs = [p for c in a.design.desc.caches for p in c.slab_pfns()]
    assert slabs
    for p in slabs:
        assert a.zone_of(p).ztype not in (ZoneType.HIGHMEM, ZoneType.MOVABLE)
        assert a.pb_mt[p >> a.pageblock_order] != MIGRATE_CMA
    if spec.startswith("i386"):
        assert ZoneType.HIGHMEM in user_zones
    a.check()


def test_lowmem_exhaustion_fails_descriptors_not_highmem():
    """i386: with lowmem gone, folios cannot be had although HIGHMEM is free."""
    a = new_allocator(parse_machine("i386:2G"), design="embedded")
    while a.alloc_pages(G.GFP_KERNEL, 0, kind="vmalloc") >= 0:
        pass
    hm = [z for z in a.zones if z.ztype == ZoneType.HIGHMEM][0]
    fails = 0
    for _ in range(200):
        if a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0, kind="anon") < 0:
            fails += 1
    assert fails > 0 and a.counters.alloc_fail.get("descriptor", 0) == fails
    assert hm.free_pages > 1000
    a.check()
