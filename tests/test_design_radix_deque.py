"""`radix-deque` (Overstreet, Oct 2021): two-word struct page, radix-tree deque free lists,
and the one-word variant. Where do tree nodes come from when a free needs one?"""

from __future__ import annotations

import random

import pytest

from memdesc.designs import DesignError, get_design
from memdesc.designs.descriptors import MEMDESC_ANON, MEMDESC_FILE, TAG_MASK
from memdesc.designs.radix_deque import (
    DEFAULT_POLICY,
    POLICIES,
    TAG_BUDDY,
    PG_buddy,
    RadixDequeDesign,
)
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_META, AS_MOVABLE
from memdesc.mm.page_alloc import PageAllocator

RECL = getattr(G, "__GFP_RECLAIMABLE")
MACHINES = ["x86_64:1G", "x86_64:1G,movablecore=25%", "x86_64:1G,cma=64M", "i386:4G"]
MOVABLE_MACHINES = MACHINES[1:]  # where `self` must break the rule


def make(spec: str = "x86_64:1G", kernel: str = "6.19", **opts) -> PageAllocator:
    return new_allocator(parse_machine(spec), design="radix-deque", kernel=kernel, design_options=opts)


def workload(a: PageAllocator, n: int, seed: int = 1, check_every: int = 0, kinds: bool = True) -> list[int]:
    """Random alloc/free mix on every cpu; returns the pfn (or -1) of each allocation."""
    rng = random.Random(seed)
    gfps = [G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | RECL,
            G.GFP_ATOMIC_61 if a.k61 else G.GFP_ATOMIC, G.GFP_TRANSHUGE, G.GFP_DMA32 | G.GFP_KERNEL]
    kind_list = [None, "anon", "file", "slab", "pgtable", "misc"] if kinds else [None]
    live: list[tuple[int, int]] = []
    seq = []
    for i in range(n):
        if live and rng.random() < 0.47:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            pfn, o = live.pop()
            a.free_pages(pfn, o, cpu=rng.randrange(a.nr_cpus))
        else:
            o = rng.choice([0] * 12 + [1, 2, 3, 4, 9, 10])
            pfn = a.alloc_pages(rng.choice(gfps), o, kind=rng.choice(kind_list), cpu=rng.randrange(a.nr_cpus))
            seq.append(pfn)
            if pfn >= 0:
                live.append((pfn, o))
        if check_every and i % check_every == check_every - 1:
            r = a.check(raise_on_error=False)
            bad = {k: v for k, v in r.counts.items() if k not in ("unmovable_meta_in_movable", "alloc_in_free_path")}
            assert not bad, r.summary()
    return seq


# -- layout and options -----------------------------------------------------------------
def test_registered_and_sizes():
    assert get_design("radix-deque") is RadixDequeDesign
    assert DEFAULT_POLICY in POLICIES
    for spec, words, size in [("x86_64:1G", 2, 16), ("x86_64:1G", 1, 8), ("i386:4G", 2, 8), ("i386:4G", 1, 4)]:
        d = make(spec, words=words).design
        assert d.struct_page_bytes == size
        assert d.metadata()["memmap_bytes"] == d.alloc.machine.present_pages * size
    d = make().design
    assert (d.node_bytes, d.nodes_per_page) == (528, 7)  # 64 * 8 B slots + 16 B header
    assert (d.field_bits, make(words=1).design.field_bits) == (64, 53)
    d = make("i386:4G", words=1).design
    assert (d.node_bytes, d.nodes_per_page, d.field_bits) == (272, 15, 21)


def test_bad_options():
    for opts in ({"words": 3}, {"policy": "magic"}, {"fanout": 48}, {"bogus": 1}):
        with pytest.raises(DesignError):
            make(**opts)


def test_free_block_words_two_word_layout():
    a = make()
    a.alloc_pages(G.GFP_KERNEL, 0)  # the first allocation drains the boot-deferred blocks
    d = a.design
    lid = next(lid for lid in range(d.nlists) if d.tree.count[lid])
    pfn = d.first_in_list(lid)
    w0, w1 = d.m[2 * pfn], d.m[2 * pfn + 1]
    assert w0 & PG_buddy and w0 & 0xF == d.buddy_order(pfn)
    assert d.tree.lookup(lid, w1 - (1 << 64) if w1 >> 63 else w1) == pfn
    assert pfn in d.list_pfns(lid)


def test_free_block_word_one_word_layout():
    a = make("i386:4G", words=1)
    a.alloc_pages(G.GFP_KERNEL, 0)
    d = a.design
    lid = next(lid for lid in range(d.nlists) if d.tree.count[lid])
    pfn = d.first_in_list(lid)
    w = d.m[pfn]
    assert w < 1 << 32  # i386: only the low 32 bits
    assert w & TAG_MASK == TAG_BUDDY and (w >> 4) & 0xF == d.buddy_order(pfn)
    assert d.tree.lookup(lid, (w >> 11) - (1 << 20)) == pfn


def test_allocated_pages_hold_their_memdesc():
    for words in (1, 2):
        a = make(words=words)
        d = a.design
        pfn = a.alloc_pages(G.GFP_HIGHUSER_MOVABLE, 2, kind="anon")
        word = d.m[pfn * words + d.MD]
        assert word & TAG_MASK == MEMDESC_ANON and word & ~TAG_MASK
        assert all(d.m[p * words + d.MD] == word for p in range(pfn, pfn + 4))
        f = a.alloc_pages(G.GFP_KERNEL, 0, kind="file")
        assert d.m[f * words + d.MD] & TAG_MASK == MEMDESC_FILE
        a.check()
        a.free_pages(pfn, 2)
        a.free_pages(f, 0)
        a.drain_all_pages()
        a.check()
        assert d.metadata()["descriptor_alloc_failures"] == 0


# -- boot -------------------------------------------------------------------------------
def test_boot_defers_then_first_allocation_builds_the_trees():
    a = make()
    d = a.design
    a.check()
    # memblock_free_all() parks every block (some merged away since)
    assert d.boot_deferred >= d.ndeferred > 0 and d.node_pages_live == 0
    a.alloc_pages(G.GFP_KERNEL, 0)
    assert d.ndeferred == 0 and d.node_pages_live > 0
    for pfn in d.node_page_pfns():
        assert a.alloc_state[pfn] == AS_META | 1
        assert a.zone_of(pfn).name in ("DMA", "DMA32", "Normal")
    a.check()


# -- every policy x words x machine ------------------------------------------------------
@pytest.mark.parametrize("spec", MACHINES)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("words", [1, 2])
def test_random_workload_every_policy(spec, policy, words):
    a = make(spec, policy=policy, words=words)
    workload(a, 2500, seed=words, check_every=500)
    r = a.check(raise_on_error=False)
    md = a.design.metadata()
    assert md["radix_nodes_live"] > 0 and md["deferred_blocks"] >= 0
    if policy in ("reserve", "defer", "movable-nodes"):
        assert a.allocs_in_free_path == 0
        assert "alloc_in_free_path" not in r.counts
    if policy != "self":
        assert md["violations"]["unmovable_meta_in_movable"] == 0
        assert "unmovable_meta_in_movable" not in r.counts
    if policy == "self" and spec == "x86_64:1G":
        assert md["violations"]["unmovable_meta_in_movable"] == 0  # all lowmem: legal


@pytest.mark.parametrize("spec", MOVABLE_MACHINES)
def test_self_breaks_the_rule_where_the_thread_said(spec):
    """Overstreet: consume the freed page -- impossible for HIGHMEM; Hildenbrand: and for
    ZONE_MOVABLE and CMA. The model records every such node page."""
    a = make(spec, policy="self", words=2)
    workload(a, 3000, seed=2)
    md = a.design.metadata()
    v = md["violations"]
    assert v["unmovable_meta_in_movable"] > 0, v
    assert md["carved_pages"] > 0
    r = a.check(raise_on_error=False)
    assert set(r.counts) <= {"unmovable_meta_in_movable"}
    where = {"x86_64:1G,movablecore=25%": "Movable", "x86_64:1G,cma=64M": "CMA", "i386:4G": "HighMem"}[spec]
    assert v[where] > 0


@pytest.mark.parametrize("spec", MACHINES)
def test_default_policy_is_clean(spec):
    a = make(spec)
    assert a.design.policy == DEFAULT_POLICY
    workload(a, 3000, seed=3, check_every=1000)
    md = a.design.metadata()
    assert a.allocs_in_free_path == 0
    assert md["violations"]["unmovable_meta_in_movable"] == 0
    assert md["deferred_free_path"] == 0
    a.check()


def test_borrow_allocates_on_the_free_path():
    a = make("x86_64:1G", policy="borrow")
    workload(a, 4000, seed=4)
    md = a.design.metadata()
    assert md["borrowed_pages"] == a.allocs_in_free_path > 0
    r = a.check(raise_on_error=False)
    assert set(r.counts) == {"alloc_in_free_path"}


# -- fault injection ------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["reserve", "defer", "borrow"])
def test_node_allocation_failure_loses_nothing(policy):
    a = make("x86_64:1G,movablecore=25%", policy=policy, meta_fail_rate=0.7, seed=5)
    d = a.design
    workload(a, 3000, seed=5, check_every=300)  # conservation is checked every 300 ops
    assert d.meta_failures > 0
    assert d.deferred_events + d.boot_deferred > 0
    d.meta_fail_rate = 0.0
    a.alloc_pages(G.GFP_KERNEL, 0)  # allocation path drains everything parked
    assert d.ndeferred == 0
    a.check()


def test_total_node_failure_still_boots_and_allocates():
    a = make(meta_fail_rate=1.0)
    workload(a, 1500, seed=6, check_every=500)
    d = a.design
    assert d.node_pages_live == 0 and d.ndeferred > 0  # every free list is deferred
    a.check()


# -- index width: renumbering -----------------------------------------------------------------
def test_i386_one_word_index_overflow_renumbers():
    a = make("i386:4G", words=1, index_bits=6)  # keys -32..31 instead of 21 bits
    workload(a, 4000, seed=7, check_every=500)
    d = a.design
    assert d.renumberings > 0
    for lid in range(d.nlists):
        for k, _ in d.tree.items(lid):
            assert d.kmin <= k < d.kmax
    a.check()


# -- movable node pages -----------------------------------------------------------------------
def test_movable_nodes_relocate():
    a = make("x86_64:1G,movablecore=25%", policy="movable-nodes")
    workload(a, 2000, seed=9)
    d = a.design
    pages = d.node_page_pfns()
    assert pages and all(a.alloc_state[p] & ~AS_MOVABLE == AS_META | 1 for p in pages)
    before = [list(d.tree.items(lid)) for lid in range(d.nlists)]
    for pfn in pages:
        new = d.relocate_node_page(pfn, G.GFP_KERNEL)
        assert new >= 0 and new != pfn
        assert a.alloc_state[pfn] != AS_META | 1  # the old page went back to the allocator
    assert [list(d.tree.items(lid)) for lid in range(d.nlists)] == before
    assert d.relocations == len(pages)
    a.check()
    with pytest.raises(ValueError):
        d.relocate_node_page(pages[0] ^ 1 if pages[0] ^ 1 not in d.pfn_to_pi else 0)


def test_metadata_keys():
    a = make()
    workload(a, 500)
    md = a.design.metadata()
    for key in ("memmap_bytes", "dynamic_bytes", "radix_node_pages_live", "radix_node_pages_peak",
                "radix_nodes_live", "reserve_pages", "deferred_blocks", "renumberings", "violations"):
        assert key in md
    assert md["dynamic_bytes"] >= md["radix_node_pages_live"] * 4096
    s = a.metadata_summary()
    assert s["total_metadata_bytes"] >= md["memmap_bytes"]


def test_memory_offline_blocked_by_self_nodes_not_by_default():
    """The thread's problem end to end: `self` strands unmovable nodes in ZONE_MOVABLE
    and memory offline fails on them; the default policy never puts them there."""
    from memdesc.mm.memory_hotplug import movable_memory_blocks, offline_pages

    for policy, ok in (("self", False), (DEFAULT_POLICY, True)):
        a = make("x86_64:1G,movablecore=25%", policy=policy)
        workload(a, 3000, seed=2)
        results = [offline_pages(a, s, n) for s, n in movable_memory_blocks(a)]
        assert all(r.ok for r in results) is ok
        if not ok:
            assert any(r.blocker_kind == "metadata:radix-node" for r in results)


def test_migrate_relocates_movable_node_pages():
    from memdesc.mm.migrate import migrate_block

    a = make("x86_64:1G,movablecore=25%", policy="movable-nodes")
    workload(a, 2000, seed=9)
    d = a.design
    pfn = d.node_page_pfns()[0]
    r = migrate_block(a, pfn)
    assert r.ok and r.new_pfn in d.pfn_to_pi and pfn not in d.pfn_to_pi
    assert d.relocations == 1
    a.check()
    assert not make(policy="reserve").design.relocates_meta  # unmovable elsewhere
