"""Human summaries of runs (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table


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
