"""memdesc.mm.vmstat: /proc formats byte-exact against real kernel files, model output
structure, fragmentation indices (mm/vmstat.c)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import vmstat as V
from memdesc.mm.page_alloc import PageAllocator

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
TRACE_DIRS = sorted(d for d in TRACES.iterdir() if d.is_dir()) if TRACES.is_dir() else []
REAL = [(d, ph) for d in TRACE_DIRS for ph in ("start", "end")]
needs_traces = pytest.mark.skipif(not TRACE_DIRS, reason="no real traces in shared/traces")


def _ids(cases: list[tuple[Path, str]]) -> list[str]:
    return [f"{d.name}-{ph}" for d, ph in cases]


@cache
def _alloc(name: str, kernel: str = "6.1") -> PageAllocator:
    m = parse_machine(f"zoneinfo:{TRACES / name / 'zoneinfo-start.txt'}")
    return new_allocator(m, kernel=kernel)


def _keys(text: str) -> list[str]:
    """Line skeleton: numbers (and the padding before them) collapsed, so two files
    compare by layout: same lines, same labels, same order."""
    return [re.sub(r"[\s>]*-?\d+", "#", line) for line in text.splitlines()]


# --- real files: parse + re-render byte for byte -------------------------------------
@needs_traces
@pytest.mark.parametrize("d,ph", REAL, ids=_ids(REAL))
def test_buddyinfo_roundtrip(d: Path, ph: str) -> None:
    text = (d / f"buddyinfo-{ph}.txt").read_text()
    parsed = V.parse_buddyinfo(text)
    assert parsed and all(len(v) == 11 for v in parsed.values())
    assert V.render_buddyinfo((nid, z, c) for (nid, z), c in parsed.items()) == text


@needs_traces
@pytest.mark.parametrize("d,ph", REAL, ids=_ids(REAL))
def test_pagetypeinfo_roundtrip(d: Path, ph: str) -> None:
    text = (d / f"pagetypeinfo-{ph}.txt").read_text()
    p = V.parse_pagetypeinfo(text)
    assert p["pageblock_order"] == 9
    cma = "cma" in d.name
    assert tuple(p["migratetypes"]) == tuple(n for _, n in V.kernel_migratetypes(cma))
    # free table sums agree with buddyinfo (same snapshot)
    bi = V.parse_buddyinfo((d / f"buddyinfo-{ph}.txt").read_text())
    for (nid, zone), counts in bi.items():
        sums = [sum(p["free"][(nid, zone, mt)][o] for mt in p["migratetypes"]) for o in range(11)]
        assert sums == counts, (nid, zone)
    assert V.render_pagetypeinfo(p["pageblock_order"], p["migratetypes"], p["free"], p["blocks"]) == text


@needs_traces
@pytest.mark.parametrize("d,ph", REAL, ids=_ids(REAL))
def test_zoneinfo_roundtrip(d: Path, ph: str) -> None:
    text = (d / f"zoneinfo-{ph}.txt").read_text()
    z = V.parse_zoneinfo(text)
    dma = z[(0, "DMA")]
    assert "per-node stats" in dma and dma["start_pfn"] == 1
    assert dma["nr_free_pages"] == dma["pages free"]
    assert len(dma["protection"]) == (4 if d.name.startswith("i386") else 5)
    assert V.render_zoneinfo(z) == text


def test_pagetypeinfo_cap_and_parse() -> None:
    text = V.render_pagetypeinfo(9, ["Unmovable", "Movable"], {(0, "Normal", "Movable"): [100000, 3]},
                                 {(0, "Normal"): {"Movable": 5}}, nr_orders=2)
    assert "type      Movable >100000      3 \n" in text
    assert text.startswith("Page block order: 9\nPages per block:  512\n\n")
    p = V.parse_pagetypeinfo(text)
    assert p["free"][(0, "Normal", "Movable")] == [100000, 3]
    assert p["blocks"][(0, "Normal")] == {"Unmovable": 0, "Movable": 5}


# --- the model's output --------------------------------------------------------------
@needs_traces
def test_model_buddyinfo_pagetypeinfo_plain() -> None:
    a = _alloc("x86_64-2g-plain-s1")
    real_b = V.parse_buddyinfo((TRACES / "x86_64-2g-plain-s1" / "buddyinfo-start.txt").read_text())
    b = V.parse_buddyinfo(V.buddyinfo(a))
    assert list(b) == list(real_b)
    for z in a.zones:
        if z.present:
            assert b[(z.nid, z.name)] == z.nr_free
            assert sum(c << o for o, c in enumerate(z.nr_free)) == z.free_pages
    real_p = V.parse_pagetypeinfo((TRACES / "x86_64-2g-plain-s1" / "pagetypeinfo-start.txt").read_text())
    text = V.pagetypeinfo(a)
    p = V.parse_pagetypeinfo(text)
    assert p["migratetypes"] == real_p["migratetypes"]  # no CMA column without CONFIG_CMA
    assert list(p["free"]) == list(real_p["free"])
    assert list(p["blocks"]) == list(real_p["blocks"])
    for key, counts in p["blocks"].items():  # same pageblock totals per zone as the real kernel
        assert sum(counts.values()) == sum(real_p["blocks"][key].values())
    assert _keys(text) == _keys((TRACES / "x86_64-2g-plain-s1" / "pagetypeinfo-start.txt").read_text())


@needs_traces
def test_model_pagetypeinfo_cma_columns() -> None:
    a = _alloc("x86_64-2g-cma64m-s1")
    p = V.parse_pagetypeinfo(V.pagetypeinfo(a))
    assert p["migratetypes"] == ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"]
    real = V.parse_pagetypeinfo((TRACES / "x86_64-2g-cma64m-s1" / "pagetypeinfo-start.txt").read_text())
    assert p["blocks"][(0, "DMA32")]["CMA"] == real["blocks"][(0, "DMA32")]["CMA"] == 32


@needs_traces
def test_model_blockcount_unaligned_start_and_holes() -> None:
    a = new_allocator(parse_machine(f"zoneinfo:{TRACES / 'x86_64-2g-plain-s1' / 'zoneinfo-start.txt'}"),
                      kernel="6.1")
    dma = next(z for z in a.zones if z.name == "DMA")
    assert dma.start_pfn == 1
    assert sum(V.pageblock_counts(a, dma).values()) == 8  # pfn 1, 513, ..., 3585
    a.present_mask[513] = False  # a stepped pfn in a hole is skipped (no online memmap)
    assert sum(V.pageblock_counts(a, dma).values()) == 7


@needs_traces
@pytest.mark.parametrize("name", ["x86_64-2g-plain-s1", "x86_64-2g-movable50-s1", "i386-pae-2g-highmem-s1"])
def test_model_zoneinfo_structure(name: str) -> None:
    a = _alloc(name)
    real_text = (TRACES / name / "zoneinfo-start.txt").read_text()
    text = V.zoneinfo(a)
    assert V.render_zoneinfo(V.parse_zoneinfo(text)) == text
    assert _keys(text) == _keys(real_text)  # same lines, same keys, same order
    z, real = V.parse_zoneinfo(text), V.parse_zoneinfo(real_text)
    assert list(z) == list(real)
    for key, r in real.items():
        for f in ("spanned", "present", "cma") + (("managed",) if "plain" in name else ()):
            assert z[key][f] == r[f], (key, f)
        assert len(z[key]["protection"]) == len(r["protection"])
        if "start_pfn" in r:
            assert z[key]["start_pfn"] == r["start_pfn"]
            assert [p["threshold"] for p in z[key]["pagesets"]] == [p["threshold"] for p in r["pagesets"]]
            assert z[key]["nr_free_pages"] == z[key]["pages free"]
    if name == "x86_64-2g-plain-s1":  # same managed pages -> same lowmem_reserve incl. Device column
        for key, r in real.items():
            assert z[key]["protection"] == r["protection"], key
        assert z[(0, "DMA")]["protection"] == (0, 1951, 1951, 1951, 1951)


@needs_traces
def test_model_zoneinfo_619_fields() -> None:
    a = _alloc("x86_64-2g-plain-s1", "6.19")
    text = V.zoneinfo(a)
    z = V.parse_zoneinfo(text)[(0, "DMA32")]
    assert "promo" in z and z["promo"] >= z["high"]
    assert {"high_min", "high_max"} <= set(z["pagesets"][0])
    assert "reserved_highatomic" in z and "free_highatomic" in z
    assert "nr_free_pages_blocks" in z
    assert "\n        promo    " in text and "\n              count:    " in text
    assert V.render_zoneinfo(V.parse_zoneinfo(text)) == text


@needs_traces
def test_model_fragmentation_renderers() -> None:
    a = _alloc("x86_64-2g-plain-s1")
    for text in (V.extfrag_index(a), V.unusable_index(a)):
        lines = text.splitlines()
        assert [ln[:21] for ln in lines] == ["Node 0, zone      DMA", "Node 0, zone    DMA32"]
        assert all(len(ln.split()) == 4 + 11 for ln in lines)
    s = V.fragmentation_summary(a)
    assert set(s) == {"0:DMA", "0:DMA32"}
    assert all(len(v["unusable_index"]) == 11 for v in s.values())
    assert all(0.0 <= x <= 1.0 for v in s.values() for x in v["unusable_index"])


# --- fragmentation arithmetic (hand-computed) ----------------------------------------
def _c(*head: int) -> list[int]:
    return list(head) + [0] * (11 - len(head))


def test_contig_page_info() -> None:
    info = V.fill_contig_page_info(_c(10, 5, 0, 1), 2)
    assert info == V.ContigPageInfo(free_pages=28, free_blocks_total=16, free_blocks_suitable=2)


@pytest.mark.parametrize("counts,order,frag,unusable,pct", [
    (_c(), 0, 0, 1000, 0),                 # nothing free
    (_c(1), 0, -1000, 0, 0),                # a suitable block exists
    (_c(1), 1, -500, 1000, 100),            # 1 - (1 + 1/2)/1: negative, as in C
    (_c(4), 2, 500, 1000, 100),             # 1 - (1 + 4/4)/4
    (_c(0, 0, 2), 3, 0, 1000, 100),         # 1 - (1 + 8/8)/2: lack of memory
    (_c(0, 0, 2), 4, 250, 1000, 100),       # 1 - (1 + 8/16)/2
    (_c(0, 0, 2), 1, -1000, 0, 0),
    (_c(10, 5, 0, 1), 4, 829, 1000, 100),   # 1000 - (1000 + 28000/16)/16 = 1000 - 171
    (_c(10, 5, 0, 1), 2, -1000, 714, 71),   # (28 - 2*4)/28
    (_c(10, 5, 0, 1), 1, -1000, 357, 35),   # suitable 5 + 4 = 9 -> (28 - 18)/28
])
def test_fragmentation_values(counts: list[int], order: int, frag: int, unusable: int, pct: int) -> None:
    assert V.fragmentation_index(counts, order) == frag
    assert V.unusable_free_index(counts, order) == unusable
    assert V.extfrag_for_order(counts, order) == pct


def test_fragmentation_text_formats() -> None:
    rows = [(0, "Normal", _c(1))]
    ext = V.render_extfrag_index(rows)
    # 1000 - (1000 + 1000/2^k)/1 = -(1000 >> k); C prints idx/1000 "." idx%1000 (sign kept)
    assert ext == ("Node 0, zone   Normal -1.000  0.-500  0.-250  0.-125  0.-62  0.-31  0.-15"
                   "  0.-07  0.-03  0.-01  0.000 \n")
    assert V.render_unusable_index(rows) == "Node 0, zone   Normal 0.000" + " 1.000" * 10 + " \n"
    assert V.render_extfrag_index([(1, "DMA32", _c(0, 0, 2))]).split()[4:9] == [
        "-1.000", "-1.000", "-1.000", "0.000", "0.250"]
