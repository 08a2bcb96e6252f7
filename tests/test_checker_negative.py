"""The checker catches each kind of corruption, and names exactly that kind.

Each test boots a sound allocator (checked clean first), corrupts one thing on purpose
and expects the report's kinds to be exactly the family's. Core families run on every
registered design (default options); list links, buddy markers and stored orders live in
a design's own words, so those corruptions are written per built-in design below -- a
new design adds its own here if it wants the same coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
from stateful import random_workload
from variants import variants

from memdesc.designs.base import DesignError
from memdesc.driver.boot import new_allocator
from memdesc.mm.debug_vm import FAMILIES
from memdesc.mm.internal import AS_PCP
from memdesc.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_TYPES, MIGRATE_UNMOVABLE, NR_PAGE_ORDERS, list_id
from memdesc.mm.page_alloc import PageAllocator

DEFAULTS = variants(default_only=True)


def booted(design: str, spec: str = "x86_64:256M", kernel: str = "6.19", opts: dict | None = None,
           drain: bool = False) -> PageAllocator:
    try:
        a = new_allocator(spec, design, kernel=kernel, design_options=opts)
    except DesignError as e:
        pytest.skip(str(e))
    random_workload(a, 1500, seed=5)
    if drain:
        a.drain_all_pages()
    rep = a.check(raise_on_error=False)
    assert rep.ok, rep.summary()
    return a


def kinds(a: PageAllocator) -> set[str]:
    return set(a.check(raise_on_error=False).counts)


def core_kinds(a: PageAllocator) -> set[str]:
    """The core families reported (a design's own checks may add their view of the same
    corruption, e.g. a descriptor owned by no block)."""
    return kinds(a) & set(FAMILIES)


def free_blocks(a: PageAllocator, min_order: int = 0) -> list[tuple[int, int, int]]:
    """(head, order, lid) of every free block of at least ``min_order``."""
    out = []
    for z in a.zones:
        for o in range(min_order, NR_PAGE_ORDERS):
            for mt in range(MIGRATE_TYPES):
                lid = list_id(z.zid, o, mt)
                out += [(p, o, lid) for p in a.design.list_pfns(lid)]
    return out


def allocated_order0(a: PageAllocator) -> list[int]:
    st = np.frombuffer(a.alloc_state, dtype=np.uint8)
    return np.nonzero(st == 1)[0].tolist()


# -- core families, every design --------------------------------------------------------
@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_nr_free(design, opts):
    a = booted(design, opts=opts)
    z = max(a.zones, key=lambda z: z.managed)
    z.nr_free[3] += 1
    assert kinds(a) == {"nr_free"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_counters(design, opts):
    a = booted(design, opts=opts)
    max(a.zones, key=lambda z: z.managed).free_pages += 1
    assert kinds(a) == {"counters"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_pcp_count(design, opts):
    a = booted(design, opts=opts)
    z, p = next((z, p) for z in a.zones for p in z.pcp if p.count)
    p.count += 1
    assert kinds(a) == {"pcp"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_pcp_state(design, opts):
    """A pcp page whose page state says it is allocated."""
    a = booted(design, opts=opts)
    pfn = next(pfn for z in a.zones for p in z.pcp for lst in p.lists for pfn in lst)
    a.alloc_state[pfn] &= ~AS_PCP
    assert "pcp" in kinds(a)


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_conservation(design, opts):
    a = booted(design, opts=opts)
    max(a.zones, key=lambda z: z.managed).reserved += 1
    assert kinds(a) == {"conservation"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_page_state(design, opts):
    """One allocated page moved into a free block: a page lost and one in two states,
    with every total (and so conservation) unchanged."""
    a = booted(design, opts=opts, drain=True)
    q = allocated_order0(a)[0]
    head, order, _ = next(b for b in free_blocks(a, 1) if a.zid_of_pfn[b[0]] == a.zid_of_pfn[q])
    a.alloc_state[head + 1] = a.alloc_state[q]
    a.alloc_state[q] = 0
    assert core_kinds(a) == {"state"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_pageblock_type(design, opts):
    """6.19: a free block on a MOVABLE list in a pageblock turned UNMOVABLE."""
    a = booted(design, opts=opts, drain=True)
    head = next(p for p, o, lid in free_blocks(a) if lid % MIGRATE_TYPES == MIGRATE_MOVABLE
                and o <= a.pageblock_order)
    a.pb_mt[head >> a.pageblock_order] = MIGRATE_UNMOVABLE
    assert kinds(a) == {"pageblock"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_cma_pageblock(design, opts):
    """A CMA pageblock losing its type (its free max-order block stays on the CMA list)."""
    a = booted(design, spec="x86_64:256M,cma=32M", opts=opts, drain=True)
    s, e = a.machine.cma_areas[0]
    a.pb_mt[s >> a.pageblock_order] = MIGRATE_MOVABLE
    assert kinds(a) == {"pageblock"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_unmerged(design, opts):
    """Two free buddies left unmerged: split a free block behind the core's back, keeping
    every count right (the design's own lists, the core's nr_free)."""
    a = booted(design, opts=opts, drain=True)
    head, order, lid = next(b for b in free_blocks(a, 1) if b[2] % MIGRATE_TYPES == MIGRATE_MOVABLE)
    z = a.zone_of(head)
    a.del_page_from_free_list(z, head, order)
    half = order - 1
    a._add_to_free_list(z, head, half, MIGRATE_MOVABLE, False)
    a._add_to_free_list(z, head + (1 << half), half, MIGRATE_MOVABLE, False)
    assert kinds(a) == {"unmerged"}


@pytest.mark.parametrize("design,opts", DEFAULTS)
def test_alloc_in_free_path(design, opts):
    a = booted(design, opts=opts)
    a.allocs_in_free_path += 1
    assert kinds(a) == {"alloc_in_free_path"}


# -- design words, per built-in design ----------------------------------------------------
def _linked_marker(a: PageAllocator) -> None:
    from memdesc.designs.linked import F_TYPE, PAGE_TYPE_BUDDY, W
    a.design.m[allocated_order0(a)[0] * W + F_TYPE] = PAGE_TYPE_BUDDY


def _linked_order(a: PageAllocator) -> None:
    from memdesc.designs.linked import F_PRIVATE, W
    head, order, _ = free_blocks(a, 1)[0]
    a.design.m[head * W + F_PRIVATE] = order - 1


def _linked_link(a: PageAllocator) -> None:
    from memdesc.designs.linked import F_PREV, W
    head, _, _ = free_blocks(a, 1)[0]
    a.design.m[head * W + F_PREV] = head  # prev points at itself


def _embedded_marker(a: PageAllocator) -> None:
    from memdesc.designs.descriptors import MEMDESC_BUDDY
    a.design.m[allocated_order0(a)[0] << 1] = MEMDESC_BUDDY


def _embedded_order(a: PageAllocator) -> None:
    head, order, _ = free_blocks(a, 1)[0]
    a.design.m[(head << 1) + 1] = (a.design.m[(head << 1) + 1] & ~0xF) | (order - 1)


def _embedded_link(a: PageAllocator) -> None:
    lists: dict[int, list[int]] = {}
    for p, _, lid in free_blocks(a):
        lists.setdefault(lid, []).append(p)
    second = next(ps[1] for ps in lists.values() if len(ps) >= 2)
    a.design.m[(second << 1) + 1] = (second << 4) | (a.design.m[(second << 1) + 1] & 0xF)  # prev = itself


def _buddy_desc_link(a: PageAllocator) -> None:
    from memdesc.designs.buddy_desc import BF_PREV, BW
    from memdesc.designs.descriptors import TAG_MASK
    d = a.design
    head, _, _ = free_blocks(a, 1)[0]
    r = d.ptr2row[d.m[head] & ~TAG_MASK]
    d.b[r * BW + BF_PREV] = r


def _buddy_desc_order(a: PageAllocator) -> None:
    from memdesc.designs.buddy_desc import BF_ORDER, BW
    from memdesc.designs.descriptors import TAG_MASK
    d = a.design
    head, order, _ = free_blocks(a, 1)[0]
    d.b[d.ptr2row[d.m[head] & ~TAG_MASK] * BW + BF_ORDER] = order - 1


def _radix_tree(a: PageAllocator) -> None:
    t = a.design.tree
    lid = next(lid for lid in range(len(t.root)) if t.root[lid] >= 0)
    t.nnodes[lid] += 1  # the deque's node count no longer matches its reachable nodes


def _radix_marker(a: PageAllocator) -> None:
    from memdesc.designs.radix_deque import PG_buddy
    a.design.m[allocated_order0(a)[0] << 1] |= PG_buddy


CORRUPT = {
    ("linked", "buddy_marker"): (_linked_marker, {"buddy_marker"}),
    ("linked", "free_block"): (_linked_order, {"free_block"}),
    ("linked", "list_links"): (_linked_link, {"list_links"}),
    ("embedded", "buddy_marker"): (_embedded_marker, {"buddy_marker", "memdesc", "list_links"}),
    ("embedded", "free_block"): (_embedded_order, {"free_block"}),
    ("embedded", "list_links"): (_embedded_link, {"list_links"}),
    ("buddy-desc", "list_links"): (_buddy_desc_link, {"list_links"}),
    ("buddy-desc", "free_block"): (_buddy_desc_order, {"free_block", "struct_buddy"}),
    ("radix-deque", "radix_tree"): (_radix_tree, {"radix_tree"}),
    ("radix-deque", "buddy_marker"): (_radix_marker, {"buddy_marker"}),
}


@pytest.mark.parametrize("design,what", list(CORRUPT), ids=[f"{d}-{w}" for d, w in CORRUPT])
def test_design_words(design, what):
    fn, want = CORRUPT[(design, what)]
    a = booted(design, drain=True)
    fn(a)
    assert kinds(a) == want
