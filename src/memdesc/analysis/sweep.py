"""``memdesc sweep FILE.toml``: designs x machines x workloads x seeds.

Every cell is one :func:`memdesc.analysis.compare.run_job`. Cells run on local processes by
default, or on a Dask distributed cluster given ``--scheduler ADDRESS``; both are a
``concurrent.futures.Executor`` (``distributed.Client.get_executor()``), so there is one
code path. Each finished cell is written atomically to ``DIR/cells/<key>.json`` as soon as
it arrives, so an interrupted sweep keeps what it finished, and a rerun skips those cells.

The TOML file (see examples/sweep.toml)::

    [sweep]
    designs = ["linked", "embedded", "buddy-desc", "radix-deque", "radix-deque:borrow"]
    machines = ["x86_64:256M", "x86_64:256M,movablecore=50%"]
    workloads = ["synthetic:mixed"]
    seeds = [1, 2]
    ops = 20000            # per cell (0 with a trace: the whole trace)
    kernel = "6.1"
    sample_every = 1000
    check_every = 0
    mm_probe = true
    timeout = 0            # per-cell budget in seconds, 0: none
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memdesc.analysis.compare import (
    default_jobs_n,
    fmt_bytes,
    key_metrics,
    make_jobs,
    parse_designs,
    run_job,
    short_spec,
)
from memdesc.fileio import atomic_write

SWEEP_KEYS = {"designs", "machines", "workloads", "seeds", "ops", "kernel", "sample_every", "check_every",
              "mm_probe", "timeout", "lenient", "compaction", "pcp", "title"}


class SweepError(ValueError):
    pass


@dataclass
class SweepResult:
    cells: list[dict[str, Any]] = field(default_factory=list)  # every finished cell, in grid order
    ran: int = 0  # cells computed by this invocation
    reused: int = 0  # cells found finished in DIR/cells
    pending: int = 0  # cells not finished (interrupted / limit)


def load_sweep(path: str | Path) -> dict[str, Any]:
    import tomllib
    with open(path, "rb") as f:
        data = tomllib.load(f)
    cfg = data.get("sweep", data)
    unknown = set(cfg) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown sweep keys {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(SWEEP_KEYS))})")
    return normalise(cfg)


def normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    out = dict(cfg)
    for k, default in (("designs", None), ("machines", [""]), ("workloads", ["default"]), ("seeds", [1])):
        v = out.get(k, default)
        if isinstance(v, str | int):
            v = [v]
        out[k] = v
    out["designs"] = [v.label for v in parse_designs(out["designs"])]
    out.setdefault("ops", 0)
    out.setdefault("kernel", "6.1")
    out.setdefault("sample_every", 1000)
    return out


def cell_jobs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (design, machine, workload, seed) job, with its key."""
    variants = parse_designs(cfg["designs"])
    jobs = []
    for machine, workload, seed in itertools.product(cfg["machines"], cfg["workloads"], cfg["seeds"]):
        for j in make_jobs(variants, machine=machine or None, workload=workload, ops=int(cfg.get("ops", 0)),
                           seed=int(seed), kernel=str(cfg.get("kernel", "6.1")),
                           check_every=int(cfg.get("check_every", 0)), sample_every=int(cfg.get("sample_every", 0)),
                           mm_probe=bool(cfg.get("mm_probe", False)), lenient=bool(cfg.get("lenient", True)),
                           pcp=bool(cfg.get("pcp", True)), compaction=bool(cfg.get("compaction", False)),
                           timeout=float(cfg.get("timeout", 0))):
            j["key"] = cell_key(j)
            jobs.append(j)
    return jobs


def cell_key(job: dict[str, Any]) -> str:
    """File-name-safe, readable and unique: label, machine, workload, seed and a hash of the job."""
    ident = {k: v for k, v in job.items() if k not in ("key", "timeout")}
    h = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:10]
    wl = Path(job["workload"]).name if "/" in job["workload"] else job["workload"]
    readable = f"{job['label']}__{job['machine'] or 'default'}__{wl}__s{job['seed']}"
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", readable)[:150] + f"__{h}"


def _load_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_sweep(cfg: dict[str, Any], out: Path, *, scheduler: str | None = None, n_jobs: int | None = None,
              executor: Executor | None = None, limit: int | None = None, retry_errors: bool = False,
              on_cell: Callable[[dict[str, Any], int, int], None] | None = None) -> SweepResult:
    """Run the missing cells of the sweep into ``out/cells``; return every finished cell.
    ``limit`` stops after that many new cells (what an interruption looks like)."""
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    jobs = cell_jobs(cfg)
    done: dict[str, dict[str, Any]] = {}
    for j in jobs:
        c = _load_cell(cells_dir / f"{j['key']}.json")
        if c is not None and (not retry_errors or c.get("status") != "error"):
            done[j["key"]] = c
    res = SweepResult(reused=len(done))
    todo = [j for j in jobs if j["key"] not in done]
    if limit is not None:
        todo = todo[:limit]
    client = None
    own = False
    if todo:
        if executor is None and scheduler:
            from distributed import Client
            client = Client(scheduler)
            executor = client.get_executor()
        elif executor is None:
            executor = ProcessPoolExecutor(max_workers=max(1, min(n_jobs or default_jobs_n(), len(todo))))
            own = True
        try:
            futs = {executor.submit(run_job, j): j for j in todo}
            for f in as_completed(futs):
                j = futs[f]
                try:
                    r = f.result()
                except Exception as e:  # noqa: BLE001 - a lost worker: record, a rerun retries it
                    r = {"label": j["label"], "design": j["design"], "status": "error",
                         "reason": f"worker failed: {type(e).__name__}: {e}"}
                r["job"] = j
                r["key"] = j["key"]
                atomic_write(cells_dir / f"{j['key']}.json", json.dumps(r, default=str))
                done[j["key"]] = r
                res.ran += 1
                if on_cell:
                    on_cell(r, res.ran, len(todo))
        except KeyboardInterrupt:
            for f in futs:
                f.cancel()
            raise
        finally:
            if own:
                executor.shutdown(wait=False, cancel_futures=True)
            if client is not None:
                client.close()
    res.cells = [done[j["key"]] for j in jobs if j["key"] in done]
    res.pending = len(jobs) - len(res.cells)
    return res


# --- gathering ----------------------------------------------------------------------------
SUMMARY_FIELDS = ["design", "machine", "workload", "seed", "status", "struct_page_bytes", "memmap_bytes",
                  "dynamic_bytes_peak", "peak_metadata_bytes", "metadata_pct_of_ram", "peak_metadata_pct_of_ram",
                  "alloc_failures", "high_order_rate", "order9_rate", "cma_all_ok", "offline_all_ok",
                  "allocs_in_free_path", "unmovable_meta", "invariant_violations", "unusable_index_9_max",
                  "ops", "ops_per_s", "reason"]


def summary_rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for c in cells:
        j = c.get("job", {})
        row: dict[str, Any] = {"design": c.get("label"), "machine": short_spec(j.get("machine") or None),
                               "workload": short_spec(j.get("workload")), "seed": j.get("seed"),
                               "status": c.get("status"), "reason": c.get("reason", "")}
        km = key_metrics(c)
        for k in SUMMARY_FIELDS:
            if k in km:
                v = km[k]
                row[k] = sum(v.values()) if isinstance(v, dict) else v
        rows.append(row)
    return rows


def render_sweep(rows: list[dict[str, Any]], title: str = "memdesc sweep") -> Any:
    from rich.table import Table
    t = Table(title=title)
    cols = ("design", "machine", "workload", "seed", "B/page", "peak meta %", "fails",
            "o>=3 %", "o9 %", "CMA/offl.", "rule viol.", "unus9 max", "ops/s")
    cells = [_cells(r) for r in rows]
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


def _cells(r: dict[str, Any]) -> list[str]:
    if "metadata_pct_of_ram" not in r:
        return [str(r["design"]), str(r["machine"]), str(r["workload"]), str(r["seed"]),
                f"{r['status']}: {r['reason']}"[:60]] + [""] * 8
    mm = "/".join("-" if r.get(k) is None else ("ok" if r[k] else "FAIL") for k in ("cma_all_ok", "offline_all_ok"))
    return [str(r["design"]), str(r["machine"]), str(r["workload"]), str(r["seed"]), f"{r['struct_page_bytes']}",
            f"{r['peak_metadata_pct_of_ram']:.3f}", f"{r['alloc_failures']:,}",
            _pct(r.get("high_order_rate")), _pct(r.get("order9_rate")), mm,
            f"{r['allocs_in_free_path'] + r['unmovable_meta']:,}", f"{r['unusable_index_9_max']:.3f}",
            f"{r['ops_per_s']:,.0f}"]


def write_sweep_report(cfg: dict[str, Any], res: SweepResult, out: Path, command: str = "") -> list[Path]:
    import csv
    import html
    import io

    from memdesc import __version__
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
    plot = _plot_sweep(rows, out / "sweep_metadata.png")
    head = ["design", "machine", "workload", "seed", "struct page B", "peak metadata % of RAM", "alloc failures",
            "order>=3 %", "order 9 %", "CMA/offline all", "rule violations", "unusable idx o9 max", "ops/s"]
    title = cfg.get("title") or "memdesc sweep"
    md = [f"# {title}", "", f"- memdesc {__version__}", f"- command: {command}" if command else "",
          f"- {len(res.cells)} cells finished, {res.pending} pending", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    if plot:
        md += ["", f"![metadata by design and machine]({plot.name})"]
    atomic_write(files[2], "\n".join(md) + "\n")
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
         "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
         f"</style></head><body><h1>{html.escape(title)}</h1><p>{len(res.cells)} cells finished, "
         f"{res.pending} pending. {html.escape(command)}</p><table><tr>"
         + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows]
    h.append("</table>")
    if plot:
        import base64
        h.append(f"<img alt='metadata' src='data:image/png;base64,{base64.b64encode(plot.read_bytes()).decode()}'>")
    h.append("</body></html>")
    atomic_write(files[3], "\n".join(h))
    return files + ([plot] if plot else [])


def _plot_sweep(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: peak metadata % of RAM per design, one group per machine (mean over
    workloads and seeds)."""
    try:
        from memdesc.report.html import _plt
        plt = _plt()
    except ImportError:
        return None
    ok = [r for r in rows if "peak_metadata_pct_of_ram" in r]
    if not ok:
        return None
    machines = list(dict.fromkeys(r["machine"] for r in ok))
    designs = list(dict.fromkeys(r["design"] for r in ok))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(machines) * max(1, len(designs)) / 3 + 4), 4.5))
    width = 0.8 / len(designs)
    for i, d in enumerate(designs):
        vals = []
        for m in machines:
            xs = [r["peak_metadata_pct_of_ram"] for r in ok if r["design"] == d and r["machine"] == m]
            vals.append(sum(xs) / len(xs) if xs else 0.0)
        ax.bar([k + i * width for k in range(len(machines))], vals, width, label=d)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(machines))], machines, fontsize=8)
    ax.set_ylabel("peak metadata, % of RAM")
    ax.set_title("struct page + dynamic metadata by design and machine (mean over workloads, seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- command line ----------------------------------------------------------------------------
def add_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="designs x machines x workloads x seeds from a TOML file",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="sweep TOML file (see examples/sweep.toml)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="output directory (default: sweep-<file stem>)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask distributed scheduler address (tcp://host:8786); default: local processes")
    p.add_argument("--jobs", "-j", type=int, default=None, help="local worker processes (default min(2, cpus))")
    p.add_argument("--retry-errors", action="store_true", help="rerun cells that finished with an error")
    p.set_defaults(fn=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from memdesc.cli import _console
    con = _console()
    cfg = load_sweep(args.file)
    out = Path(args.out or f"sweep-{Path(args.file).stem}")
    t0 = time.perf_counter()

    def on_cell(r: dict[str, Any], i: int, n: int) -> None:
        con.print(f"[dim][{i}/{n}] {r['key']}: {r.get('status')} {r.get('reason', '')}"
                  f" ({r.get('wall_s', 0):.1f} s)[/dim]", highlight=False)
    interrupted = False
    try:
        res = run_sweep(cfg, out, scheduler=args.scheduler, n_jobs=args.jobs, retry_errors=args.retry_errors,
                        on_cell=on_cell)
    except KeyboardInterrupt:
        interrupted = True
        res = run_sweep(cfg, out, limit=0)  # gather what is on disk
    con.print(render_sweep(summary_rows(res.cells), cfg.get("title") or f"memdesc sweep {args.file}"))
    cmd = f"memdesc sweep {args.file} --out {out}" + (f" --scheduler {args.scheduler}" if args.scheduler else "")
    files = write_sweep_report(cfg, res, out, cmd)
    con.print(f"{res.ran} cells run, {res.reused} reused, {res.pending} pending; "
              f"{time.perf_counter() - t0:.1f} s. wrote {', '.join(str(f) for f in files)}")
    if interrupted:
        print("memdesc sweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


__all__ = ["load_sweep", "cell_jobs", "cell_key", "run_sweep", "summary_rows", "write_sweep_report",
           "SweepResult", "fmt_bytes"]
