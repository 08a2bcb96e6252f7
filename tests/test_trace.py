"""Trace readers (tracefs, trace-cmd report, perf script; compressed; stdin), bad
input handling, and replay semantics of memdesc.workloads.trace / .replay."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import itertools
import lzma
import sys
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memdesc.mm.gfp import parse_gfp
from memdesc.mm.mmzone import MIGRATE_CMA, MIGRATE_ISOLATE
from memdesc.report.text import render_trace_stats
from memdesc.workloads import trace as trace_mod
from memdesc.workloads.events import Alloc, Free, Mark
from memdesc.workloads.replay import ReplayStats, trace_events, trace_stats
from memdesc.workloads.trace import (
    ParseStats,
    TraceParseError,
    detect_format,
    open_trace,
    read_trace,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
PLAIN = TRACES / "x86_64-2g-plain-s1"

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 9/9   #P:2
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""

TRACEFS = HEADER + """\
          <idle>-0       [000] d..1.     0.288028: mm_page_alloc: page=000000009b0d2dd7 pfn=0x3a7e order=0 migratetype=0 gfp_flags=__GFP_NOWARN|__GFP_NORETRY
          <idle>-0       [000] d..4.     0.289481: mm_page_alloc_zone_locked: page=00000000afb36be7 pfn=0x3a80 order=1 migratetype=0 percpu_refill=1
          <idle>-0       [000] d..1.     0.289534: mm_page_alloc: page=00000000afb36be7 pfn=0x3a80 order=1 migratetype=4 gfp_flags=GFP_KERNEL|__GFP_COMP
    kworker/u4:1-46      [001] ...2.     1.298181: mm_page_free: page=000000007a094cdd pfn=0x3a7e order=0
    kworker/u4:1-46      [001] ...2.     1.298182: mm_page_free_batched: page=000000007a094cdd pfn=0x3a7e order=0
        workload-160     [000] d..3.     6.081517: mm_page_pcpu_drain: page=00000000849ece6f pfn=0x23af1 order=0 migratetype=1
            init-1       [000] d..3.     0.640214: mm_page_alloc_extfrag: page=00000000e12bceae pfn=0x4000 alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1
        workload-160     [000] .....     4.841339: tracing_mark_write: CAPTURE: phase tmpfs begin dir=/tmp/wl total_mb=245
        workload-160     [000] .....    21.120435: mm_compaction_isolate_freepages: range=(0x7fc00 ~ 0x7fdc0) nr_scanned=448 nr_taken=37
"""  # noqa: E501

TRACE_CMD = """\
cpus=2
          <idle>-0     [000]     0.288028: mm_page_alloc:        page=0xffffea00000e9f80 pfn=0x3a7e order=0 migratetype=0 gfp_flags=__GFP_NOWARN|__GFP_NORETRY
          <idle>-0     [000]     0.289481: mm_page_alloc_zone_locked: page=0xffffea00000ea000 pfn=0x3a80 order=1 migratetype=0 percpu_refill=1
          <idle>-0     [000]     0.289534: mm_page_alloc:        page=0xffffea00000ea000 pfn=0x3a80 order=1 migratetype=4 gfp_flags=GFP_KERNEL|__GFP_COMP
    kworker/u4:1-46    [001]     1.298181: mm_page_free:         page=0xffffea00000e9f80 pfn=0x3a7e order=0
    kworker/u4:1-46    [001]     1.298182: mm_page_free_batched: page=0xffffea00000e9f80 pfn=0x3a7e order=0
        workload-160   [000]     6.081517: mm_page_pcpu_drain:   page=0xffffea00008ebc40 pfn=0x23af1 order=0 migratetype=1
            init-1     [000]     0.640214: mm_page_alloc_extfrag: page=0xffffea0000100000 pfn=0x4000 alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1
        workload-160   [000]     4.841339: tracing_mark_write:   CAPTURE: phase tmpfs begin dir=/tmp/wl total_mb=245
        workload-160   [000]    21.120435: mm_compaction_isolate_freepages: range=(0x7fc00 ~ 0x7fdc0) nr_scanned=448 nr_taken=37
"""  # noqa: E501

PERF = """\
         swapper     0 [000]     0.288028: kmem:mm_page_alloc: page=0xffffea00000e9f80 pfn=0x3a7e order=0 migratetype=0 gfp_flags=__GFP_NOWARN|__GFP_NORETRY
         swapper     0 [000]     0.289481: kmem:mm_page_alloc_zone_locked: page=0xffffea00000ea000 pfn=0x3a80 order=1 migratetype=0 percpu_refill=1
         swapper     0 [000]     0.289534: kmem:mm_page_alloc: page=0xffffea00000ea000 pfn=0x3a80 order=1 migratetype=4 gfp_flags=GFP_KERNEL|__GFP_COMP
    kworker/u4:1    46 [001]     1.298181: kmem:mm_page_free: page=0xffffea00000e9f80 pfn=0x3a7e order=0
    kworker/u4:1    46 [001]     1.298182: kmem:mm_page_free_batched: page=0xffffea00000e9f80 pfn=0x3a7e order=0
        workload   160 [000]     6.081517: kmem:mm_page_pcpu_drain: page=0xffffea00008ebc40 pfn=0x23af1 order=0 migratetype=1
            init     1 [000]     0.640214: kmem:mm_page_alloc_extfrag: page=0xffffea0000100000 pfn=0x4000 alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1
        workload   160 [000]     4.841339: ftrace:print: tracing_mark_write: CAPTURE: phase tmpfs begin dir=/tmp/wl total_mb=245
        workload   160 [000]    21.120435: compaction:mm_compaction_isolate_freepages: range=(0x7fc00 ~ 0x7fdc0) nr_scanned=448 nr_taken=37
"""  # noqa: E501

EXPECTED_EVENTS = [
    "mm_page_alloc", "mm_page_alloc_zone_locked", "mm_page_alloc", "mm_page_free", "mm_page_free_batched",
    "mm_page_pcpu_drain", "mm_page_alloc_extfrag", "tracing_mark_write", "mm_compaction_isolate_freepages",
]


def _write(path: Path, text: str | bytes, comp: str = "none") -> Path:
    data = text.encode() if isinstance(text, str) else text
    if comp == "gzip":
        data = gzip.compress(data)
    elif comp == "xz":
        data = lzma.compress(data)
    elif comp == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    elif comp == "bzip2":
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


def _lines(path: Path) -> list[str]:
    with open_trace(path) as f:
        return list(f)


def alloc(pfn: int, order: int = 0, gfp: str = "GFP_KERNEL", ts: float = 1.0, mt: int = 0) -> str:
    return (f"            test-10      [001] .....     {ts:.6f}: mm_page_alloc: page=00000000deadbeef "
            f"pfn={pfn:#x} order={order} migratetype={mt} gfp_flags={gfp}\n")


def free(pfn: int, order: int = 0, ts: float = 2.0, event: str = "mm_page_free") -> str:
    return (f"            test-10      [001] .....     {ts:.6f}: {event}: page=00000000deadbeef "
            f"pfn={pfn:#x} order={order}\n")


def replay(tmp_path: Path, text: str, **kw: object) -> tuple[list[object], ReplayStats]:
    st = ReplayStats()
    evs = list(trace_events(_write(tmp_path / "t.txt", text), stats=st, **kw))  # type: ignore[arg-type]
    return evs, st


def _pages(evs: list[object]) -> int:
    n = 0
    for e in evs:
        if isinstance(e, Alloc):
            n += 1 << e.order
        elif isinstance(e, Free):
            n -= 1 << e.order
    return n


# --- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fmt"), [(TRACEFS, "tracefs"), (TRACE_CMD, "trace-cmd"), (PERF, "perf")])
def test_three_formats_parse_alike(tmp_path: Path, text: str, fmt: str) -> None:
    st = ParseStats()
    recs = list(read_trace(_write(tmp_path / "t", text), stats=st))
    assert st.format == fmt
    assert [r.event for r in recs] == EXPECTED_EVENTS
    a0, zl, a1, f0, fb, dr, xf, mk, iso = recs
    assert (a0.pfn, a0.order, a0.migratetype, a0.cpu, a0.ts) == (0x3A7E, 0, 0, 0, 0.288028)
    assert a0.gfp == parse_gfp("__GFP_NOWARN|__GFP_NORETRY", "6.1")
    assert a1.gfp == parse_gfp("GFP_KERNEL|__GFP_COMP", "6.1") and a1.order == 1
    assert a1.migratetype == MIGRATE_ISOLATE  # trace 4 without CONFIG_CMA
    assert zl.extra == {"percpu_refill": 1} and zl.migratetype == 0
    assert (f0.pfn, f0.order, f0.cpu, f0.pid) == (0x3A7E, 0, 1, 46)
    assert f0.comm == "kworker/u4:1" and fb.gfp is None
    assert dr.migratetype == 1 and dr.pfn == 0x23AF1
    assert xf.order == 0 and xf.extra is not None and xf.extra["change_ownership"] == 1
    assert xf.extra["fallback_order"] == 10
    assert mk.extra == {"text": "CAPTURE: phase tmpfs begin dir=/tmp/wl total_mb=245"}
    assert iso.extra is not None and (iso.extra["start_pfn"], iso.extra["end_pfn"]) == (0x7FC00, 0x7FDC0)
    assert iso.extra["nr_taken"] == 37
    assert st.markers == 1 and st.other == {"mm_compaction_isolate_freepages": 1}
    assert st.records["mm_page_alloc"] == 2 and not st.skipped


def test_detect_format() -> None:
    assert detect_format(TRACEFS.splitlines()) == "tracefs"
    assert detect_format(TRACEFS.splitlines()[6:]) == "tracefs"
    assert detect_format(TRACE_CMD.splitlines()) == "trace-cmd"
    assert detect_format(TRACE_CMD.splitlines()[1:]) == "trace-cmd"
    assert detect_format(PERF.splitlines()) == "perf"
    assert detect_format(["", "# nothing"]) == "unknown"


def test_config_cma_and_variants(tmp_path: Path) -> None:
    text = alloc(0x100, mt=4) + alloc(0x200, mt=5)
    recs = list(read_trace(_write(tmp_path / "t", text), config_cma=True))
    assert [r.migratetype for r in recs] == [MIGRATE_CMA, MIGRATE_ISOLATE]
    with pytest.raises(TraceParseError):  # 5 does not exist without CONFIG_CMA
        list(read_trace(tmp_path / "t"))
    # tgid column, 4-char flags (older kernels), decimal pfn, hex leftover gfp, lost events
    text = (
        "   bash-1234  (   1234) [002] d..1   123.456789: mm_page_alloc: page=0000000012345678 pfn=4660 "
        "order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|0x4000000\n"
        "CPU:1 [LOST 12 EVENTS]\n"
        " <...>-77 [001] .N.1. 7.5: mm_page_free: page=0000000012345678 pfn=0x1234 order=0\n"
    )
    st = ParseStats()
    recs = list(read_trace(_write(tmp_path / "v", text), stats=st))
    assert [r.pfn for r in recs] == [0x1234, 0x1234] and recs[0].pid == 1234 and recs[0].cpu == 2
    assert recs[0].gfp == parse_gfp("GFP_HIGHUSER_MOVABLE", "6.1") | 0x4000000
    assert st.lost_events == 12 and recs[1].comm == "<...>"


def test_failed_alloc_flag(tmp_path: Path) -> None:
    text = (
        "   kswapd0-45      [001] .....    16.977751: mm_page_alloc: page=0000000000000000 pfn=0x0 order=0 "
        "migratetype=0 gfp_flags=GFP_NOWAIT|__GFP_NOWARN\n"
    )
    perf = "   kswapd0    45 [001]    16.977751: kmem:mm_page_alloc: page=(nil) pfn=0x0 order=0 migratetype=0 gfp_flags=GFP_NOWAIT\n"  # noqa: E501
    assert [r.failed for r in read_trace(_write(tmp_path / "a", text))] == [True]
    assert [r.failed for r in read_trace(_write(tmp_path / "b", perf))] == [True]
    assert [r.failed for r in read_trace(_write(tmp_path / "c", alloc(0x10)))] == [False]


# --- compression, stdin -------------------------------------------------------------


@pytest.mark.parametrize("comp", ["none", "gzip", "xz", "zstd", "bzip2"])
def test_compressed_by_magic(tmp_path: Path, comp: str) -> None:
    p = _write(tmp_path / "trace.txt", TRACEFS, comp)  # misleading name on purpose
    st = ParseStats()
    assert [r.event for r in read_trace(p, stats=st)] == EXPECTED_EVENTS
    assert st.compression == comp and st.lines == len(TRACEFS.splitlines())


@pytest.mark.parametrize("comp", ["gzip", "xz", "zstd", "bzip2"])
def test_truncated_and_corrupt_compressed(tmp_path: Path, comp: str) -> None:
    big = TRACEFS + "".join(alloc(0x1000 + i) for i in range(3000))
    full = _write(tmp_path / "full", big, comp).read_bytes()
    p = tmp_path / "cut.bin"
    p.write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(TraceParseError) as ei:
        list(read_trace(p))
    assert str(p) in str(ei.value) and comp in str(ei.value)
    bad = bytearray(full)
    for i in range(20, len(bad) - 20, 97):
        bad[i] ^= 0x5A
    p.write_bytes(bytes(bad))
    with pytest.raises(TraceParseError):
        list(read_trace(p, lenient=True))


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(TRACE_CMD.encode())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    st = ParseStats()
    assert [r.event for r in read_trace("-", stats=st)] == EXPECTED_EVENTS
    assert st.path == "<stdin>" and st.compression == "gzip" and st.format == "trace-cmd"


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(TraceParseError, match="cannot open"):
        list(read_trace(tmp_path / "nope"))
    with pytest.raises(TraceParseError, match="trace-cmd report"):
        list(read_trace(_write(tmp_path / "trace.dat", b"\x17\x08\x44tracing6\x00\x00")))
    assert list(read_trace(_write(tmp_path / "empty", b""))) == []


# --- bad input ----------------------------------------------------------------------


def test_malformed_strict_and_lenient(tmp_path: Path) -> None:
    good = alloc(0x10)
    bad_kmem = "   test-10      [001] .....     1.000000: mm_page_alloc: page=0000000012 pfn=0xZZ order=0\n"
    junk = "this is not a trace line\n"
    bad_gfp = alloc(0x20, gfp="GFP_KERNEL|__GFP_BOGUS")
    text = HEADER + good + bad_kmem + junk + bad_gfp + good
    p = _write(tmp_path / "m.txt", text)
    hdr = len(HEADER.splitlines())
    with pytest.raises(TraceParseError) as ei:
        list(read_trace(p))
    e = ei.value
    assert (e.path, e.lineno) == (str(p), hdr + 2) and "pfn=0xZZ" in e.text
    assert f"{p}:{hdr + 2}" in str(e)
    st = ParseStats()
    recs = list(read_trace(p, lenient=True, stats=st))
    assert len(recs) == 2
    assert st.skipped == {"malformed": 1, "unparseable": 1, "bad_gfp": 1}
    assert [x[0] for x in st.skipped_examples] == [hdr + 2, hdr + 3, hdr + 4]
    with pytest.raises(TraceParseError, match="__GFP_BOGUS") as ei:
        list(read_trace(_write(tmp_path / "g.txt", bad_gfp)))
    assert ei.value.lineno == 1


def test_unknown_kernel_rejected_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kernel"):
        list(read_trace(_write(tmp_path / "k", alloc(0x10)), kernel="2.6"))


def test_order_out_of_range_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(TraceParseError, match="order"):
        list(read_trace(_write(tmp_path / "o", alloc(0x10, order=63))))


# --- replay -------------------------------------------------------------------------


def test_replay_basic_and_skips(tmp_path: Path) -> None:
    evs, st = replay(tmp_path, TRACEFS)
    kinds = [type(e).__name__ for e in evs]
    assert kinds == ["Alloc", "Alloc", "Free", "Mark"]
    a0, a1, f0, mk = evs
    assert isinstance(a0, Alloc) and isinstance(a1, Alloc) and isinstance(f0, Free) and isinstance(mk, Mark)
    assert (a0.handle, a0.pfn, a0.order, a0.kind, a0.cpu) == (1, 0x3A7E, 0, None, 0)
    assert a1.handle == 2 and a1.gfp == parse_gfp("GFP_KERNEL|__GFP_COMP", "6.1")
    assert (f0.handle, f0.order, f0.cpu) == (1, 0, 1)
    assert mk.text.startswith("CAPTURE: phase tmpfs") and mk.src == f"t.txt:{len(HEADER.splitlines()) + 8}"
    assert st.batched_skipped == 1 and st.zone_locked == 1 and st.pcpu_drain == 1 and st.pcp_events == 2
    assert st.extfrag_events == 1 and st.extfrag_change_ownership == 1
    assert st.allocs == 2 and st.frees == 1 and st.live_pages == 2 and st.live_blocks == 1
    assert st.last_lineno == st.lines


def test_replay_unmatched_failed_double(tmp_path: Path) -> None:
    failed = alloc(0, order=3).replace("page=00000000deadbeef", "page=0000000000000000")
    text = free(0x500, 9) + failed + alloc(0x10) + free(0x10) + free(0x10)
    evs, st = replay(tmp_path, text)
    assert [type(e) for e in evs] == [Alloc, Free]
    assert st.unmatched_frees == 1 and st.unmatched_pages == 512
    assert st.failed_allocs == 1 and st.double_frees == 1 and st.double_free_lines == [5]


def test_replay_split_page_frees(tmp_path: Path) -> None:
    # alloc_pages_exact/split_page: order-2 block freed page by page
    text = alloc(0x100, order=2) + free(0x101) + free(0x100) + free(0x103) + free(0x102)
    evs, st = replay(tmp_path, text)
    assert isinstance(evs[0], Alloc) and evs[0].order == 2
    # free of 0x101: free whole block, re-allocate 0x100 (order 0) and 0x102 (order 1)
    f, a, b = evs[1:4]
    assert isinstance(f, Free) and (f.handle, f.order) == (1, 2)
    assert isinstance(a, Alloc) and (a.pfn, a.order) == (0x100, 0)
    assert isinstance(b, Alloc) and (b.pfn, b.order) == (0x102, 1)
    assert a.gfp == b.gfp == evs[0].gfp and len({a.handle, b.handle, 1}) == 3
    assert _pages(evs) == 0 and st.live_pages == 0 and st.live_blocks == 0
    assert st.partial_frees == 2 and st.unmatched_frees == 0 and st.frees == 4


def test_replay_order_mismatch_frees(tmp_path: Path) -> None:
    # smaller-order free at a live head, then the rest
    text = alloc(0x200, order=3) + free(0x200, order=1) + free(0x202, order=1) + free(0x204, order=2)
    evs, st = replay(tmp_path, text)
    assert _pages(evs) == 0 and st.live_pages == 0 and st.order_mismatch_frees == 1
    # larger-order free at a live head frees everything in its range
    text = alloc(0x400) + alloc(0x402, order=1) + free(0x400, order=2)
    evs, st = replay(tmp_path, text)
    assert _pages(evs) == 0 and st.order_mismatch_frees == 1 and st.unmatched_pages == 1


def test_replay_implicit_frees(tmp_path: Path) -> None:
    # same pfn allocated twice: missed free
    evs, st = replay(tmp_path, alloc(0x10) + alloc(0x10) + free(0x10))
    assert [type(e) for e in evs] == [Alloc, Free, Alloc, Free]
    assert evs[1].handle == 1 and evs[3].handle == 2 and st.implicit_frees == 1  # type: ignore[union-attr]
    # order-0 alloc inside a stale order-2 block: carve it out, keep the rest live
    evs, st = replay(tmp_path, alloc(0x20, order=2) + alloc(0x21))
    assert st.implicit_frees == 1 and st.implicit_free_pages == 1 and st.live_pages == 4
    assert _pages(evs) == 4
    # order-2 alloc covering stale order-0 blocks
    evs, st = replay(tmp_path, alloc(0x40) + alloc(0x43) + alloc(0x40, order=2))
    assert st.implicit_frees == 2 and st.live_pages == 4 and _pages(evs) == 4


def test_replay_filter_and_src(tmp_path: Path) -> None:
    text = alloc(0x10) + alloc(0x90000) + free(0x90000) + free(0x10)
    evs, st = replay(tmp_path, text, pfn_filter=lambda p: p < 0x1000, with_src=True)
    assert [e.src for e in evs] == ["t.txt:1", "t.txt:4"]  # type: ignore[union-attr]
    assert st.filtered == 2 and st.where() == f"{tmp_path / 't.txt'}:4"


_op = st.tuples(st.booleans(), st.integers(0, 63), st.integers(0, 3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_op, max_size=60))
def test_replay_conservation(tmp_path: Path, ops: list[tuple[bool, int, int]]) -> None:
    """Whatever the trace claims, emitted pages match the live map and blocks never overlap."""
    text = "".join(
        alloc(pfn >> order << order, order)
        if is_alloc
        else free(pfn >> order << order if pfn % 3 else pfn, order)  # some unaligned frees
        for is_alloc, pfn, order in ops
    )
    st = ReplayStats()
    p = Path(tempfile.mkdtemp(dir=tmp_path)) / "c.txt"
    evs = list(trace_events(_write(p, text), stats=st))
    assert _pages(evs) == st.live_pages >= 0
    handles: dict[int, int] = {}
    for e in evs:
        if isinstance(e, Alloc):
            assert e.handle not in handles
            handles[e.handle] = e.order
        elif isinstance(e, Free):
            assert handles.pop(e.handle) == e.order
    assert sum(1 << o for o in handles.values()) == st.live_pages


# --- fuzz ---------------------------------------------------------------------------


def _sample_lines() -> list[str]:
    f = PLAIN / "event-samples.txt"
    if f.exists():
        lines = [ln + "\n" for ln in f.read_text().splitlines() if ln.startswith(" ") and ": " in ln]
        return lines[:50]
    return [ln + "\n" for ln in TRACEFS.splitlines() if not ln.startswith("#")]


SAMPLES = _sample_lines()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _mutate(line: str, ops: list[tuple[int, int, str]]) -> str:
    s = line
    for kind, pos, text in ops:
        if not s:
            break
        i = pos % len(s)
        if kind == 0:
            s = s[:i] + s[i + 1:]
        elif kind == 1:
            s = s[:i] + text + s[i:]
        elif kind == 2:
            s = s[:i] + text + s[i + 1:]
        else:
            s = s[:i]
    return s.replace("\n", "") + "\n"


_TOKENS = ["x", "0", "=", " ", "|", ":", "-", "[", "]", "0x", "order=", "__GFP_", "\x00", "é", "9" * 12,
           "(nil)"]
_mut = st.tuples(st.integers(0, 3), st.integers(0, 400), st.sampled_from(_TOKENS))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.lists(_mut, min_size=1, max_size=4)), min_size=1,
                max_size=6))
def test_fuzz_mutated_lines(fuzz_dir: Path, muts: list[tuple[int, list[tuple[int, int, str]]]]) -> None:
    """Strict mode lets only TraceParseError escape; lenient mode never raises."""
    lines = list(SAMPLES)
    for idx, ops in muts:
        i = idx % len(lines)
        lines[i] = _mutate(lines[i], ops)
    p = fuzz_dir / "fuzz.txt"
    p.write_text("".join(lines), encoding="utf-8")
    try:
        list(trace_events(p))
    except TraceParseError as e:
        assert e.path == str(p) and e.lineno >= 1
    st_ = ReplayStats()
    list(trace_events(p, lenient=True, stats=st_))  # lenient: never raises for line corruption
    assert st_.lines == len(lines)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["gzip", "xz", "zstd"]), st.floats(0.0, 0.999))
def test_fuzz_truncated_compressed(fuzz_dir: Path, comp: str, frac: float) -> None:
    text = "".join(SAMPLES) * 20
    data = _write(fuzz_dir / f"full.{comp}", text, comp).read_bytes()
    p = fuzz_dir / f"cut.{comp}"
    p.write_bytes(data[: max(8, int(len(data) * frac))])  # magic bytes intact: must not pass as text
    with pytest.raises(TraceParseError):
        list(trace_events(p, lenient=True))


def _both_paths(p: Path, **kw: object) -> tuple[object, object]:
    """(events, stats) of the block fast path and of the record path (on_record)."""
    out = []
    for extra in ({}, {"on_record": lambda r: None}):
        st_ = ReplayStats()
        try:
            evs: object = [(type(e).__name__, repr(e)) for e in trace_events(p, stats=st_, **kw, **extra)]
        except TraceParseError as e:
            evs = ("error", e.lineno, e.text, str(e))
        d = {f.name: getattr(st_, f.name) for f in dataclasses.fields(ReplayStats) if f.name != "last_lineno"}
        out.append((evs, d))
    return out[0], out[1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.lists(_mut, min_size=1, max_size=4)), max_size=6),
       st.booleans(), st.integers(0, 10**6))
def test_fast_path_matches_record_path(fuzz_dir: Path, muts: list[tuple[int, list[tuple[int, int, str]]]],
                                       lenient: bool, seed: int) -> None:
    """The block fast path of trace_events gives the same events, errors (line and text)
    and counters as the record path, also across small blocks."""
    lines = list(SAMPLES) * 3
    for idx, ops in muts:
        i = idx % len(lines)
        lines[i] = _mutate(lines[i], ops)
    p = fuzz_dir / "same.txt"
    p.write_text("".join(lines), encoding="utf-8")
    old = trace_mod._BLOCK_CHARS
    try:
        trace_mod._BLOCK_CHARS = 1 + seed % 700  # many blocks, cut anywhere
        fast, rec = _both_paths(p, lenient=lenient)
    finally:
        trace_mod._BLOCK_CHARS = old
    assert fast == rec


def test_fast_path_block_boundaries_and_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEADER + "".join(alloc(0x1000 + i, order=i % 3) + free(0x1000 + i, order=i % 3) for i in range(200))
    text += "   test-10      [001] .....     3.000000: mm_page_free: page=0000000012 pfn=0xZZ order=0"  # no \n
    p = _write(tmp_path / "b.txt", text)
    monkeypatch.setattr(trace_mod, "_BLOCK_CHARS", 333)
    with pytest.raises(TraceParseError) as ei:
        list(trace_events(p))
    assert ei.value.lineno == len(text.splitlines()) and "pfn=0xZZ" in ei.value.text
    st_ = ReplayStats()
    evs = list(trace_events(p, lenient=True, stats=st_))
    assert st_.lines == len(text.splitlines()) and st_.skipped == {"malformed": 1}
    assert st_.allocs == st_.frees == 200 and _pages(evs) == 0 == st_.live_pages
    assert st_.last_lineno == len(text.splitlines()) - 1
    fast, rec = _both_paths(p, lenient=True)
    assert fast == rec


def _counted(comm: str, event: str, pfn: int, tail: str = " migratetype=0") -> str:
    return f"{comm:>16}-10      [001] .....     2.000000: {event}: page=00000000deadbeef pfn={pfn:#x} order=0{tail}\n"


def test_fast_path_counts_counted_lines_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted-only lines are tallied per block by their event names: names inside
    other lines (markers, long comms taking the line parser) must not be counted twice,
    and a stream closed inside a block counts only the lines handed out."""
    lines = [HEADER]
    for i in range(60):
        lines.append(alloc(0x1000 + i))
        lines.append(_counted("kworker/u4:1", "mm_page_alloc_zone_locked", 0x2000 + i,
                              " migratetype=0 percpu_refill=1"))
        lines.append(_counted("mm_page_pcpu_drain: ", "mm_page_pcpu_drain", 0x3000 + i))  # 20-char comm
        lines.append(_counted("x" * 17, "mm_page_free_batched", 0x1000 + i, ""))  # comm too long: line parser
        lines.append(f"       bash-1      [000] .....     2.5: tracing_mark_write: mm_page_free_batched: {i}\n")
        lines.append(free(0x1000 + i))
    p = _write(tmp_path / "c.txt", "".join(lines))
    monkeypatch.setattr(trace_mod, "_BLOCK_CHARS", 1000)
    fast, rec = _both_paths(p)
    assert fast == rec
    counts = fast[1]["records"]
    assert counts["mm_page_alloc_zone_locked"] == counts["mm_page_pcpu_drain"] == 60
    assert counts["mm_page_free_batched"] == 60 and fast[1]["markers"] == 60
    # closed inside a block, after k events: exactly the lines handed out are counted
    for k in (1, 7, 50, 119):
        st_ = ReplayStats()
        gen = trace_events(p, stats=st_)
        for _ in range(k):
            next(gen)
        gen.close()
        head = _write(tmp_path / "head.txt", "".join("".join(lines).splitlines(True)[: st_.lines]))
        st2 = ReplayStats()
        list(trace_events(head, stats=st2, on_record=lambda r: None))
        assert st_.records == st2.records and st_.pcp_events == st2.pcp_events
        assert st_.batched_skipped == st2.batched_skipped


# --- real trace ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    xz = PLAIN / "trace.txt.xz"
    if not xz.exists():
        pytest.skip("shared traces not available")
    out = tmp_path_factory.mktemp("real") / "head.txt"
    with lzma.open(xz, "rt") as f, open(out, "w") as g:
        g.writelines(itertools.islice(f, 50_000))
    return out


def test_real_trace_head(real_head: Path, tmp_path: Path) -> None:
    st = ReplayStats()
    evs = list(trace_events(real_head, stats=st))
    assert st.format == "tracefs" and st.lines == 50_000 and not st.skipped
    assert sum(st.records.values()) + st.header_lines + sum(st.other.values()) == 50_000
    assert st.allocs == st.records["mm_page_alloc"] - st.failed_allocs
    assert st.batched_skipped == st.records["mm_page_free_batched"]
    assert _pages(evs) == st.live_pages > 0
    assert any(isinstance(e, Mark) and e.text.startswith("CAPTURE:") for e in evs)
    xz = _write(tmp_path / "head.xz", real_head.read_bytes(), "xz")
    st2 = ReplayStats()
    evs2 = list(trace_events(xz, stats=st2))
    assert st2.compression == "xz" and len(evs2) == len(evs) and st2.live_pages == st.live_pages


def test_trace_stats_and_render(real_head: Path) -> None:
    s = trace_stats(real_head, samples=50)
    assert s["lines"] == 50_000 and s["format"] == "tracefs" and s["compression"] == "none"
    assert s["events"]["mm_page_alloc"] > 0 and 0 in s["orders"]
    assert s["gfp_top"] and isinstance(s["gfp_top"][0][0], str)
    assert "Unmovable" in s["migratetypes"]
    assert 50 <= len(s["live_curve"]) <= 101 and s["live_curve"][-1][2] == s["replay"]["live_pages"]
    assert s["marker_count"] == len(s["markers"]) > 0
    out = render_trace_stats(s)
    assert "mm_page_alloc" in out and "unmatched_frees" in out and "CAPTURE" in out
