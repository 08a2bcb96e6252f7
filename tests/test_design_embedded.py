"""`embedded` (Wilcox 2024 Option 1): 16-byte struct page, tagged list words."""

from __future__ import annotations

import pytest
from stateful import random_workload

from memdesc.designs import DesignError
from memdesc.designs.descriptors import MEMDESC_ANON, MEMDESC_BUDDY, TAG_MASK
from memdesc.designs.embedded import EmbeddedDesign
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.mmzone import list_id
from memdesc.mm.page_alloc import PageAllocator

RECL = getattr(G, "__GFP_RECLAIMABLE")


def workload(a: PageAllocator, n: int, seed: int = 1, check_every: int = 0) -> list[int]:
    return random_workload(a, n, seed, check_every)


def test_registered_and_options():
    a = new_allocator(parse_machine("x86_64:1G"), design="embedded", design_options={"seed": 3})
    assert isinstance(a.design, EmbeddedDesign) and a.design.struct_page_bytes == 16
    assert a.design.memmap_bytes() == a.machine.present_pages * 16
    with pytest.raises(DesignError):
        new_allocator(parse_machine("x86_64:1G"), design="embedded", design_options={"bogus": 1})


def test_bit_layout_round_trip():
    a = new_allocator(parse_machine("x86_64:1G"), design="embedded")
    d = a.design
    m = d.mm.np
    z = max(a.zones, key=lambda z: z.free_pages)
    lid = list_id(z.zid, 10, 1)
    head = d.first_in_list(lid)
    w0, w1 = int(m[2 * head]), int(m[2 * head + 1])
    assert w0 & TAG_MASK == MEMDESC_BUDDY and w1 & TAG_MASK == 10
    nxt, prv = w0 >> 4, w1 >> 4
    assert prv == d.nr + lid  # first on the list: prev is the list head (sentinel)
    if nxt < d.nr:
        assert int(m[2 * nxt + 1]) >> 4 == head
    assert d.buddy_order(head) == 10 and d.page_is_buddy(head, 10, z.zid)
    assert not d.page_is_buddy(head, 9, z.zid) and not d.page_is_buddy(head + 1, 10, z.zid)
    assert head in d.list_pfns(lid)
    assert not m[2 * (head + 1)] and not m[2 * (head + 1) + 1]  # tails are zero
    # allocated: every page holds the tagged descriptor pointer, word 1 zero
    pfn = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 3, kind="anon")
    w = int(m[2 * pfn])
    assert w & TAG_MASK == MEMDESC_ANON and w & ~TAG_MASK
    assert all(int(m[2 * (pfn + i)]) == w and not m[2 * (pfn + i) + 1] for i in range(8))
    a.check()
    a.free_pages(pfn, 3)
    a.drain_all_pages()
    a.check()


@pytest.mark.parametrize("spec", ["x86_64:1G", "x86_64:1G,movablecore=25%", "x86_64:1G,cma=64M"])
@pytest.mark.parametrize("kernel", ["6.1", "6.19"])
def test_random_workload_checked(spec, kernel):
    a = new_allocator(parse_machine(spec), design="embedded", kernel=kernel)
    workload(a, 5000, seed=7, check_every=1000)
    r = a.check()
    assert r.ok and a.allocs_in_free_path == 0
    assert a.design.metadata()["max_recursion"] <= 2


def test_i386_runs_with_pfn_links():
    a = new_allocator(parse_machine("i386:4G"), design="embedded")
    assert a.design.struct_page_bytes == 8  # two 4-byte words
    workload(a, 4000, seed=2, check_every=1000)
    d = a.design
    assert int(d.mm.np.max()) < 1 << 32  # every stored word fits a 32-bit word
    a.check()


def test_i386_strict_refuses():
    with pytest.raises(DesignError, match="8 bytes"):
        new_allocator(parse_machine("i386:4G"), design="embedded", design_options={"strict32": True})
    new_allocator(parse_machine("x86_64:1G"), design="embedded", design_options={"strict32": True})


def test_descriptor_failures_counted_no_alloc_on_free():
    a = new_allocator(parse_machine("x86_64:1G"), design="embedded",
                      design_options={"desc_fail_rate": 0.1, "seed": 4})
    workload(a, 4000, seed=3, check_every=1000)
    md = a.design.metadata()
    assert md["descriptor_alloc_failures"] > 0
    assert a.counters.alloc_fail["descriptor"] == md["descriptor_alloc_failures"]
    assert a.allocs_in_free_path == 0
    a.check()
