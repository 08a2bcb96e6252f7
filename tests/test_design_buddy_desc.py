"""`buddy-desc` (Wilcox, Oct 2021): one memdesc word per page, struct buddy per free block."""

from __future__ import annotations

import random

import pytest
from stateful import random_workload

from memdesc.designs import DesignError
from memdesc.designs.buddy_desc import (
    BF_FLAGS,
    BF_ORDER,
    BF_PAGE,
    BUDDY_FREE,
    BW,
    FL_MT_MASK,
    FL_NODE_SHIFT,
    FL_ZONE_SHIFT,
    BuddyDescDesign,
)
from memdesc.designs.descriptors import MEMDESC_BUDDY, TAG_MASK
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.cma import alloc_contig_range, free_contig_range
from memdesc.mm.compaction import compact_memory
from memdesc.mm.mmzone import list_id
from memdesc.mm.page_alloc import PageAllocator

RECL = getattr(G, "__GFP_RECLAIMABLE")


def workload(a: PageAllocator, n: int, seed: int = 1, check_every: int = 0, invariant: bool = False) -> list[int]:
    """The shared random mix; ``invariant``: assert the never-allocate-on-free reserve
    (spare struct buddies >= what every allocated and pcp block may need) after every step."""

    def reserve_holds(a: PageAllocator) -> None:
        d = a.design
        if isinstance(d, BuddyDescDesign) and d._seeded:
            assert len(d.pool) >= d.committed()

    return random_workload(a, n, seed, check_every, reserve_holds if invariant else None)


def test_registered_sizes_and_options():
    a = new_allocator(parse_machine("x86_64:1G"), design="buddy-desc")
    d = a.design
    assert isinstance(d, BuddyDescDesign) and d.struct_page_bytes == 8
    assert d.bcache.object_size == 40 and d.bcache.size == 48 and d.bcache.objects_per_slab == 682
    with pytest.raises(DesignError):
        new_allocator(parse_machine("x86_64:1G"), design="buddy-desc", design_options={"nope": 1})


def test_struct_buddy_fields_and_memdesc():
    a = new_allocator(parse_machine("x86_64:1G"), design="buddy-desc")
    d = a.design
    z = max(a.zones, key=lambda z: z.free_pages)
    lid = list_id(z.zid, 10, 1)
    head = d.first_in_list(lid)
    w = d.m[head]
    assert w & TAG_MASK == MEMDESC_BUDDY
    r = d.ptr2row[w & ~TAG_MASK]
    flags = d.b[r * BW + BF_FLAGS]
    assert flags & BUDDY_FREE and flags & FL_MT_MASK == 1
    assert (flags >> FL_ZONE_SHIFT) & 0xF == z.node_zone_idx and (flags >> FL_NODE_SHIFT) & 0x3FF == z.nid
    assert d.b[r * BW + BF_ORDER] == 10 and d.b[r * BW + BF_PAGE] == head
    assert d.page_is_buddy(head, 10, z.zid) and not d.page_is_buddy(head, 9, z.zid)
    assert head in d.list_pfns(lid) and d.buddy_order(head + 1) == -1 and d.m[head + 1] == 0
    # boot struct buddies came from the boot pool and are accounted
    md = d.metadata()
    assert md["boot_bytes"] == d.nr_boot * 48 and d.nr_boot >= sum(sum(z.nr_free) for z in a.zones)
    pfn = a.alloc_pages(G.GFP_KERNEL, 0, kind="slab")
    assert d.m[pfn] & TAG_MASK == 5
    assert len(d.pool) >= d.committed()
    a.check()


@pytest.mark.parametrize("spec", ["x86_64:1G", "x86_64:1G,movablecore=25%", "x86_64:1G,cma=64M"])
@pytest.mark.parametrize("kernel", ["6.1", "6.19"])
def test_random_workload_checked(spec, kernel):
    a = new_allocator(parse_machine(spec), design="buddy-desc", kernel=kernel)
    workload(a, 4000, seed=7, check_every=1000, invariant=True)
    a.check()
    md = a.design.metadata()
    assert md["max_recursion"] == 2 and md["pool_exhausted"] == 0 and a.allocs_in_free_path == 0
    assert md["buddy_topup_slab_allocs"] > 0  # the slab <-> page allocator loop ran


def test_i386():
    a = new_allocator(parse_machine("i386:4G"), design="buddy-desc")
    assert a.design.struct_page_bytes == 4
    workload(a, 3000, seed=5, check_every=1000, invariant=True)
    assert int(a.design.mm.np.max()) < 1 << 32
    a.check()


def test_fault_injection_fails_cleanly_never_allocates_on_free():
    a = new_allocator(parse_machine("x86_64:1G"), design="buddy-desc",
                      design_options={"desc_fail_rate": 0.05, "seed": 9})
    workload(a, 5000, seed=3, check_every=1000, invariant=True)
    md = a.design.metadata()
    assert md["buddy_desc_failures"] > 0 and a.counters.alloc_fail["descriptor"] >= md["buddy_desc_failures"]
    assert a.allocs_in_free_path == 0 and md["pool_exhausted"] == 0
    a.check()


def test_buddy_cache_failure_blocks_allocation_with_free_pages():
    """No struct buddy memory: the allocation fails although free pages exist, nothing changes."""
    a = new_allocator(parse_machine("x86_64:1G"), design="buddy-desc")
    d = a.design
    assert a.alloc_pages(G.GFP_KERNEL, 0, kind="misc") >= 0
    d.bcache.fail_rate, d.bcache.rng = 1.0, random.Random(0)
    fails = 0
    for _ in range(len(d.pool) + 50):  # drain the reserve's headroom
        before = ([z.free_pages for z in a.zones], a.pcp_pages(a.zones[0]), len(d.pool), d.committed())
        if a.alloc_pages(G.GFP_KERNEL, 0, kind="vmalloc") < 0:
            fails += 1
            assert ([z.free_pages for z in a.zones], a.pcp_pages(a.zones[0]), len(d.pool), d.committed()) == before
            break
    assert fails and a.last_failure == "descriptor" and d.buddy_desc_failures >= 1
    assert sum(z.free_pages for z in a.zones) > 1000
    assert len(d.pool) >= d.committed()
    a.check()


def test_mark_allocated_paths_compaction_and_contig():
    a = new_allocator(parse_machine("i386:1G"), design="buddy-desc")
    workload(a, 6000, seed=4)
    compact_memory(a)
    a.check()
    z = [z for z in a.zones if z.populated][-1]
    s = (z.start_pfn + 4096) & ~1023
    r = alloc_contig_range(a, s, s + 512)
    a.check()
    if r.ok:
        free_contig_range(a, s, 512)
    a.check()
    assert a.design.metadata()["pool_exhausted"] == 0
