"""Migration, compaction, isolation, alloc_contig_range / CMA and memory offline.

Every step is followed by the exhaustive invariant checker (alloc.check()).
Designs other than ``linked`` are exercised when they import and boot; a design
that is not ready yet is skipped, not failed.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from variants import expected, rule_keeping, variants

from memdesc.designs.base import DesignError
from memdesc.driver.boot import new_allocator
from memdesc.driver.mmops import MmOps
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm import page_isolation
from memdesc.mm.cma import alloc_contig_range, cma_areas_of, contig_chunks, free_contig_range
from memdesc.mm.compaction import (
    compact_memory,
    compact_zone,
    fragmentation_index,
    install_direct_compaction,
)
from memdesc.mm.internal import AS_MOVABLE, AS_PINNED
from memdesc.mm.memory_hotplug import movable_memory_blocks, offline_pages, online_pages
from memdesc.mm.migrate import migrate_block
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    ZoneType,
    list_id,
    split_list_id,
)
from memdesc.mm.page_alloc import PageAllocator
from memdesc.mm.page_isolation import start_isolate_page_range, undo_isolate_page_range
from memdesc.workloads.events import Compact, ContigAlloc, ContigFree, Offline, Online

MOVABLE_SPEC = "x86_64:512M,movablecore=50%"
CMA_SPEC = "x86_64:512M,cma=64M"
#: every registered design variant (tests/variants.py)
VARIANTS = variants()
#: the variants that keep the thread's rules and inject no failures
RULE_KEEPING = rule_keeping()
GFP_MOVABLE = G.GFP_HIGHUSER_MOVABLE


def make(spec: str, design: str = "linked", kernel: str = "6.19", opts: dict | None = None) -> PageAllocator:
    """A booted allocator, or skip when the variant refuses this machine (DesignError)."""
    try:
        return new_allocator(parse_machine(spec), design, kernel=kernel, design_options=opts)
    except DesignError as e:
        pytest.skip(f"design {design!r} {opts} does not run on {spec}: {e}")


def check(a: PageAllocator, opts: dict | None = None) -> None:
    """The checker, accepting what the variant is built to show."""
    rep = a.check(raise_on_error=False)
    allowed = expected(a.design.name, opts or {})
    bad = {k: v for k, v in rep.counts.items() if k not in allowed}
    assert not bad, rep.summary()


class Live:
    """Handle -> (pfn, order) with the runner's on_migrate bookkeeping."""

    def __init__(self, a: PageAllocator) -> None:
        self.a = a
        self.blocks: dict[int, tuple[int, int]] = {}
        self.by_pfn: dict[int, int] = {}
        self.next = 0
        a.on_migrate = self.on_migrate

    def on_migrate(self, old: int, new: int, order: int) -> None:
        h = self.by_pfn.pop(old)
        assert self.blocks[h] == (old, order)
        self.blocks[h] = (new, order)
        self.by_pfn[new] = h

    def alloc(self, gfp: int, order: int, kind: str | None = None) -> int:
        pfn = self.a.alloc_pages(gfp, order, kind=kind)
        if pfn >= 0:
            self.next += 1
            self.blocks[self.next] = (pfn, order)
            self.by_pfn[pfn] = self.next
        return pfn

    def adopt(self, pfn: int, order: int) -> None:
        self.next += 1
        self.blocks[self.next] = (pfn, order)
        self.by_pfn[pfn] = self.next

    def free(self, h: int) -> None:
        pfn, order = self.blocks.pop(h)
        del self.by_pfn[pfn]
        self.a.free_pages(pfn, order)

    def free_random(self, rng: random.Random) -> None:
        self.free(rng.choice(list(self.blocks)))

    def verify(self) -> None:
        for pfn, order in self.blocks.values():
            st = self.a.alloc_state[pfn]
            assert st and (st & 0x0F) == order + 1, f"handle lost its block at {pfn:#x}"


def free_snapshot(a: PageAllocator) -> tuple:
    """Every free block (pfn, order, list) and the counters that describe them."""
    blocks = []
    for z in a.zones:
        for o in range(NR_PAGE_ORDERS):
            for mt in range(MIGRATE_TYPES):
                lid = list_id(z.zid, o, mt)
                blocks += [(p, o, lid) for p in a.design.list_pfns(lid)]
    zs = [(tuple(z.nr_free), z.free_pages, z.nr_free_cma, z.nr_free_highatomic, z.nr_isolate_pageblock)
          for z in a.zones]
    return sorted(blocks), zs, bytes(a.pb_mt)


def in_cma(a: PageAllocator, pfn: int, order: int) -> bool:
    return any(s < pfn + (1 << order) and pfn < e for s, e in a.machine.cma_areas)


def movable_zone(a: PageAllocator):
    return next(z for z in a.zones if z.ztype == ZoneType.MOVABLE)


# ---------------------------------------------------------------------------------------
# the stateful random test
# ---------------------------------------------------------------------------------------
def _random_run(spec: str, design: str, steps: int, seed: int, kernel: str = "6.19",
                opts: dict | None = None) -> dict:
    a = make(spec, design, kernel, opts)
    rng = random.Random(seed)
    live = Live(a)
    ops = MmOps(a)
    check(a, opts)
    install_direct_compaction(a)
    contig: list[int] = []
    next_contig = 10_000
    offline_blocks: list[int] = []
    gfps = [GFP_MOVABLE] * 5 + [G.GFP_KERNEL, G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE"), G.GFP_TRANSHUGE]
    blocks = movable_memory_blocks(a)
    for _step in range(steps):
        r = rng.random()
        if r < 0.55:
            for _ in range(rng.randrange(1, 40)):
                if live.blocks and rng.random() < 0.42:
                    live.free_random(rng)
                else:
                    o = rng.choice([0] * 12 + [1, 2, 3, 4, 9])
                    live.alloc(rng.choice(gfps), o)
        elif r < 0.62 and live.blocks:
            h = rng.choice(list(live.blocks))
            pfn, order = live.blocks[h]
            m = migrate_block(a, pfn)
            if not m.ok:
                assert m.reason in ("unmovable", "pinned", "metadata", "nomem")
        elif r < 0.66 and live.blocks:
            h = rng.choice(list(live.blocks))
            a.alloc_state[live.blocks[h][0]] |= AS_PINNED
        elif r < 0.70:
            ops.handle_compact(Compact(order=rng.choice([-1, 3, 9])))
        elif r < 0.80:
            next_contig += 1
            res = ops.handle_contig_alloc(ContigAlloc(next_contig, rng.choice([1, 7, 64, 512, 1000]),
                                                      rng.choice([0, 0, 4, 9]), cma=bool(a.machine.cma_areas)
                                                      and rng.random() < 0.7))
            if res.ok:
                contig.append(next_contig)
                assert a.alloc_state[res.pfn]
            else:
                assert res.blocker_kind
        elif r < 0.86 and contig:
            ops.handle_contig_free(ContigFree(contig.pop(rng.randrange(len(contig)))))
        elif r < 0.93 and blocks:
            b = rng.randrange(len(blocks))
            if b in offline_blocks:
                assert ops.handle_online(Online(block=b)).ok
                offline_blocks.remove(b)
            else:
                res = ops.handle_offline(Offline(block=b))
                if res.ok:
                    offline_blocks.append(b)
                else:
                    assert res.failed_pfn >= 0 and res.blocker_kind
        elif live.blocks:
            live.free_random(rng)
        check(a, opts)
        live.verify()
    for b in offline_blocks:
        assert ops.handle_online(Online(block=b)).ok
    check(a, opts)
    for h in contig:
        ops.handle_contig_free(ContigFree(h))
    for h in list(live.blocks):
        live.free(h)
    a.drain_all_pages()
    check(a, opts)
    # everything returned: free pages (plus the design's own metadata) equal managed pages
    tot = a.totals()
    for z in a.zones:
        assert z.nr_isolate_pageblock == 0
        assert z.free_pages + tot[z.zid]["metadata"] == z.managed, z
    return ops.metrics()


@pytest.mark.parametrize("design,opts", VARIANTS)
@pytest.mark.parametrize("spec", [MOVABLE_SPEC, CMA_SPEC])
def test_random_interleaving(spec: str, design: str, opts: dict) -> None:
    m = _random_run(spec, design, steps=400 if design == "linked" else 200, seed=7, opts=opts)
    assert m["pages_migrated"] >= 0
    assert set(m) >= {"contig_attempted", "cma_attempted", "offline_attempted", "online_attempted",
                      "pages_migrated", "compaction", "blockers_by_kind"}


@pytest.mark.parametrize("spec", [MOVABLE_SPEC, CMA_SPEC])
def test_random_interleaving_kernel_61(spec: str) -> None:
    """6.1 merge rules (no split_large_buddy, no pageblock retyping on merge)."""
    _random_run(spec, "linked", steps=200, seed=13, kernel="6.1")


# ---------------------------------------------------------------------------------------
# CMA
# ---------------------------------------------------------------------------------------
def _fill(live: Live, rng: random.Random, n: int, gfp_choices: list[int], orders: list[int],
          cap: float = 0.6) -> None:
    """n random allocations/frees; frees instead once ``cap`` of managed memory is in use."""
    managed = sum(z.managed for z in live.a.zones)
    used = sum(1 << o for _, o in live.blocks.values())
    for _ in range(n):
        if live.blocks and (rng.random() < 0.3 or used > cap * managed):
            h = rng.choice(list(live.blocks))
            used -= 1 << live.blocks[h][1]
            live.free(h)
        else:
            o = rng.choice(orders)
            if live.alloc(rng.choice(gfp_choices), o) >= 0:
                used += 1 << o


@pytest.mark.parametrize("design,opts", RULE_KEEPING)
def test_cma_usable_for_movable_and_fully_reclaimable(design: str, opts: dict) -> None:
    a = make(CMA_SPEC, design, opts=opts)
    live = Live(a)
    rng = random.Random(3)
    _fill(live, rng, 60_000, [GFP_MOVABLE] * 4 + [G.GFP_KERNEL], [0] * 8 + [1, 2, 3, 9], cap=0.8)
    a.check()
    in_area = [(p, o) for p, o in live.blocks.values() if in_cma(a, p, o)]
    assert in_area, "movable allocations never used the CMA area"
    assert all(a.alloc_state[p] & AS_MOVABLE for p, o in in_area)
    area = cma_areas_of(a)[0]
    before = a.migrate_stats.pgmigrate_success
    r = area.cma_alloc(area.count)
    assert r.ok, (r.failed_pfn, r.blocker_kind, r.reason)
    assert r.pfn == area.base_pfn and r.migrated > 0
    assert a.migrate_stats.pgmigrate_success - before == r.migrated
    a.check()
    live.verify()
    assert not any(in_cma(a, p, o) for p, o in live.blocks.values())
    assert a.zones[1].nr_free_cma == 0
    assert area.cma_release(r.pfn, r.nr)
    a.check()
    assert a.zones[1].nr_free_cma == area.count


def test_cma_alloc_aligned_retry_and_release() -> None:
    a = make(CMA_SPEC)
    area = cma_areas_of(a)[0]
    # an unmovable page in the CMA area cannot exist; pin a movable one instead
    live = Live(a)
    got = []
    while True:
        p = live.alloc(GFP_MOVABLE, 0)
        assert p >= 0
        if in_cma(a, p, 0):
            break
    a.alloc_state[p] |= AS_PINNED
    r = area.cma_alloc(1024, align_order=10)
    assert r.ok and r.pfn % 1024 == 0
    assert not (r.pfn <= p < r.pfn + 1024)
    got.append(r)
    a.check()
    for r in got:
        assert area.cma_release(r.pfn, r.nr)
    assert not area.cma_release(r.pfn, r.nr)  # double release refused
    # the whole area cannot be had while the pin holds
    r2 = area.cma_alloc(area.count)
    assert not r2.ok and r2.failed_pfn == p and r2.blocker_kind == "pinned"
    a.check()


def test_unmovable_never_in_movable_zone_or_cma() -> None:
    for spec in (MOVABLE_SPEC, CMA_SPEC):
        a = make(spec)
        live = Live(a)
        # until the kernel zones are exhausted, for every order and unmovable-ish gfp
        for order in (10, 9, 3, 1, 0):
            for g in (G.GFP_KERNEL, G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE"), G.GFP_ATOMIC):
                while live.alloc(g, order) >= 0:
                    pass
        assert sum(1 << o for _, o in live.blocks.values()) > 0.4 * sum(z.managed for z in a.zones)
        a.check()
        for p, o in live.blocks.values():
            assert a.zone_of(p).ztype != ZoneType.MOVABLE
            assert not in_cma(a, p, o)
            assert a.get_pageblock_migratetype(p) != MIGRATE_CMA


# ---------------------------------------------------------------------------------------
# isolation
# ---------------------------------------------------------------------------------------
def test_isolation_undo_restores_free_lists() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    rng = random.Random(5)
    _fill(live, rng, 8000, [GFP_MOVABLE], [0] * 6 + [1, 3, 9, 10])
    a.drain_all_pages()
    a.check()
    z = movable_zone(a)
    pbn = a.pageblock_nr_pages
    for start, end in [(z.start_pfn + 3 * pbn + 17, z.start_pfn + 9 * pbn - 5),  # straddles
                       (z.start_pfn + pbn, z.start_pfn + 2 * pbn),  # one block, half of an order-10
                       (z.start_pfn, z.start_pfn + 64 * pbn)]:
        snap = free_snapshot(a)
        assert start_isolate_page_range(a, start, end, MIGRATE_MOVABLE) is None
        a.check()
        s0, e0 = start & ~(pbn - 1), -(-end // pbn) * pbn
        assert all(a.pb_mt[b] == MIGRATE_ISOLATE for b in range(s0 // pbn, e0 // pbn))
        assert z.nr_isolate_pageblock == (e0 - s0) // pbn
        iso = a._isolated_free(z)
        assert z.free_pages + iso == snap[1][z.zid][1]
        # isolated pages are not allocatable: nothing lands in the range
        for _ in range(200):
            p = live.alloc(GFP_MOVABLE, 0)
            assert p < 0 or not (s0 <= p < e0)
        for h in list(live.blocks)[-200:]:
            live.free(h)
        a.drain_all_pages()
        undo_isolate_page_range(a, start, end, MIGRATE_MOVABLE)
        a.check()
        assert free_snapshot(a) == snap


def test_isolation_refuses_unmovable_in_kernel_zone_and_test_pages_isolated() -> None:
    a = make(CMA_SPEC)
    live = Live(a)
    p = live.alloc(G.GFP_KERNEL, 0)
    pbn = a.pageblock_nr_pages
    s = p & ~(pbn - 1)
    a.drain_all_pages()
    snap = free_snapshot(a)
    f = start_isolate_page_range(a, s, s + pbn, MIGRATE_MOVABLE)
    assert f is not None and f.pfn == p and f.kind == "unmovable"
    a.check()
    assert free_snapshot(a) == snap
    # a CMA pageblock is unmovable unless isolating for CMA
    cs = a.machine.cma_areas[0][0]
    f = start_isolate_page_range(a, cs, cs + pbn, MIGRATE_MOVABLE)
    assert f is not None and f.kind == "cma"
    assert start_isolate_page_range(a, cs, cs + pbn, MIGRATE_CMA) is None
    assert page_isolation.test_pages_isolated(a, cs, cs + pbn) is None
    a.check()
    undo_isolate_page_range(a, cs, cs + pbn, MIGRATE_CMA)
    a.check()
    assert a.get_pageblock_migratetype(cs) == MIGRATE_CMA


# ---------------------------------------------------------------------------------------
# alloc_contig_range
# ---------------------------------------------------------------------------------------
def test_alloc_contig_range_unaligned_and_free() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    rng = random.Random(11)
    _fill(live, rng, 20_000, [GFP_MOVABLE] * 3 + [G.GFP_KERNEL], [0] * 6 + [1, 2, 9])
    a.check()
    z = movable_zone(a)
    start = z.start_pfn + 1234
    end = start + 3000
    r = alloc_contig_range(a, start, end)
    assert r.ok, (hex(r.failed_pfn), r.blocker_kind, r.reason)
    assert r.chunks == contig_chunks(start, end)
    a.check()
    live.verify()
    assert not any(start <= p < end or start < p + (1 << o) <= end for p, o in live.blocks.values())
    free_contig_range(a, start, end - start)
    a.drain_all_pages()
    a.check()


def test_alloc_contig_range_reports_first_blocker() -> None:
    a = make(CMA_SPEC)
    live = Live(a)
    pins = []
    for _ in range(3000):
        live.alloc(GFP_MOVABLE, 0)
    k = live.alloc(G.GFP_KERNEL, 0)
    a.check()
    # a range in the kernel zone holding the unmovable page
    pbn = a.pageblock_nr_pages
    s = k & ~(pbn - 1)
    r = alloc_contig_range(a, s, s + pbn)
    assert not r.ok and r.failed_pfn == k and r.blocker_kind == "unmovable" and r.reason == "isolate"
    a.check()
    # metadata: a page recorded as allocator metadata in the CMA area (as a broken design
    # might put it), isolating for CMA passes has_unmovable_pages, migration refuses
    cs, ce = a.machine.cma_areas[0]
    free_p = next(p for p in range(cs, ce) if a.isolate_free_page(p, 0))
    a.mark_allocated(free_p, 0, kind="meta:radix-node")
    a.design.meta_kind = lambda pfn: "radix-node"  # a design hook, on the instance
    r = alloc_contig_range(a, cs, ce, MIGRATE_CMA)
    assert not r.ok and r.failed_pfn == free_p and r.blocker_kind == "metadata:radix-node"
    a.check()
    pins.append(free_p)
    a.free_pages(free_p, 0)
    r = alloc_contig_range(a, cs, ce, MIGRATE_CMA)
    assert r.ok
    a.check()
    free_contig_range(a, cs, ce - cs)
    a.check()


# ---------------------------------------------------------------------------------------
# offline / online
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("design,opts", RULE_KEEPING)
def test_offline_movable_block_then_online(design: str, opts: dict) -> None:
    a = make(MOVABLE_SPEC, design, opts=opts)
    live = Live(a)
    rng = random.Random(2)
    _fill(live, rng, 6000, [GFP_MOVABLE], [0] * 6 + [1, 3, 9])
    blocks = movable_memory_blocks(a)
    assert len(blocks) >= 2
    start, nr = blocks[-1]
    inside = [h for h, (p, o) in live.blocks.items() if start <= p < start + nr]
    assert inside, "workload did not reach the block"
    z = movable_zone(a)
    managed, reserved, wmin = z.managed, z.reserved, z.watermark[0]
    r = offline_pages(a, start, nr)
    assert r.ok, (hex(r.failed_pfn), r.blocker_kind, r.reason)
    assert r.migrated > 0
    a.check()
    live.verify()
    assert all(not (start <= live.blocks[h][0] < start + nr) for h in inside)
    assert z.managed == managed - nr and z.reserved == reserved + nr
    assert z.watermark[0] <= wmin
    assert a.reserved_np[start:start + nr].all()
    # offline memory is not allocatable
    for _ in range(500):
        p = live.alloc(GFP_MOVABLE, 0)
        assert p < 0 or not (start <= p < start + nr)
    a.check()
    assert not offline_pages(a, start, nr).ok  # already offline
    r = online_pages(a, start, nr)
    assert r.ok
    a.check()
    assert z.managed == managed and z.reserved == reserved
    assert not a.reserved_np[start:start + nr].any()
    ns = a.design.numpy_state()
    if "reserved_mask" in ns:
        assert not ns["reserved_mask"][start:start + nr].any()
    for h in list(live.blocks):
        live.free(h)
    a.drain_all_pages()
    a.check()
    assert z.free_pages + a.totals()[z.zid]["metadata"] == z.managed


@pytest.mark.parametrize("what", ["pinned", "metadata"])
def test_offline_fails_naming_the_blocker(what: str) -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    start, nr = movable_memory_blocks(a)[-1]
    victim = -1
    if what == "pinned":
        while victim < 0:
            p = live.alloc(GFP_MOVABLE, 0)
            assert p >= 0
            if start <= p < start + nr:
                victim = p
        a.alloc_state[victim] |= AS_PINNED
        want = "pinned"
    else:
        victim = start + nr // 2 + 3
        assert a.isolate_free_page(victim, 0)
        a.mark_allocated(victim, 0, kind="meta:slab")
        want = "metadata"
    a.check()
    snap = free_snapshot(a)
    r = offline_pages(a, start, nr)
    assert not r.ok and r.failed_pfn == victim and r.blocker_kind == want
    a.check()
    if what == "metadata":
        # nothing was migrated: isolation refused, the free lists are exactly as before
        assert r.reason == "isolate" and free_snapshot(a) == snap
    z = movable_zone(a)
    assert z.nr_isolate_pageblock == 0 and not a.reserved_np[start:start + nr].any()


def test_mmops_whole_machine_questions() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    rng = random.Random(9)
    _fill(live, rng, 5000, [GFP_MOVABLE] * 3 + [G.GFP_KERNEL], [0] * 6 + [1, 3])
    ops = MmOps(a)
    res = ops.offline_all_movable()
    assert res["ok"], res
    a.check()
    assert ops.cma_alloc_all()["ok"] is False  # no CMA on this machine
    # pin one movable page in ZONE_MOVABLE: now it must fail, naming it
    bs, bn = movable_memory_blocks(a)[0]
    p = next(p for p in range(bs + 5, bs + bn) if a.isolate_free_page(p, 0))
    a.mark_allocated(p, 0, "anon", movable=True)
    live.adopt(p, 0)
    a.alloc_state[p] |= AS_PINNED
    res = ops.offline_all_movable()
    assert not res["ok"] and any(f["pfn"] == p and f["kind"] == "pinned" for f in res["failures"])
    a.check()
    m = ops.metrics()
    assert m["offline_attempted"] == 2 * len(movable_memory_blocks(a))
    assert m["online_succeeded"] == m["offline_succeeded"]
    assert m["blockers_by_kind"].get("pinned") == 1
    b = MmOps(make(CMA_SPEC))
    assert b.cma_alloc_all()["ok"]
    b.alloc.check()


# ---------------------------------------------------------------------------------------
# migration and compaction
# ---------------------------------------------------------------------------------------
def test_migrate_refusals_and_design_hooks() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    k = live.alloc(G.GFP_KERNEL, 0)
    m = live.alloc(GFP_MOVABLE, 2)
    assert migrate_block(a, k).reason == "unmovable"
    a.alloc_state[m] |= AS_PINNED
    assert migrate_block(a, m).reason == "pinned"
    a.alloc_state[m] &= ~AS_PINNED
    r = migrate_block(a, m)
    assert r.ok and r.new_pfn != m and live.blocks[live.by_pfn[r.new_pfn]] == (r.new_pfn, 2)
    a.check()
    meta = a.alloc_pages(G.GFP_KERNEL, 0, kind="meta:radix")
    r = migrate_block(a, meta)
    assert not r.ok and r.reason == "metadata" and r.kind == "metadata"
    # relocate_meta: the design moves its own metadata page
    moved = {}

    def relocate(pfn: int) -> int:
        new = a.alloc_pages(G.GFP_KERNEL, 0, kind="meta:radix")
        a.free_pages(pfn, 0)
        moved[pfn] = new
        return new

    a.design.relocate_meta = relocate
    a.design.relocates_meta = True
    r = migrate_block(a, meta)
    assert r.ok and moved == {meta: r.new_pfn}
    del a.design.relocate_meta
    del a.design.relocates_meta
    # kind_of: the new block's descriptor kind comes from the design
    calls = []
    a.design.kind_of = lambda pfn: calls.append(pfn) or "file"
    pfn, o = next((p, oo) for p, oo in live.blocks.values() if a.alloc_state[p] & AS_MOVABLE)
    r = migrate_block(a, pfn)
    assert r.ok and calls == [pfn]
    del a.design.kind_of
    a.check()


def _checkerboard(a: PageAllocator, live: Live, z, movable: bool) -> None:
    """Every free page of the zone allocated as an order-0 block, then every
    even pfn freed again: half the zone free, no free block above order 0."""
    a.drain_all_pages()
    blocks = []
    for o in range(NR_PAGE_ORDERS):
        for mt in range(MIGRATE_TYPES):
            blocks += [(p, o) for p in a.design.list_pfns(list_id(z.zid, o, mt))]
    pages = []
    for head, o in blocks:
        assert a.isolate_free_page(head, o)
        for p in range(head, head + (1 << o)):
            a.mark_allocated(p, 0, "anon" if movable else "misc", movable=movable)
            live.adopt(p, 0)
            pages.append(p)
    for p in pages:
        if p % 2 == 0:
            live.free(live.by_pfn[p])
    a.drain_all_pages()


def test_compaction_defragments_movable_zone() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    z = movable_zone(a)
    _checkerboard(a, live, z, movable=True)
    a.check()
    assert all(z.nr_free[o] == 0 for o in range(1, NR_PAGE_ORDERS))
    assert fragmentation_index(z, 9) > 500
    r = compact_zone(a, z, order=9)
    assert r.success and r.status == "success"
    assert r.pages_migrated > 0 and r.pages_scanned > 0 and r.free_scanned > 0
    a.check()
    live.verify()
    assert any(z.nr_free[o] for o in (9, 10))
    rs = compact_memory(a)
    a.check()
    live.verify()
    assert sum(z.nr_free[o] << o for o in (9, 10)) > 0.25 * z.free_pages
    assert a.compact_stats.runs == 1 + len(rs)


def test_direct_compaction_on_failed_high_order_allocation() -> None:
    a = make(MOVABLE_SPEC)
    live = Live(a)
    for z in a.zones:
        if z.populated:
            _checkerboard(a, live, z, movable=z.ztype == ZoneType.MOVABLE)
    a.check()
    assert a.alloc_pages(GFP_MOVABLE, 9) < 0
    stats = install_direct_compaction(a)
    p = live.alloc(GFP_MOVABLE, 9)
    assert p >= 0
    assert stats.stall >= 1 and stats.pages_migrated > 0
    a.check()
    live.verify()


def test_mmops_event_handlers() -> None:
    a = make(CMA_SPEC)
    ops = MmOps(a)
    r = ops.handle_contig_alloc(ContigAlloc(1, 2048, 9, cma=True))
    assert r.ok and r.pfn % 512 == 0
    r2 = ops.handle_contig_alloc(ContigAlloc(2, 100, 0, cma=False))
    assert r2.ok
    a.check()
    with pytest.raises(ValueError):
        ops.handle_contig_alloc(ContigAlloc(1, 1))
    assert ops.handle_contig_free(ContigFree(1)) and ops.handle_contig_free(ContigFree(2))
    assert not ops.handle_contig_free(ContigFree(2))
    res = ops.handle_compact(Compact(zone="DMA32"))
    assert len(res) == 1
    r = ops.handle_offline(Offline(block=0))  # no ZONE_MOVABLE here
    assert not r.ok and r.blocker_kind == "no-block"
    a.check()
    m = ops.metrics()
    assert m["cma_succeeded"] == 1 and m["contig_succeeded"] == 1 and m["offline_failed"] == 1
    assert m["cma_success_rate"] == 1.0
    assert np.isclose(m["contig_success_rate"], 1.0)
    assert m["compaction"]["runs"] == 1


def test_free_list_ids_sane() -> None:
    """split_list_id is the inverse the snapshots rely on."""
    assert split_list_id(list_id(2, 9, MIGRATE_CMA)) == (2, 9, MIGRATE_CMA)
