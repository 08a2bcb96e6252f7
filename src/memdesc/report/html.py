"""Render layer: report files for ``memdesc compare`` / ``memdesc sweep`` / ``memdesc findings``:
results JSON, CSV, a Markdown report with the PNGs (memdesc.report.plots) beside it, a
self-contained HTML report (PNGs embedded as base64 data URIs) and docs/findings.md.

Plots need matplotlib (the ``plot`` extra); without it the JSON, CSV and the text parts
of the reports are still written.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memdesc import __version__
from memdesc.analysis.compare import FRAG_ORDER, fmt_bytes, key_metrics, not_run, who_wins
from memdesc.analysis.sweep import SUMMARY_FIELDS, SweepResult, summary_rows
from memdesc.fileio import atomic_write
from memdesc.mm.mmzone import NR_PAGE_ORDERS
from memdesc.report.plots import make_plots, plot_sweep
from memdesc.report.text import sweep_cells, table_rows

# --- CSV ------------------------------------------------------------------------------------
CSV_FIELDS = ["label", "design", "machine", "workload", "seed", "ops", "free_pages", "live_handles",
              "alloc_failures", "dynamic_metadata_bytes", f"unusable_index_{FRAG_ORDER}",
              f"extfrag_index_{FRAG_ORDER}"] + [f"free_blocks_o{o}" for o in range(NR_PAGE_ORDERS)]


def timeseries_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        for s in r.get("samples") or []:
            row = {"label": r.get("label"), "design": r.get("design"), "machine": r["machine"]["spec"],
                   "workload": r["config"]["workload"], "seed": r["config"]["seed"]}
            for k in CSV_FIELDS[5:12]:
                row[k] = s.get(k, "")
            for o, n in enumerate(s.get("free_blocks_per_order", [])):
                row[f"free_blocks_o{o}"] = n
            rows.append(row)
    return rows


def write_csv(path: Path, results: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in timeseries_rows(results):
        w.writerow(row)
    atomic_write(path, buf.getvalue())



# --- Markdown / HTML ------------------------------------------------------------------------
def md_table(cols: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|")
    out = ["| metric | " + " | ".join(esc(c) for c in cols) + " |",
           "|---|" + "---:|" * len(cols)]
    for name, cells in rows:
        label = ("· " if name.startswith("  ") else "") + name.strip()
        out.append(f"| {esc(label)} | " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(out)


def html_table(cols: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    out = ["<table><thead><tr><th>metric</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
           + "</tr></thead><tbody>"]
    for name, cells in rows:
        ind = ' class="sub"' if name.startswith("  ") else ""
        out.append(f"<tr><td{ind}>{html.escape(name.strip())}</td>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _header_lines(doc: dict[str, Any]) -> list[str]:
    run = doc.get("run", {})
    lines = [f"memdesc {doc.get('memdesc_version', '?')}",
             f"machine: {run.get('machine')} ({fmt_bytes(run.get('ram_bytes'))} RAM)",
             f"workload: {run.get('workload')} (kernel {run.get('kernel')}, seed {run.get('seed')}"
             + (f", {run['ops']:,} ops" if run.get("ops") else "") + ")"]
    if doc.get("command"):
        lines.append(f"command: {doc['command']}")
    if doc.get("wall_s") is not None:
        lines.append(f"wall time: {doc['wall_s']:.1f} s")
    return lines


def markdown_report(doc: dict[str, Any], plots: Sequence[tuple[str, Path]], title: str) -> str:
    results = doc["results"]
    cols, rows = table_rows(results)
    parts = [f"# {title}", "", *(f"- {x}" for x in _header_lines(doc)), "", "## Summary", ""]
    parts += [f"- {w}" for w in who_wins(results)]
    parts += ["", "## Side by side", "", md_table(cols, rows), ""]
    skipped = not_run(results)
    if skipped:
        parts += ["## Not compared", ""] + [f"- **{lab}** ({st}): {why}" for lab, st, why in skipped] + [""]
    for cap, p in plots:
        parts += [f"## {cap}", "", f"![{cap}]({p.name})", ""]
    return "\n".join(parts)


def html_report(doc: dict[str, Any], plots: Sequence[tuple[str, Path]], title: str) -> str:
    results = doc["results"]
    cols, rows = table_rows(results)
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;"
           "text-align:right}td:first-child{text-align:left}td.sub{padding-left:2em;color:#555}"
           "th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}code{background:#f4f4f4}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1><ul>"]
    parts += [f"<li>{html.escape(x)}</li>" for x in _header_lines(doc)]
    parts.append("</ul><h2>Summary</h2><ul>")
    parts += [f"<li>{html.escape(w)}</li>" for w in who_wins(results)]
    parts.append("</ul><h2>Side by side</h2>")
    parts.append(html_table(cols, rows))
    skipped = not_run(results)
    if skipped:
        parts.append("<h2>Not compared</h2><ul>" + "".join(
            f"<li><b>{html.escape(lab)}</b> ({html.escape(st)}): {html.escape(why)}</li>"
            for lab, st, why in skipped) + "</ul>")
    for cap, p in plots:
        b64 = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(cap)}</h2><img alt='{html.escape(cap)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(doc: dict[str, Any], out: Path, title: str = "memdesc compare") -> list[Path]:
    """results.json, timeseries.csv, PNG plots, report.md and report.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results = doc["results"]
    files = [out / "results.json", out / "timeseries.csv"]
    atomic_write(files[0], json.dumps(doc, indent=1, default=str))
    write_csv(files[1], results)
    plots = make_plots(results, out)
    atomic_write(out / "report.md", markdown_report(doc, plots, title))
    atomic_write(out / "report.html", html_report(doc, plots, title))
    return files + [p for _, p in plots] + [out / "report.md", out / "report.html"]


# --- findings ---------------------------------------------------------------------------------
FINDINGS_INTRO = """\
# Findings: can struct page be one or two words, and at what cost?

This file is generated by memdesc from real runs; do not edit it by hand. Regenerate with

    {command}

Every design runs on the identical event stream (same workload, same seed) on the same modelled
machine. Byte counts come from what each design actually stores: the memmap (struct page times
present pages) plus the dynamic metadata it takes from the modelled allocator at run time
(slab pages holding folio/slab/ptdesc descriptors and struct buddy, radix-tree node pages).
"Peak" is the largest value seen at any sample point. Fragmentation indices are the kernel's
(mm/vmstat.c) computed over all zones' free lists at order {order}.
"""


def _answer(sections: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """The headline answer, derived from the numbers of every scenario."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for _, doc in sections:
        for r in doc["results"]:
            if "metadata" in r:
                by_label.setdefault(r["label"], []).append(key_metrics(r))
    if not by_label:
        return ["No design could be run."]
    lines = _verdict(by_label) + [""]
    lin = by_label.get("linked")
    for lab, ks in by_label.items():
        pct = [k["peak_metadata_pct_of_ram"] for k in ks]
        fails = sum(k["alloc_failures"] for k in ks)
        viol = sum(k["allocs_in_free_path"] for k in ks) + sum(sum(k["unmovable_meta"].values()) for k in ks)
        cma = [k["cma_all_ok"] for k in ks if k["cma_all_ok"] is not None]
        off = [k["offline_all_ok"] for k in ks if k["offline_all_ok"] is not None]
        extra = ""
        if lin and lab != "linked":
            lf = sum(k["alloc_failures"] for k in lin)
            extra = f", {fails - lf:+,} allocation failures vs linked"
        else:
            extra = f", {fails:,} allocation failures"
        span = f"{min(pct):.3f} %" if f"{min(pct):.3f}" == f"{max(pct):.3f}" else f"{min(pct):.3f}-{max(pct):.3f} %"
        s = f"**{lab}** ({ks[0]['struct_page_bytes']} B struct page): peak metadata {span} of RAM{extra}"
        s += f"; rule violations: {viol:,}" if viol else "; no rule violations"
        if cma:
            s += f"; whole-CMA cma_alloc ok in {sum(cma)}/{len(cma)} scenario(s)"
        if off:
            s += f"; offline of all ZONE_MOVABLE ok in {sum(off)}/{len(off)} scenario(s)"
        lines.append(f"- {s}.")
    return lines


def _problems(ks: list[dict[str, Any]], base: list[dict[str, Any]] | None) -> list[str]:
    out = []
    fails = sum(k["alloc_failures"] for k in ks) - (sum(k["alloc_failures"] for k in base) if base else 0)
    if fails > 0:
        out.append(f"{fails:,} more allocation failures than linked")
    fp = sum(k["allocs_in_free_path"] for k in ks)
    if fp:
        out.append(f"{fp:,} allocations on the free path")
    um = sum(sum(k["unmovable_meta"].values()) for k in ks)
    if um:
        out.append(f"{um:,} unmovable-metadata-in-HighMem/Movable/CMA events")
    inv = sum(sum(k["invariant_violations"].values()) for k in ks)
    if inv:
        out.append(f"{inv:,} invariant violations")
    for key, what in (("cma_all_ok", "whole-CMA cma_alloc"), ("offline_all_ok", "offlining all of ZONE_MOVABLE")):
        if base is None:
            break
        mine = [k[key] for k in ks if k[key] is not None]
        theirs = [k[key] for k in base if k[key] is not None]
        if sum(1 for m in mine if not m) > sum(1 for t in theirs if not t):
            out.append(f"{what} fails where linked succeeds")
    to = [k for k in ks if k["status"] == "timeout"]
    if to:
        out.append(f"timed out in {len(to)} scenario(s)")
    return out


def _verdict(by_label: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One paragraph per struct page size: which designs are clean and what they cost."""
    base = by_label.get("linked")
    sizes = sorted({ks[0]["struct_page_bytes"] for ks in by_label.values()}, reverse=True)
    lines = []
    for size in sizes:
        labs = [lab for lab, ks in by_label.items() if ks[0]["struct_page_bytes"] == size]
        clean, dirty = [], []
        for lab in labs:
            ks = by_label[lab]
            probs = _problems(ks, base if lab != "linked" else None)
            pct = max(k["peak_metadata_pct_of_ram"] for k in ks)
            (dirty if probs else clean).append((lab, pct, probs))
        words = {64: "struct page today (8 words)", 16: "two words (16 B)", 8: "one word (8 B)"}.get(
            size, f"{size} B")
        s = f"- **{words}**: "
        if clean:
            ranked = sorted(clean, key=lambda x: x[1])
            s += "clean in every scenario run: " + ", ".join(
                f"{lab} (peak metadata at most {pct:.3f} % of RAM)" for lab, pct, _ in ranked)
        else:
            s += "no design of this size ran cleanly in every scenario"
        if dirty:
            s += "; with problems: " + "; ".join(f"{lab}: {', '.join(p)}" for lab, _, p in dirty)
        lines.append(s + ".")
    if base:
        lines.append(f"- For reference, linked costs {max(k['metadata_pct_of_ram'] for k in base):.3f} % of RAM. "
                     "Problems are counted relative to linked on the same event stream.")
    return lines


def write_findings(path: Path, sections: Sequence[tuple[str, dict[str, Any]]], command: str) -> None:
    """docs/findings.md from (title, compare document) sections."""
    parts = [FINDINGS_INTRO.format(command=command, order=FRAG_ORDER),
             f"memdesc version {__version__}.", "", "## The answer so far", "", *_answer(sections), ""]
    for i, (title, doc) in enumerate(sections, 1):
        results = doc["results"]
        cols, rows = table_rows(results)
        parts += [f"## {i}. {title}", "", *(f"- {x}" for x in _header_lines(doc)), "", "What the numbers say:", ""]
        parts += [f"- {w}" for w in who_wins(results)]
        parts += ["", md_table(cols, rows), ""]
    atomic_write(path, "\n".join(parts))



# --- sweep ----------------------------------------------------------------------------------
def write_sweep_report(cfg: dict[str, Any], res: SweepResult, out: Path, command: str = "") -> list[Path]:
    """sweep.json, summary.csv, a bar plot, report.md and report.html of a sweep in ``out``."""
    rows = summary_rows(res.cells)
    files = [out / "sweep.json", out / "summary.csv", out / "report.md", out / "report.html"]
    atomic_write(files[0], json.dumps({"memdesc_version": __version__, "sweep": cfg, "command": command,
                                       "pending": res.pending, "cells": res.cells}, default=str))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write(files[1], buf.getvalue())
    plot = plot_sweep(rows, out / "sweep_metadata.png")
    head = ["design", "machine", "workload", "seed", "struct page B", "peak metadata % of RAM", "alloc failures",
            "order>=3 %", "order 9 %", "CMA/offline all", "rule violations", "unusable idx o9 max", "ops/s"]
    title = cfg.get("title") or "memdesc sweep"
    md = [f"# {title}", "", f"- memdesc {__version__}", f"- command: {command}" if command else "",
          f"- {len(res.cells)} cells finished, {res.pending} pending", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in sweep_cells(r)) + " |" for r in rows]
    if plot:
        md += ["", f"![metadata by design and machine]({plot.name})"]
    atomic_write(files[2], "\n".join(md) + "\n")
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
         "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
         f"</style></head><body><h1>{html.escape(title)}</h1><p>{len(res.cells)} cells finished, "
         f"{res.pending} pending. {html.escape(command)}</p><table><tr>"
         + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in sweep_cells(r)) + "</tr>" for r in rows]
    h.append("</table>")
    if plot:
        h.append(f"<img alt='metadata' src='data:image/png;base64,{base64.b64encode(plot.read_bytes()).decode()}'>")
    h.append("</body></html>")
    atomic_write(files[3], "\n".join(h))
    return files + ([plot] if plot else [])


__all__ = ["write_report", "write_findings", "write_csv", "write_sweep_report", "markdown_report",
           "html_report", "md_table"]
