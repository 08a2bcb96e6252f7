"""Render layer: rich text tables of runs, comparisons, sweeps, validations and trace
statistics; it only reads what memdesc.analysis and memdesc.workloads computed."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from memdesc.analysis.compare import FRAG_ORDER, HIGH_ORDER, fmt_bytes, key_metrics, not_run, who_wins


def _bytes(n: float) -> str:
    n = int(n)
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            return f"{n / mult:.2f} {unit}"
    return f"{n} B"


def render_run_summary(s: dict[str, Any]) -> Group:
    cfg = s["config"]
    head = Table(title=f"memdesc {s['memdesc_version']}: {cfg['design']} on {s['machine']['spec']} "
                       f"(kernel {cfg['kernel']}), workload {cfg['workload']}", show_header=False)
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("RAM", _bytes(s["machine"]["present_bytes"]))
    head.add_row("operations", f"{s['ops']:,}")
    head.add_row("allocations / failures", f"{s['allocs']:,} / {s['alloc_failures']:,}")
    for cause, n in sorted(s["alloc_failures_by_cause"].items()):
        head.add_row(f"  failures: {cause}", f"{n:,}")
    head.add_row("frees (ignored: alloc had failed)", f"{s['frees']:,} ({s['ignored_frees']:,})")
    head.add_row("throughput", f"{s['ops_per_s']:,.0f} ops/s ({s['elapsed_s']:.2f} s)")
    md = s["metadata"]
    head.add_row("struct page", f"{md['struct_page_bytes']} B/page")
    head.add_row("memmap", _bytes(md["memmap_bytes"]))
    if md.get("dynamic_bytes"):
        head.add_row("dynamic metadata", _bytes(md["dynamic_bytes"]))
    head.add_row("metadata per GiB of RAM", _bytes(md["metadata_bytes_per_gib"]))
    head.add_row("metadata % of RAM", f"{md['metadata_pct_of_ram']:.3f} %")
    fb = s["fallback"]
    head.add_row("migratetype fallbacks (extfrag)", f"{fb['extfrag_events']:,}")
    head.add_row("allocations in the free path", f"{s['counters']['allocs_in_free_path']:,}")
    if "replay" in s:
        r = s["replay"]
        for k in ("unmatched_frees", "failed_allocs", "implicit_frees", "partial_frees"):
            if k in r:
                head.add_row(f"trace: {k.replace('_', ' ')}", f"{r[k]:,}")
    if s["pfn_exact"]["hits"] or s["pfn_exact"]["divergences"]:
        head.add_row("pfn-exact hits / divergences", f"{s['pfn_exact']['hits']:,} / {s['pfn_exact']['divergences']:,}")

    ho = Table(title="allocation success by order")
    ho.add_column("order", justify="right")
    ho.add_column("attempts", justify="right")
    ho.add_column("succeeded", justify="right")
    ho.add_column("rate", justify="right")
    for o, v in sorted(s["high_order"].items(), key=lambda kv: int(kv[0])):
        ho.add_row(str(o), f"{v['attempts']:,}", f"{v['succeeded']:,}", f"{100 * v['success_rate']:.1f} %")

    zt = Table(title="zones at the end")
    for c in ("zone", "managed", "free", "pcp", "min/low/high", "free blocks per order 0..10"):
        zt.add_column(c, justify="right")
    for z in s["zones"]:
        w = z["watermark"]
        zt.add_row(f"{z['node']}:{z['zone']}", f"{z['managed']:,}", f"{z['free_pages']:,}", f"{z['pcp_pages']:,}",
                   f"{w['min']}/{w['low']}/{w['high']}", " ".join(str(x) for x in z["nr_free"]))

    vt = Table(title=f"invariant and rule violations ({s['checks_run']} checks)")
    vt.add_column("kind")
    vt.add_column("count", justify="right")
    for k, v in sorted(s["violations"].items()):
        vt.add_row(k, f"[red]{v}[/red]" if v else "0")
    parts: list[Any] = [head, ho, zt, vt]
    if s.get("mm_probe"):
        pt = Table(title="can ZONE_MOVABLE / CMA memory be had back? (--mm-probe)")
        for c in ("operation", "result", "pages migrated", "first blocker"):
            pt.add_column(c)
        cma = s["mm_probe"]["cma_alloc_all"]
        off = s["mm_probe"]["offline_all_movable"]
        f = cma["failures"][0] if cma["failures"] else None
        pt.add_row(f"cma_alloc of {cma['areas']} whole CMA area(s)",
                   "n/a" if not cma["areas"] else ("ok" if cma["ok"] else "[red]failed[/red]"), f"{cma['migrated']:,}",
                   f"{f['kind']} at pfn {f['pfn']:#x} ({f['reason']})" if f else "-")
        f = off["failures"][0] if off["failures"] else None
        blocker = f"{f.get('kind')} at pfn {f.get('pfn', 0):#x} ({f.get('reason')})" if f else "-"
        pt.add_row(f"offline of {off['blocks']} ZONE_MOVABLE block(s)", f"{off['offlined']}/{off['blocks']} offlined",
                   f"{off['migrated']:,}", blocker)
        parts.append(pt)
    if s.get("mm_ops"):
        mt = Table(title="contiguous allocation, offline, compaction")
        mt.add_column("metric")
        mt.add_column("value", justify="right")
        for k, v in s["mm_ops"].items():
            if isinstance(v, float):
                mt.add_row(k, f"{v:,.3f}")
            elif isinstance(v, int):
                mt.add_row(k, f"{v:,}")
            elif v is None:
                mt.add_row(k, "-")
        parts.append(mt)
    return Group(*parts)


def render_trace_stats(stats: dict[str, Any], width: int = 100) -> str:
    """Render :func:`memdesc.workloads.replay.trace_stats` output as text tables."""
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=False, color_system=None)
    t = Table(title=f"trace {stats['path']}", show_header=False)
    t.add_column("key")
    t.add_column("value")
    t.add_row("format", str(stats["format"]))
    t.add_row("compression", str(stats["compression"]))
    t.add_row("lines", f"{stats['lines']:,}")
    if stats.get("first_ts") is not None:
        t.add_row("time span", f"{stats['first_ts']:.6f} .. {stats['last_ts']:.6f} s")
    t.add_row("markers", str(stats["marker_count"]))
    if stats.get("lost_events"):
        t.add_row("lost events", f"{stats['lost_events']:,}")
    con.print(t)

    def table(title: str, cols: tuple[str, str], rows: list[tuple[Any, Any]]) -> None:
        tb = Table(title=title)
        tb.add_column(cols[0])
        tb.add_column(cols[1], justify="right")
        for k, v in rows:
            tb.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
        con.print(tb)

    table("events by type", ("event", "count"), list(stats["events"].items()) + list(
        stats["other_events"].items()))
    table("allocation orders", ("order", "count"), list(stats["orders"].items()))
    table(f"top gfp masks ({stats['gfp_distinct']} distinct)", ("gfp_flags", "count"), stats["gfp_top"])
    table("allocation migratetypes", ("migratetype", "count"), list(stats["migratetypes"].items()))
    table("replay", ("counter", "value"), list(stats["replay"].items()))
    if stats["skipped"]:
        table("skipped lines (lenient)", ("kind", "count"), list(stats["skipped"].items()))
    curve = stats["live_curve"]
    if curve:
        step = max(1, len(curve) // 10)
        table("live pages (sampled)", ("line", "live pages"),
              [(f"{ln:,} @ {ts:.3f}s", lp) for ln, ts, lp in curve[::step]])
    if stats["markers"]:
        tb = Table(title="markers")
        tb.add_column("line", justify="right")
        tb.add_column("ts", justify="right")
        tb.add_column("text")
        for m in stats["markers"][:50]:
            tb.add_row(f"{m['line']:,}", f"{m['ts']:.6f}", m["text"])
        con.print(tb)
    return buf.getvalue()


def render_validation(result: Mapping[str, Any]) -> Group:
    """A :func:`memdesc.analysis.validate.validate` result: per-snapshot zone tables and the verdicts."""
    cfg = result["config"]
    parts: list[Any] = [
        f"[bold]memdesc validate[/bold] {cfg['trace_dir']}  design={cfg['design']} kernel={cfg['kernel']} "
        f"pfn_exact={cfg['pfn_exact']} start={cfg['start']}  ({result['elapsed_s']:.0f} s)"
    ]
    for which in ("start", "end"):
        cmp_ = result.get(which)
        if not cmp_:
            continue
        t = Table(title=f"{which} snapshot (trace line {cmp_['trace_line']})")
        for col in (
            "zone",
            "model free",
            "kernel free",
            "diff",
            "explained",
            "unexplained",
            "% managed",
            "order L1",
            "mt L1",
            "pageblocks L1",
        ):
            t.add_column(col, justify="right")
        for key, z in cmp_["zones"].items():
            fa = z["free"]
            t.add_row(
                key,
                str(fa["model_free"]),
                str(fa["kernel_free"]),
                str(fa["diff"]),
                str(fa["explained"]),
                str(fa["unexplained"]),
                f"{fa['unexplained_pct']:.2f}",
                f"{z['order_l1']:.3f}",
                f"{z['mt_order_l1']:.3f}",
                f"{z['pageblocks']['l1']:.3f}",
            )
        parts.append(t)
        for key, z in cmp_["zones"].items():
            terms = ", ".join(f"{k}={v}" for k, v in z["free"]["terms"].items() if v)
            parts.append(f"  {key} terms: {terms or '-'}")
        fb = cmp_["fallback"]
        parts.append(
            f"  fallbacks (window): model {fb['model']} vs trace {fb['kernel']} (x{fb['ratio']:.2f}); "
            f"change_ownership model {fb['model_change_ownership']} vs trace {fb['kernel_change_ownership']}"
        )
    t = Table(title=f"verdicts ({result['verdict_on']} snapshot)")
    for col in ("metric", "value", "tolerance", "unit", "worst zone", "verdict"):
        t.add_column(col)
    for name, vd in result["verdicts"].items():
        t.add_row(
            name,
            f"{vd['value']:.3f}",
            f"{vd['tolerance']}",
            vd["unit"],
            vd["zone"],
            "[green]PASS[/green]" if vd["pass"] else "[red]FAIL[/red]",
        )
    parts.append(t)
    if not result["complete"]:
        parts.append("[yellow]trace incomplete (no snapshot-end marker): end comparison is not meaningful[/yellow]")
    return Group(*parts)


def _rate(ok: int | None, att: int | None) -> str:
    if not att:
        return "-"
    return f"{ok:,}/{att:,} ({100 * ok / att:.1f} %)"


def sparkline(values: Sequence[float], width: int = 24, lo: float | None = None, hi: float | None = None) -> str:
    """Text sparkline (resampled to ``width`` characters)."""
    if not values:
        return ""
    bars = "▁▂▃▄▅▆▇█"
    if len(values) > width:
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    span = hi - lo or 1.0
    return "".join(bars[min(7, max(0, int((v - lo) / span * 7.999)))] for v in values)


def table_rows(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column labels, [(row name, cells)]) of the side-by-side comparison, plain text."""
    ok = [r for r in results if "metadata" in r]
    km = [key_metrics(r) for r in ok]
    cols = [k["label"] + ("" if k["status"] == "ok" else f" [{k['status']}]") for k in km]
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, fn: Callable[[dict[str, Any]], str]) -> None:
        rows.append((name, [fn(k) for k in km]))

    row("struct page", lambda k: f"{k['struct_page_bytes']} B")
    row("memmap", lambda k: fmt_bytes(k["memmap_bytes"]))
    row("dynamic metadata live (peak)",
        lambda k: f"{fmt_bytes(k['dynamic_bytes'])} ({fmt_bytes(k['dynamic_bytes_peak'])})")
    kinds: list[str] = []
    for k in km:
        for c in list(k["components"]) + list(k["components_peak"]):
            if c not in kinds:
                kinds.append(c)
    for c in kinds:
        row(f"  {c} live (peak)", lambda k, c=c: (
            f"{fmt_bytes(k['components'].get(c, 0))} ({fmt_bytes(k['components_peak'].get(c, 0))})"
            if c in k["components"] or c in k["components_peak"] else "-"))
    if any(k["reserve_pages"] for k in km):
        row("  radix node reserve pages", lambda k: "-" if k["reserve_pages"] is None else str(k["reserve_pages"]))
    row("total metadata", lambda k: fmt_bytes(k["total_metadata_bytes"]))
    row("metadata per GiB of RAM", lambda k: fmt_bytes(k["metadata_bytes_per_gib"]))
    row("metadata % of RAM (peak)",
        lambda k: f"{k['metadata_pct_of_ram']:.3f} % ({k['peak_metadata_pct_of_ram']:.3f} %)")
    row("allocation failures", lambda k: f"{k['alloc_failures']:,}")
    causes = sorted({c for k in km for c in k["alloc_failures_by_cause"]})
    for c in causes:
        row(f"  failures: {c}", lambda k, c=c: f"{k['alloc_failures_by_cause'].get(c, 0):,}")
    row(f"order >= {HIGH_ORDER} success", lambda k: _rate(k["high_order_succeeded"], k["high_order_attempts"]))
    row(f"order {FRAG_ORDER} success", lambda k: _rate(k["order9_succeeded"], k["order9_attempts"]))
    if any(k["cma_attempted"] for k in km):
        row("cma_alloc success", lambda k: _rate(k["cma_succeeded"], k["cma_attempted"]))
    if any(k["cma_all_ok"] is not None for k in km):
        row("cma_alloc of whole CMA area", lambda k: "-" if k["cma_all_ok"] is None else
            ("ok" if k["cma_all_ok"] else "FAILED"))
    if any(k["offline_attempted"] for k in km):
        row("offline success (blocks)", lambda k: _rate(k["offline_succeeded"], k["offline_attempted"]))
    if any(k["offline_all"] for k in km):
        row("offline all ZONE_MOVABLE blocks", lambda k: k["offline_all"] or "-")
    row("allocations on the free path", lambda k: f"{k['allocs_in_free_path']:,}")
    row("unmovable meta in HighMem/Movable/CMA", lambda k: ", ".join(
        f"{w}: {n:,}" for w, n in k["unmovable_meta"].items()) or "0")
    row("invariant violations", lambda k: ", ".join(f"{w}: {n:,}" for w, n in k["invariant_violations"].items())
        or "0")
    row(f"unusable index order {FRAG_ORDER} end (max)", lambda k: (
        f"{k[f'unusable_index_{FRAG_ORDER}']:.3f} ({k[f'unusable_index_{FRAG_ORDER}_max']:.3f})"))
    row(f"  over time (0..1) {'':>3}", lambda k: sparkline(k["unusable_series"], 16, 0.0, 1.0))
    row(f"extfrag index order {FRAG_ORDER} end", lambda k: f"{k[f'extfrag_index_{FRAG_ORDER}']:.3f}")
    row("operations", lambda k: f"{k['ops']:,}")
    row("throughput", lambda k: f"{k['ops_per_s']:,.0f} ops/s ({k['elapsed_s']:.1f} s)")
    return cols, rows


def render_compare(results: Sequence[dict[str, Any]], title: str = "") -> Group:
    """The side-by-side comparison table, the designs not compared and the generated summary."""
    cols, rows = table_rows(results)
    t = Table(title=title or "memdesc compare", show_lines=False)
    t.add_column("metric", no_wrap=True)
    for c in cols:
        t.add_column(c.replace(":", "\n:", 1), justify="right", overflow="fold")
    for name, cells in rows:
        t.add_row(name, *cells)
    parts: list[Any] = [t]
    skipped = not_run(results)
    if skipped:
        st = Table(title="designs not compared")
        for c in ("design", "status", "why"):
            st.add_column(c)
        for lab, status, why in skipped:
            st.add_row(lab, status, why)
        parts.append(st)
    for r in results:
        if r.get("status") == "timeout":
            parts.append(f"[yellow]{r['label']}: {r['reason']} (numbers are for the part that ran)[/yellow]")
    wins = who_wins(results)
    if wins:
        parts.append("\n".join(["[bold]summary[/bold]"] + [f"• {w}" for w in wins]))
    return Group(*parts)


def render_sweep(rows: list[dict[str, Any]], title: str = "memdesc sweep") -> Table:
    """One line per sweep cell (memdesc.analysis.sweep.summary_rows)."""
    t = Table(title=title)
    cols = ("design", "machine", "workload", "seed", "B/page", "peak meta %", "fails",
            "o>=3 %", "o9 %", "CMA/offl.", "rule viol.", "unus9 max", "ops/s")
    cells = [sweep_cells(r) for r in rows]
    # columns that are the same in every row go into the title
    const = [i for i in (1, 2) if len({c[i] for c in cells}) == 1 and cells]
    if const:
        t.title = f"{title} ({', '.join(cells[0][i] for i in const)})"
    for i, c in enumerate(cols):
        if i in const:
            continue
        t.add_column(c, justify="left" if i < 3 else "right", no_wrap=i < 3)
    for c in cells:
        t.add_row(*(x for i, x in enumerate(c) if i not in const))
    return t


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def sweep_cells(r: dict[str, Any]) -> list[str]:
    """The text cells of one sweep summary row (table, Markdown, HTML)."""
    if "metadata_pct_of_ram" not in r:
        return [str(r["design"]), str(r["machine"]), str(r["workload"]), str(r["seed"]),
                f"{r['status']}: {r['reason']}"[:60]] + [""] * 8
    mm = "/".join("-" if r.get(k) is None else ("ok" if r[k] else "FAIL") for k in ("cma_all_ok", "offline_all_ok"))
    return [str(r["design"]), str(r["machine"]), str(r["workload"]), str(r["seed"]), f"{r['struct_page_bytes']}",
            f"{r['peak_metadata_pct_of_ram']:.3f}", f"{r['alloc_failures']:,}",
            _pct(r.get("high_order_rate")), _pct(r.get("order9_rate")), mm,
            f"{r['allocs_in_free_path'] + r['unmovable_meta']:,}", f"{r['unusable_index_9_max']:.3f}",
            f"{r['ops_per_s']:,.0f}"]


__all__ = ["render_run_summary", "render_trace_stats", "render_validation", "render_compare", "table_rows",
           "sparkline", "render_sweep", "sweep_cells"]
