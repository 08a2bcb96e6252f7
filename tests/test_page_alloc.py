"""Targeted tests of mm/page_alloc.c behaviour the model reproduces."""

import pytest

from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.internal import BadCall
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    ZoneType,
)


def mk(spec="x86_64:256M", kernel="6.19", pcp=False):
    return new_allocator(parse_machine(spec), kernel=kernel, pcp=pcp)


def test_boot_all_free_and_merged():
    a = mk()
    a.check()
    z = [z for z in a.zones if z.ztype == ZoneType.DMA32][0]
    assert z.free_pages == z.managed
    assert z.nr_free[10] >= z.managed // 1024 - 2


def test_expand_carves_ascending():
    """__rmqueue_smallest + expand: repeated order-0 allocations go P, P+1, ..."""
    a = mk()
    pfns = [a.alloc_pages(G.GFP_KERNEL, 0) for _ in range(8)]
    assert pfns == list(range(pfns[0], pfns[0] + 8))


def test_free_merges_back():
    a = mk()
    before = [list(z.nr_free) for z in a.zones]
    got = [(a.alloc_pages(G.GFP_KERNEL, o), o) for o in (0, 1, 2, 3, 0, 5)]
    for pfn, o in reversed(got):
        a.free_pages(pfn, o)
    assert [list(z.nr_free) for z in a.zones] == before
    a.check()


def test_watermark_min_and_lowmem_reserve():
    a = mk("x86_64:4G")
    dma = [z for z in a.zones if z.ztype == ZoneType.DMA][0]
    dma32 = [z for z in a.zones if z.ztype == ZoneType.DMA32][0]
    # setup_per_zone_lowmem_reserve: DMA protects itself from DMA32/NORMAL requests
    assert dma.lowmem_reserve[ZoneType.DMA32] == dma32.managed // 256
    assert dma.watermark[0] < dma.watermark[1] < dma.watermark[2]
    # watermark_scale_factor: low - min >= 0.1 % of the zone
    assert dma32.watermark[1] - dma32.watermark[0] >= dma32.managed * 10 // 10000


def test_unmovable_never_in_movable_or_cma():
    for spec in ("x86_64:256M,movablecore=50%", "x86_64:256M,cma=64M"):
        a = mk(spec, pcp=True)
        pfns = []
        while True:
            p = a.alloc_pages(G.GFP_KERNEL, 0)
            if p < 0:
                break
            pfns.append(p)
            z = a.zone_of(p)
            assert z.ztype != ZoneType.MOVABLE
            assert a.get_pageblock_migratetype(p) != MIGRATE_CMA
        assert len(pfns) > 1000
        a.check()


def test_movable_uses_cma_when_half_free_is_cma():
    a = mk("x86_64:128M,cma=96M")
    p = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    assert a.get_pageblock_migratetype(p) == MIGRATE_CMA


@pytest.mark.parametrize("kernel", ["6.1", "6.19"])
def test_fallback_claims_pageblock_for_unmovable(kernel):
    """Boot leaves every pageblock MOVABLE: the first unmovable allocation falls back
    and claims a whole block (can_steal_fallback/should_try_claim_block)."""
    a = mk(kernel=kernel)
    p = a.alloc_pages(G.GFP_KERNEL, 0)
    assert a.counters.extfrag == 1
    assert a.get_pageblock_migratetype(p) == MIGRATE_UNMOVABLE
    q = a.alloc_pages(G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE"), 0)
    assert a.get_pageblock_migratetype(q) == MIGRATE_RECLAIMABLE
    assert a.counters.extfrag == 2
    a.check()


def test_movable_small_fallback_steals_without_claim_61():
    """6.1: a MOVABLE order-0 request may not steal a whole block from an
    unmovable one (can_steal_fallback false) -> takes the smallest block only."""
    a = mk(kernel="6.1")
    # turn every free block unmovable by claiming
    pfns = []
    while True:
        p = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
        if p < 0:
            break
        pfns.append(p)
    for p in pfns:
        a.free_pages(p, 0)
    a.check()


def test_highatomic_reserve():
    """Only the slow path's ALLOC_HARDER (6.1 __GFP_ATOMIC) reserves a pageblock."""
    a = mk("x86_64:1G", kernel="6.1")
    assert a.alloc_pages(G.GFP_ATOMIC_61, 2) >= 0
    assert a.counters.highatomic_reserved == 0  # the fast path has no ALLOC_HARDER
    info = a.alloc_context(G.GFP_ATOMIC_61)
    p = a.get_page_from_freelist(G.GFP_ATOMIC_61, 2, info.slow_flags, info.zl_by_node[0], info, 0)
    a.alloc_state[p] = 3  # record it as the order-2 block it is
    assert p >= 0
    assert a.counters.highatomic_reserved == 1
    assert a.get_pageblock_migratetype(p) == 3
    a.check()


def test_bad_calls_raise_and_do_not_change_state():
    a = mk(pcp=True)
    p = a.alloc_pages(G.GFP_KERNEL, 2)
    snap = (bytes(a.alloc_state), [list(z.nr_free) for z in a.zones])
    with pytest.raises(BadCall, match="allocated with order 2"):
        a.free_pages(p, 1)
    with pytest.raises(BadCall, match="not the head"):
        a.free_pages(p + 1, 0)
    with pytest.raises(BadCall, match="hole"):
        a.free_pages(0xA0, 0)
    with pytest.raises(BadCall, match="out of range"):
        a.free_pages(1 << 40, 0)
    with pytest.raises(BadCall, match="order 11"):
        a.alloc_pages(G.GFP_KERNEL, 11)
    with pytest.raises(BadCall, match="contradictory"):
        a.alloc_pages(G.GFP_DMA | G.GFP_DMA32, 0)
    assert snap == (bytes(a.alloc_state), [list(z.nr_free) for z in a.zones])
    a.free_pages(p, 2)
    with pytest.raises(BadCall, match="double free"):
        a.free_pages(p, 2)
    a.check()


def test_pcp_batch_and_high_like_the_kernel():
    a = mk("x86_64:2G", kernel="6.1", pcp=True)
    z = [z for z in a.zones if z.ztype == ZoneType.DMA32][0]
    assert z.pcp[0].batch == 63
    assert z.pcp[0].high == z.watermark[1] // 2
    p = a.alloc_pages(G.GFP_KERNEL, 0)
    assert z.pcp[0].count == 62  # rmqueue_bulk took a batch, one handed out
    a.free_pages(p, 0)
    assert z.pcp[0].count == 63
    a.check()


def test_merge_refused_across_cma_boundary():
    a = mk("x86_64:128M,cma=32M")
    a.check()  # 'unmerged' invariant understands CMA|MOVABLE buddies at >= pageblock order
    cma_free = sum(z.nr_free_cma for z in a.zones)
    assert cma_free == 32 << 8


def test_alloc_pages_at_exact_pfn():
    a = mk()
    z = [z for z in a.zones if z.ztype == ZoneType.DMA32][0]
    target = z.start_pfn + 4096 + 3
    assert a.alloc_pages_at(G.GFP_KERNEL, 0, target) == target
    assert a.alloc_pages_at(G.GFP_KERNEL, 0, target) == -1
    a.check()
    a.free_pages(target, 0)
    a.check()


def test_movable_zone_only_for_highuser_movable():
    a = mk("x86_64:256M,movablecore=50%", pcp=True)
    p = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    assert a.zone_of(p).ztype == ZoneType.MOVABLE
    p = a.alloc_pages(G.GFP_USER | getattr(G, "__GFP_MOVABLE"), 0)
    assert a.zone_of(p).ztype != ZoneType.MOVABLE
    assert a.get_pageblock_migratetype(p) == MIGRATE_MOVABLE


def test_numa_local_first_then_remote():
    a = mk("numa:2x64M", pcp=True)
    p = a.alloc_pages(G.GFP_KERNEL, 0, nid=1)
    assert a.zone_of(p).nid == 1
    got = []
    while True:  # exhaust node 1 down to its watermark, then spill to node 0
        p = a.alloc_pages(G.GFP_KERNEL, 0, nid=1)
        if p < 0 or a.zone_of(p).nid == 0:
            break
        got.append(p)
    assert p >= 0 and a.zone_of(p).nid == 0
    a.check()


def test_i386_highmem_only_for_highmem_requests():
    a = mk("i386:1G", pcp=True)
    hz = [z for z in a.zones if z.ztype == ZoneType.HIGHMEM]
    assert hz and hz[0].managed > 0
    p = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
    assert a.zone_of(p).ztype == ZoneType.HIGHMEM
    for _ in range(2000):
        q = a.alloc_pages(G.GFP_KERNEL, 0)
        assert a.zone_of(q).ztype != ZoneType.HIGHMEM
    a.check()


@pytest.mark.parametrize("design", ["linked", "embedded"])
@pytest.mark.parametrize("spec,profile,kernel", [
    ("x86_64:1G,cma=128M", "synthetic:cma", "6.1"),
    ("x86_64:1G,cma=128M", "synthetic:cma", "6.19"),
    ("x86_64:1G", "synthetic:mixed", "6.19"),
    ("i386:1G", "synthetic:anon-thp", "6.1"),
])
def test_refill_split_run_matches_step_by_step(monkeypatch, spec, profile, kernel, design):
    """rmqueue_bulk's split-run shortcut (Design.unlink_split_run) leaves exactly the
    memmap, lists, pcp lists and counters that one __rmqueue() per page leaves."""
    import numpy as np

    from memdesc.designs import get_design
    from memdesc.driver.runner import Runner
    from memdesc.workloads import open_workload

    m = parse_machine(spec)
    events = list(open_workload(profile, m.present_pages, 20_000, 5, kernel=kernel).events)

    def run(shortcut):
        if not shortcut:
            monkeypatch.setattr(get_design(design), "unlink_split_run", lambda self, *a: False)
        a = new_allocator(m, kernel=kernel, design=design)
        Runner(a).run(events)
        monkeypatch.undo()
        a.check()
        pcp = [[list(lst) for lst in p.lists] for z in a.zones for p in z.pcp]
        zs = [(z.free_pages, z.nr_free_cma, list(z.nr_free)) for z in a.zones]
        return a.design.mm.np.copy(), bytes(a.alloc_state), bytes(a.pb_mt), pcp, zs, a.counters

    fast, slow = run(True), run(False)
    assert np.array_equal(fast[0], slow[0])
    assert fast[1:] == slow[1:]
    assert fast[5].zone_locked > 1000  # the refills did run


@pytest.mark.parametrize("kernel,claims", [("6.19", 1), ("6.1", 0)])
def test_refill_remembers_fallback_mode(monkeypatch, kernel, claims):
    """6.19 rmqueue_bulk() keeps enum rmqueue_mode across its iterations: once it had to
    steal, the rest of the refill steals without retrying the claim (6.1 has no claim
    step: every page goes through __rmqueue_fallback())."""
    from collections import deque

    a = mk("x86_64:256M", kernel=kernel, pcp=False)
    z = [z for z in a.zones if z.ztype == ZoneType.DMA32][0]
    calls = {"claim": 0}

    def no_claim(self, *args):
        calls["claim"] += 1
        return -1

    cls = type(a)
    monkeypatch.setattr(cls, "_rmqueue_claim", no_claim, raising=False)
    monkeypatch.setattr(cls, "_rmqueue_fallback", lambda self, *args: False, raising=False)
    steal = getattr(cls, "_rmqueue_steal", None)
    monkeypatch.setattr(cls, "_rmqueue_steal", lambda self, *args: (-1, -1), raising=False)
    while any(a.free_count(z, o, MIGRATE_UNMOVABLE) for o in range(11)):
        assert a.alloc_pages(G.GFP_KERNEL, 0) >= 0  # use up every UNMOVABLE free block
    if steal is not None:
        monkeypatch.setattr(cls, "_rmqueue_steal", steal)
    calls["claim"] = 0
    got = a.rmqueue_bulk(z, 0, 16, deque(), MIGRATE_UNMOVABLE, 0)
    assert calls["claim"] == claims
    assert got == (16 if kernel == "6.19" else 0)
