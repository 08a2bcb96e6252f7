"""memdesc validate: comparison metrics, the calibrated start state, the CLI."""

from __future__ import annotations

import json
import lzma
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED

from memdesc.analysis import validate as V
from memdesc.driver.boot import new_allocator
from memdesc.fileio import finite
from memdesc.machine import machine_from_zoneinfo

TRACES = SHARED / "traces"
PLAIN = TRACES / "x86_64-2g-plain-s1"
REPO = Path(__file__).resolve().parents[1]
SNAP_FILES = ("zoneinfo", "buddyinfo", "pagetypeinfo")


# --- metrics on synthetic inputs ----------------------------------------------------------
def test_order_l1_weighs_blocks_by_pages_and_normalises_by_kernel_free():
    assert V.order_l1([1, 2, 3], [1, 2, 3]) == 0.0
    # one order-0 block too many, one order-1 block missing: 1 + 2 pages over 2 free pages
    assert V.order_l1([1, 0], [0, 1]) == pytest.approx(1.5)
    assert V.order_l1([0, 0, 1], [0, 0, 2]) == pytest.approx(4 / 8)
    assert V.order_l1([1], [0, 0]) == math.inf  # kernel has nothing free
    assert V.order_l1([0], [0]) == 0.0
    assert V.order_l1([2], [1], norm=4) == pytest.approx(0.25)


def test_mt_order_l1_sums_over_migratetypes():
    k = {"Unmovable": [1, 0], "Movable": [0, 2]}
    assert V.mt_order_l1(k, k) == 0.0
    m = {"Unmovable": [0, 1], "Movable": [1, 1]}
    # Unmovable: |0-1|*1 + |1-0|*2 = 3; Movable: |1-0|*1 + |1-2|*2 = 3; kernel free = 1 + 4
    assert V.mt_order_l1(m, k) == pytest.approx(6 / 5)
    assert V.mt_order_l1(m, k, norm=12) == pytest.approx(0.5)


def test_pageblock_diff_counts_blocks_that_change_type():
    d = V.pageblock_diff({"Unmovable": 2, "Movable": 8}, {"Unmovable": 4, "Movable": 6})
    assert d["l1"] == pytest.approx(0.2)  # 2 of 10 pageblocks have the other type
    assert d["per_type"]["Unmovable"] == {"model": 2, "kernel": 4, "diff": -2, "rel": -0.5}
    assert d["total_model"] == d["total_kernel"] == 10
    assert V.pageblock_diff({"Movable": 5}, {"Movable": 5})["l1"] == 0.0
    assert (
        V.pageblock_diff({"Reclaimable": 1}, {"Reclaimable": 0, "Movable": 1})["per_type"]["Reclaimable"]["rel"]
        == math.inf
    )


def test_fallback_ratio_is_symmetric():
    assert V.fallback_ratio(0, 0) == 1.0
    assert V.fallback_ratio(4, 2) == V.fallback_ratio(2, 4) == 2.0
    assert V.fallback_ratio(0, 3) == math.inf


def test_free_page_accounting_identity():
    fa = V.free_page_accounting(1100, 1000, {"pcp_lists": 30, "compaction_targets": 50}, managed=10000)
    assert fa["diff"] == 100
    assert fa["explained"] == 80
    assert fa["unexplained"] == 20
    assert fa["diff"] == sum(fa["terms"].values()) + fa["unexplained"]
    assert fa["unexplained_pct"] == pytest.approx(0.2)
    neg = V.free_page_accounting(900, 1000, {"pcp_lists": -100}, managed=1000)
    assert neg["unexplained"] == 0 and neg["unexplained_pct"] == 0.0


def test_verdicts_take_the_worst_zone():
    def zone(unexpl_pct, l1, mt_l1, pb, blocks=1000):
        return {
            "free": {"unexplained_pct": unexpl_pct},
            "order_l1": l1,
            "mt_order_l1": mt_l1,
            "pageblocks": {"l1": pb, "total_kernel": blocks},
        }

    cmp_ = {
        "zones": {
            "0:DMA": zone(-2.0, 0.5, 0.5, 0.0),
            "0:DMA32": zone(0.1, 0.1, 0.1, 0.05),
            "0:Tiny": zone(0.0, 0.9, 0.9, 0.5, blocks=8),
        },
        "fallback": {"model": 30, "kernel": 20, "ratio": 1.5},
    }
    v = V.verdicts(cmp_)
    assert v["free_pages"]["zone"] == "0:DMA" and not v["free_pages"]["pass"]
    assert v["per_order"]["value"] == 0.5 and not v["per_order"]["pass"]
    assert v["pageblocks"]["pass"] and v["fallbacks"]["pass"]  # the 8-pageblock zone is not judged
    assert v["pageblocks"]["zone"] == "0:DMA32"
    cmp_["fallback"]["ratio"] = 3.0
    assert not V.verdicts(cmp_)["fallbacks"]["pass"]


def test_x86_low_memory_layout_moves_the_dma_hole():
    """The core places the x86 ISA hole and reserves RAM below 1 MiB first
    (setup_arch: memblock_reserve(0, SZ_1M)), as the kernel's zoneinfo shows."""
    from memdesc.workloads import bundled_trace_dir

    # the bundled copy of the plain trace's start snapshot: runs without ../shared
    fixed = machine_from_zoneinfo(bundled_trace_dir() / "zoneinfo-start.txt")
    assert (0x9F, 0x100) in fixed.holes
    assert V.x86_low_memory_layout(fixed) == fixed  # nothing left for validate to correct
    a = new_allocator(fixed, "linked", kernel="6.1")
    dma = next(z for z in a.zones if z.name == "DMA")
    # the 158 reserved pages sit below 1 MiB; the top of the zone is 3 free order-10 blocks
    assert dma.managed == 3840
    assert dma.nr_free[10] == 3
    # memmap_init_range() never visits pfn 0 (DMA starts at pfn 1): pageblock 0 keeps
    # MIGRATE_UNMOVABLE, as the kernel's pagetypeinfo shows (1 Unmovable, 7 Movable)
    from memdesc.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
    from memdesc.mm.vmstat import pageblock_counts

    assert a.get_pageblock_migratetype(0x100) == MIGRATE_UNMOVABLE
    pbc = pageblock_counts(a, dma)
    assert (pbc[MIGRATE_UNMOVABLE], pbc[MIGRATE_MOVABLE]) == (1, 7)
    # its free pages (0x100..0x1ff) are on the Unmovable list, where the kernel's
    # first GFP_DMA allocation finds them without a fallback
    assert a.free_count(dma, 8, MIGRATE_UNMOVABLE) == 1
    assert a.check(raise_on_error=False).ok


# --- validate() on a truncated real trace ------------------------------------------------------
def _truncated(dst: Path, src: Path, lines: int, end_marker: bool) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in SNAP_FILES:
        for when in ("start", "end"):
            shutil.copy(src / f"{name}-{when}.txt", dst / f"{name}-{when}.txt")
    shutil.copy(src / "ringbuffer-stats.txt", dst / "ringbuffer-stats.txt")
    with lzma.open(src / "trace.txt.xz", "rt") as fin, lzma.open(dst / "trace.txt.xz", "wt", preset=1) as fout:
        for i, line in enumerate(fin):
            if i >= lines:
                break
            fout.write(line)
        if end_marker:
            fout.write(
                "            init-1       [000] .....    99.000000: tracing_mark_write: "
                "CAPTURE: snapshot-end (tracing off now)\n"
            )
    return dst


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory):
    if not (PLAIN / "trace.txt.xz").exists():
        pytest.skip("shared traces not available")
    # the start snapshot ends at line 47049 of this trace
    return _truncated(tmp_path_factory.mktemp("val") / "plain60k", PLAIN, 60000, end_marker=True)


def test_validate_calibrated_start_matches_kernel_free_pages(short_dir):
    r = V.validate(short_dir, max_events=None, check_every=20000)
    assert r["verdict_on"] == "end" and r["complete"]
    start = r["start"]
    for key, z in start["zones"].items():
        fa = z["free"]
        # calibration makes buddy + pcp free pages equal: the rest is the pcp split
        assert fa["unexplained"] == 0, (key, fa)
        assert fa["diff"] == fa["terms"]["pcp_lists"]
    dma = start["zones"]["0:DMA"]
    assert dma["order_l1"] == 0.0 and dma["pageblocks"]["l1"] == 0.0  # exact DMA zone
    dma32 = start["zones"]["0:DMA32"]
    assert dma32["order_l1"] < 0.05
    assert dma32["pageblocks"]["l1"] < 0.05  # whole-pageblock placeholders retyped
    cal = r["calibration"]["0:DMA32"]
    assert cal["placeholder_pages"] > 50000 and cal["unspent_budget"] == 0
    assert cal["retyped_pageblocks"] > 100
    rep = r["replay"]
    assert not rep["violations"] and not rep["bad_events"]
    assert rep["classified_unknown_frees"]["deferred_init"] > 100000  # pgdatinit0
    assert set(r["verdicts"]) == {"free_pages", "per_order", "per_migratetype", "pageblocks", "fallbacks"}
    # the end identity holds term by term
    for z in r["end"]["zones"].values():
        fa = z["free"]
        assert fa["diff"] == sum(fa["terms"].values()) + fa["unexplained"]
    json.dumps(finite(r))


def test_validate_boot_start_leaves_pretrace_memory_free(short_dir):
    r = V.validate(short_dir, start="boot")
    fa = r["start"]["zones"]["0:DMA32"]["free"]
    # the model has the ring buffer and early-boot memory free: > 10 % of the zone
    assert fa["unexplained_pct"] > 10
    assert "calibration" not in r


def test_validate_pfn_exact_follows_traced_pfns(short_dir):
    r = V.validate(short_dir, pfn_exact=True, max_events=50000)
    rep = r["replay"]
    assert rep["pfn_exact_hits"] > rep["pfn_exact_divergences"]
    assert r["config"]["pfn_exact"] is True


def test_validate_rejects_bad_arguments(tmp_path, short_dir):
    with pytest.raises(ValueError):
        V.validate(short_dir, start="nonsense")
    with pytest.raises(FileNotFoundError):
        V.validate(tmp_path)


def test_cli_validate_writes_json(short_dir, tmp_path, capsys):
    from memdesc.cli import main

    out = tmp_path / "v.json"
    rc = main(["validate", str(short_dir), "--json", str(out), "--max-events", "15000"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["config"]["design"] == "linked" and data["config"]["kernel"] == "6.1"
    assert data["config"]["max_events"] == 15000
    assert not data["complete"] and "verdicts" in data  # stopped before the start snapshot
    assert "verdicts" in capsys.readouterr().out


def test_record_trace_script_parses():
    script = REPO / "tools" / "record-trace.sh"
    assert script.exists()
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MEMDESC_SLOW") != "1", reason="full trace replay: set MEMDESC_SLOW=1")
@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("*-s1")) if TRACES.exists() else [])
def test_validate_full_trace(name):
    r = V.validate(TRACES / name)
    assert r["complete"]
    assert r["verdicts"]["free_pages"]["pass"]


def test_unknown_frees_are_classified(short_dir):
    """pgdatinit0 frees are deferred init; a double free by a kworker is a bulk-allocated
    (vmalloc) page; by its owner, while compaction targets are outstanding, a target."""
    from memdesc.workloads.trace import TraceRecord

    v = V._Validation(short_dir, "linked", "6.1", False, None, "boot", 0)
    dma32 = next(z.zid for z in v.alloc.zones if z.name == "DMA32")
    pfn = v.alloc.zones[dma32].start_pfn + 4096

    def rec(comm: str) -> TraceRecord:
        return TraceRecord("mm_page_free", pfn, 0, None, None, 0, 1.0, 1, comm, 7)

    list(v.unknown_free("unmatched", rec("pgdatinit0"), 512))
    list(v.unknown_free("double", rec("workload"), 1))  # no target outstanding yet
    assert v.classified["deferred_init"] == 512 and v.classified["silent_alloc"] == 1
    v.books[dma32].target_pages_kernel = 10
    list(v.unknown_free("double", rec("kworker/u4:2"), 1))
    list(v.unknown_free("double", rec("workload"), 1))
    list(v.unknown_free("unmatched", rec("workload"), 1))
    assert v.classified["silent_alloc"] == 2
    assert v.classified["compaction_target"] == 1
    assert v.classified["pretrace"] == 1
    assert v.books[dma32].target_freed_kernel == 1
    assert v.books[dma32].ambiguous_target_frees == 1  # outside any traced isolate range
