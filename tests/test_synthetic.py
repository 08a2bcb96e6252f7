"""Synthetic workload profiles and TOML workload specs: stream contract and properties."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from memdesc.mm import gfp as G
from memdesc.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from memdesc.workloads.events import Alloc, ContigAlloc, ContigFree, Free, Mark
from memdesc.workloads.spec import (
    SpecError,
    load_workload_spec,
    phase_ops,
    spec_events,
)
from memdesc.workloads.synthetic import (
    PROFILES,
    SyntheticError,
    list_profiles,
    synthetic_events,
)

SMALL = 1 << 16  # 256 MiB: small enough that waves, reclaim and caps are reached
BIG = 4 << 20  # 16 GiB


def check_stream(events, ops: int) -> dict:
    """Assert the stream contract; return live handles -> order and op statistics."""
    live: dict[int, int] = {}
    contig: set[int] = set()
    seen: set[int] = set()
    n_ops = 0
    for ev in events:
        t = type(ev)
        if t is Alloc:
            assert ev.handle not in seen, f"handle {ev.handle} reused"
            seen.add(ev.handle)
            live[ev.handle] = ev.order
            n_ops += 1
        elif t is Free:
            assert ev.handle in live, f"free of non-live handle {ev.handle}"
            assert ev.order in (-1, live[ev.handle])
            del live[ev.handle]
            n_ops += 1
        elif t is ContigAlloc:
            assert ev.handle not in seen
            seen.add(ev.handle)
            contig.add(ev.handle)
        elif t is ContigFree:
            contig.remove(ev.handle)
    assert n_ops == ops
    return {"live": live, "contig": contig, "handles": seen}


def allocs(events) -> list[Alloc]:
    return [e for e in events if type(e) is Alloc]


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("total", [SMALL, BIG])
def test_contract_and_valid_gfp(name: str, total: int) -> None:
    evs = list(synthetic_events(name, 30_000, 3, total))
    check_stream(evs, 30_000)
    for a in allocs(evs):
        G.validate_gfp(a.gfp)
        assert 0 <= a.order <= 10
        assert a.kind in (None, "anon", "file", "slab", "pgtable", "vmalloc", "misc")


@pytest.mark.parametrize("name", list(PROFILES))
def test_deterministic(name: str) -> None:
    a = list(synthetic_events(name, 5000, 11, SMALL))
    b = list(synthetic_events(name, 5000, 11, SMALL))
    c = list(synthetic_events(name, 5000, 12, SMALL))
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("ops", [0, 1, 7, 1000, 20_001])
def test_exact_op_count(name: str, ops: int) -> None:
    check_stream(synthetic_events(name, ops, 1, SMALL), ops)


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("ops", [10_000, 10_001])
def test_drain_at_end(name: str, ops: int) -> None:
    st = check_stream(synthetic_events(name, ops, 5, SMALL, {"drain_at_end": True}), ops)
    assert len(st["live"]) == ops % 2  # odd ops: one handle must stay live
    assert not st["contig"]


@pytest.mark.parametrize("name", list(PROFILES))
def test_live_handles_remain_by_default(name: str) -> None:
    st = check_stream(synthetic_events(name, 10_000, 5, SMALL), 10_000)
    assert st["live"]


@pytest.mark.parametrize("name", list(PROFILES))
def test_lazy(name: str) -> None:
    first = list(itertools.islice(synthetic_events(name, 10**9, 1, BIG), 10))
    assert len(first) == 10


def test_first_handle_offset() -> None:
    evs = list(synthetic_events("cma", 20_000, 1, SMALL, {"contig_every": 100}, first_handle=1000))
    st = check_stream(evs, 20_000)
    assert min(st["handles"]) >= 1000
    assert max(st["handles"]) < 1000 + 2 * 20_000 + 2


def test_occupancy_bounded() -> None:
    for name in PROFILES:
        pages = 0
        live: dict[int, int] = {}
        for ev in synthetic_events(name, 50_000, 2, SMALL):
            if type(ev) is Alloc:
                live[ev.handle] = 1 << ev.order
                pages += live[ev.handle]
            elif type(ev) is Free:
                pages -= live.pop(ev.handle)
            assert pages <= SMALL + 1024, name


def test_mixed_distribution() -> None:
    a = allocs(synthetic_events("mixed", 200_000, 1, BIG))
    orders = Counter(x.order for x in a)
    assert orders[0] / len(a) > 0.7
    assert orders[9] > 0 and sum(orders[o] for o in range(4, 11) if o != 9) > 0
    gfps = {x.gfp for x in a}
    for mask in (G.GFP_HIGHUSER_MOVABLE, G.GFP_ATOMIC, G.GFP_TRANSHUGE, G.GFP_TRANSHUGE_LIGHT):
        assert mask in gfps
    mts = Counter(G.gfp_migratetype(g) for g in (x.gfp for x in a))
    assert mts[MIGRATE_MOVABLE] and mts[MIGRATE_UNMOVABLE] and mts[MIGRATE_RECLAIMABLE]
    assert any(g & G.GFP_DMA32 for g in gfps) and any(g & G.GFP_DMA for g in gfps)
    assert any(g & G.__GFP_ACCOUNT for g in gfps)
    kinds = {x.kind for x in a}
    assert {"anon", "file", "slab", "pgtable", "vmalloc", "misc", None} <= kinds


def test_anon_thp() -> None:
    a = allocs(synthetic_events("anon-thp", 20_000, 1, BIG, {"thp_ratio": 0.3}))
    orders = Counter(x.order for x in a)
    assert set(orders) == {0, 9}
    assert 0.2 < orders[9] / len(a) < 0.4
    assert all(x.kind == "anon" for x in a)
    assert all(x.gfp in (G.GFP_TRANSHUGE, G.GFP_TRANSHUGE_LIGHT) for x in a if x.order == 9)
    none = allocs(synthetic_events("anon-thp", 5000, 1, BIG, {"thp_ratio": 0.0}))
    assert all(x.order == 0 for x in none)


def test_slab_churn_never_movable() -> None:
    a = allocs(synthetic_events("slab-churn", 30_000, 1, SMALL))
    assert all(G.gfp_migratetype(x.gfp) != MIGRATE_MOVABLE for x in a)
    assert {x.order for x in a} == {0, 1, 2, 3}
    assert {G.gfp_migratetype(x.gfp) for x in a} == {MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE}
    assert all(x.kind == "slab" for x in a)


def test_network_atomic() -> None:
    evs = list(synthetic_events("network-atomic", 30_000, 1, BIG, {"cpus": 8}))
    a = allocs(evs)
    atomic = [x for x in a if x.gfp & G.GFP_ATOMIC == G.GFP_ATOMIC]
    assert len(atomic) > len(a) / 2
    assert {x.order for x in atomic} >= {0, 2, 3}
    assert any(x.gfp == G.GFP_KERNEL for x in a)
    assert {x.cpu for x in a} == set(range(8))
    assert all(x.kind == "misc" for x in a)
    frees = [e for e in evs if type(e) is Free]
    assert {f.cpu for f in frees} == set(range(8))


def test_cma_emits_contig() -> None:
    evs = list(synthetic_events("cma", 50_000, 1, SMALL, {"contig_every": 1000}))
    ca = [e for e in evs if type(e) is ContigAlloc]
    assert len(ca) == 49  # at ops 1000, 2000, ..., 49000
    assert all(e.cma and 16 <= e.nr_pages <= 1024 and e.nr_pages & (e.nr_pages - 1) == 0 for e in ca)
    assert all(e.align_order <= 8 for e in ca)
    assert any(type(e) is ContigFree for e in evs)
    assert all(G.gfp_migratetype(x.gfp) == MIGRATE_MOVABLE for x in allocs(evs))


def test_pagecache_reclaim_waves() -> None:
    evs = list(synthetic_events("pagecache", 50_000, 1, SMALL, {"readahead_max_order": 5}))
    a = allocs(evs)
    assert {x.order for x in a} == set(range(6))
    assert all(x.kind == "file" and G.gfp_migratetype(x.gfp) == MIGRATE_MOVABLE for x in a)
    # A reclaim wave: a long run of consecutive frees of the oldest folios.
    run = best = 0
    for e in evs:
        run = run + 1 if type(e) is Free else 0
        best = max(best, run)
    assert best > 100


def test_fork_exec_groups() -> None:
    evs = list(synthetic_events("fork-exec", 30_000, 1, SMALL))
    a = allocs(evs)
    kinds = Counter(x.kind for x in a)
    assert kinds["pgtable"] and kinds["anon"] and kinds["misc"]
    assert all(x.gfp == G.GFP_KERNEL_ACCOUNT | G.__GFP_ZERO for x in a if x.kind == "pgtable")
    assert all(x.order == 2 for x in a if x.kind == "misc")
    assert sum(type(e) is Free for e in evs) > 1000
    vm = allocs(synthetic_events("fork-exec", 5000, 1, SMALL, {"vmap_stack": True}))
    assert any(x.kind == "vmalloc" for x in vm) and not any(x.order == 2 for x in vm)


def test_kernel_61_atomic() -> None:
    a61 = allocs(synthetic_events("network-atomic", 5000, 1, SMALL, {"kernel": "6.1"}))
    a619 = allocs(synthetic_events("network-atomic", 5000, 1, SMALL))
    assert any(x.gfp == G.GFP_ATOMIC_61 for x in a61) and not any(x.gfp & G.__GFP_ATOMIC for x in a619)
    for x in a61:
        G.validate_gfp(x.gfp, "6.1")
    with pytest.raises(SyntheticError, match="kernel"):
        synthetic_events("mixed", 10, 1, SMALL, {"kernel": "5.4"})


def test_list_profiles() -> None:
    names = [n for n, _ in list_profiles()]
    assert names == list(PROFILES)
    want = {"mixed", "pagecache", "anon-thp", "slab-churn", "network-atomic", "fork-exec", "cma"}
    assert want <= set(names)
    assert all(desc and PROFILES[n].gen.__doc__ for n, desc in list_profiles())


def test_bad_params() -> None:
    with pytest.raises(SyntheticError, match="unknown profile"):
        synthetic_events("nope", 10, 1, SMALL)
    with pytest.raises(SyntheticError, match="bogus"):
        synthetic_events("mixed", 10, 1, SMALL, {"bogus": 1})
    with pytest.raises(SyntheticError, match="thp_ratio: expected float"):
        synthetic_events("anon-thp", 10, 1, SMALL, {"thp_ratio": "x"})
    with pytest.raises(SyntheticError, match="drain_at_end: expected bool"):
        synthetic_events("mixed", 10, 1, SMALL, {"drain_at_end": 1})
    with pytest.raises(SyntheticError, match="cpus"):
        synthetic_events("mixed", 10, 1, SMALL, {"cpus": 0})
    # An int is fine where a float is expected.
    check_stream(synthetic_events("anon-thp", 100, 1, SMALL, {"thp_ratio": 1}), 100)


# --- TOML specs --------------------------------------------------------------------

GOOD = """
[workload]
name = "my-box"
seed = 7
ops = 20000

[[phase]]
profile = "pagecache"
ops = 8000
params = { readahead_max_order = 4 }

[[phase]]
name = "churn"
mix = [{profile = "slab-churn", weight = 1}, {profile = "network-atomic", weight = 2, params = {cpus = 2}}]

[[phase]]
profile = "cma"
weight = 0.5
params = { contig_every = 500 }
"""


def write(tmp_path, text: str, name: str = "w.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_spec_good(tmp_path) -> None:
    spec = load_workload_spec(write(tmp_path, GOOD))
    assert spec.name == "my-box" and spec.seed == 7 and len(spec.phases) == 3
    assert phase_ops(spec) == [8000, 8000, 4000]
    evs = list(spec_events(spec, SMALL))
    check_stream(evs, 20_000)
    marks = [e for e in evs if type(e) is Mark]
    assert [m.text for m in marks] == ["phase 0: pagecache", "phase 1: churn", "phase 2: cma"]
    assert evs == list(spec_events(spec, SMALL))
    assert evs != list(spec_events(spec, SMALL, seed_override=8))
    # The mix interleaves both members, in about a 1:2 ratio.
    i0, i1, i2 = (evs.index(m) for m in marks)
    mix = allocs(evs[i1:i2])
    slab = sum(x.kind == "slab" for x in mix)
    net = sum(x.kind == "misc" for x in mix)
    assert slab and net and 1.3 < net / slab < 3
    kinds_seq = [x.kind for x in mix[:200]]
    assert "slab" in kinds_seq and "misc" in kinds_seq
    assert any(type(e) is ContigAlloc for e in evs[i2:])


def test_spec_overrides(tmp_path) -> None:
    spec = load_workload_spec(write(tmp_path, GOOD))
    assert phase_ops(spec, 1000) == [400, 400, 200]
    check_stream(spec_events(spec, SMALL, ops_override=1000), 1000)
    first = list(itertools.islice(spec_events(spec, BIG, ops_override=10**9), 20))
    assert len(first) == 20


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[phase]]\nprofile = "nope"\nops = 5\n', r"phase\[0\]\.profile: unknown profile 'nope'"),
        ('[[phase]]\nprofile = "mixed"\nops = 5\nparams = {bogus = 1}\n', r"phase\[0\]\.params\.bogus"),
        (
            '[[phase]]\nmix = [{profile = "mixed", params = {thp_weight = "x"}}]\nops = 5\n',
            r"phase\[0\]\.mix\[0\]\.params\.thp_weight: expected float",
        ),
        ('[[phase]]\nprofile = "mixed"\nops = "5"\n', r"phase\[0\]\.ops: expected int"),
        ('[workload]\nseed = 1.5\n[[phase]]\nprofile = "mixed"\nops = 5\n', r"workload\.seed: expected int"),
        ('[workload]\nname = "x"\n', "at least one"),
        ('[[phase]]\nprofile = "mixed"\n', r"workload\.ops: required"),
        ('[[phase]]\nprofile = "mixed"\nmix = []\nops = 1\n', "exactly one of"),
        ('[[phase]]\nprofile = "mixed"\nops = 1\ncolour = 1\n', r"phase\[0\]\.colour: unknown key"),
        ('[workload]\nops = 5\n[[phase]]\nprofile = "mixed"\nops = 9\n', "less than"),
        ('[[phase]]\nprofile = "mixed"\nops = 1\nweight = 0\n', r"weight: must be > 0"),
        ("[[phase]\n", "invalid TOML"),
    ],
)
def test_spec_bad(tmp_path, text: str, match: str) -> None:
    path = write(tmp_path, text, "bad-spec.toml")
    with pytest.raises(SpecError, match=match) as info:
        load_workload_spec(path)
    assert "bad-spec.toml" in str(info.value)


def test_spec_missing_file(tmp_path) -> None:
    with pytest.raises(SpecError, match="missing.toml"):
        load_workload_spec(tmp_path / "missing.toml")
