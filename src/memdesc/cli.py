"""The ``memdesc`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from memdesc import __version__
from memdesc.analysis import compare as compare_mod
from memdesc.analysis import sweep as sweep_mod
from memdesc.analysis.compare import default_jobs_n, describe_run, fmt_bytes, make_jobs, parse_designs, run_jobs
from memdesc.analysis.findings import (
    FINDINGS_DESIGNS,
    FINDINGS_SCENARIOS,
    QUICK_SCENARIOS,
    load_sections,
    run_findings,
)
from memdesc.analysis.sweep import load_sweep, run_sweep, summary_rows
from memdesc.analysis.validate import validate
from memdesc.designs import DesignError, design_names
from memdesc.driver.boot import new_allocator
from memdesc.driver.runner import Runner, run_summary
from memdesc.fileio import finite, json_default
from memdesc.machine import MachineSpecError, format_size, parse_machine
from memdesc.mm import vmstat
from memdesc.mm.compaction import install_direct_compaction
from memdesc.mm.internal import MemdescError
from memdesc.report.html import write_findings, write_report, write_sweep_report
from memdesc.report.text import render_compare, render_run_summary, render_sweep, render_trace_stats, render_validation
from memdesc.workloads import default_machine_spec, open_workload
from memdesc.workloads.replay import trace_stats

MACHINE_HELP = ("machine spec: x86_64:16G[,movablecore=25%%][,cma=256M][,cpus=N], i386:4G, numa:2x8G, "
                "zoneinfo:PATH (default: the bundled trace's machine)")


def _parse_design_opts(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"memdesc: --design-opt expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        val: Any = v
        for conv in (int, float):
            try:
                val = conv(v)
                break
            except ValueError:
                pass
        if v in ("true", "false"):
            val = v == "true"
        out[k] = val
    return out


def _console():
    return Console(width=None if sys.stdout.isatty() else 140)


def cmd_machine(args: argparse.Namespace) -> int:
    m = parse_machine(args.spec)
    a = new_allocator(m, args.design, kernel=args.kernel)
    con = _console()
    con.print(m.describe())
    t = Table(title=f"zones after boot ({args.design}, kernel {args.kernel}, min_free_kbytes {a.min_free_kbytes})")
    for col in ("node", "zone", "start_pfn", "spanned", "present", "managed", "reserved", "cma",
                "min", "low", "high", "pcp batch/high"):
        t.add_column(col, justify="right")
    for z in a.zones:
        if not z.present:
            continue
        t.add_row(str(z.nid), z.name, f"{z.start_pfn:#x}", str(z.spanned), str(z.present), str(z.managed),
                  str(z.reserved), str(z.cma_pages), str(z.watermark[0]), str(z.watermark[1]),
                  str(z.watermark[2]), f"{z.pcp[0].batch}/{z.pcp[0].high}")
    con.print(t)
    md = a.metadata_summary()
    con.print(f"memmap: {md['struct_page_bytes']} B/page, {format_size(md['memmap_bytes'])} "
              f"({md['metadata_pct_of_ram']:.2f}% of RAM)")
    return 0


def build_allocator(args: argparse.Namespace) -> Any:
    spec = args.machine or default_machine_spec()
    m = parse_machine(spec)
    opts = _parse_design_opts(getattr(args, "design_opt", []))
    if getattr(args, "policy", None):
        opts["policy"] = args.policy
    if getattr(args, "words", None):
        opts["words"] = args.words
    return new_allocator(m, args.design, kernel=args.kernel, pcp=not args.no_pcp, design_options=opts)


def cmd_run(args: argparse.Namespace) -> int:
    a = build_allocator(args)
    wl = open_workload(args.workload, a.machine.present_pages, args.ops, args.seed, kernel=args.kernel,
                       config_cma=a.machine.config_cma, lenient=args.lenient)
    if args.compaction:
        try:
            install_direct_compaction(a)
        except ImportError:
            pass
    con = _console()
    runner = Runner(a, check_every=args.check_every, sample_every=args.sample_every,
                    pfn_exact=args.pfn_exact, lenient=args.lenient)
    max_ops = args.ops if wl.kind == "trace" and args.ops else None
    if args.progress and sys.stderr.isatty():
        with Progress(console=con, transient=True) as prog:
            task = prog.add_task(f"{args.design} on {wl.name}", total=max_ops or args.ops or None)
            runner.progress = lambda n: prog.update(task, completed=n)
            runner.run(wl.events, max_ops=max_ops)
    else:
        runner.run(wl.events, max_ops=max_ops)
    probe = None
    if args.mm_probe:
        # the questions ZONE_MOVABLE and CMA exist to answer: can all of it be had back?
        ops = runner.mm_ops()
        probe = {"cma_alloc_all": ops.cma_alloc_all(), "offline_all_movable": ops.offline_all_movable()}
    if args.check_every or args.final_check or args.mm_probe:
        runner.check()
    config = {"design": args.design, "design_options": a.design.options, "kernel": args.kernel,
              "pcp": not args.no_pcp, "workload": wl.name, "workload_kind": wl.kind, "ops": args.ops,
              "seed": args.seed, "check_every": args.check_every, "pfn_exact": args.pfn_exact,
              "lenient": args.lenient, "machine": a.machine.spec}
    summary = run_summary(runner, config)
    if probe is not None:
        summary["mm_probe"] = probe
    if wl.stats is not None:
        summary["replay"] = stats_dict(wl.stats)
    con.print(render_run_summary(summary))
    if args.proc:
        for name in args.proc.split(","):
            fn = getattr(vmstat, name.strip(), None)
            if fn is None:
                raise SystemExit(f"memdesc: unknown --proc file {name!r} (buddyinfo, pagetypeinfo, zoneinfo)")
            sys.stdout.write(fn(a))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
        con.print(f"wrote {args.json}")
    bad = sum(summary["violations"].values())
    return 1 if bad and args.strict else 0


def stats_dict(stats: Any) -> dict[str, Any]:
    """A (slots) dataclass of counters as a JSON-able dict."""
    if dataclasses.is_dataclass(stats):
        return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return dict(vars(stats))


def cmd_trace_stats(args: argparse.Namespace) -> int:
    st = trace_stats(args.file, kernel=args.kernel, lenient=args.lenient)
    sys.stdout.write(render_trace_stats(st))
    if args.json:
        Path(args.json).write_text(json.dumps(st, indent=1, default=str))
    return 0


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--machine", "-m", default=None, help=MACHINE_HELP)
    p.add_argument("--design", "-d", default="linked", help=f"one of: {', '.join(design_names())}")
    p.add_argument("--policy", default=None, help="radix-deque node placement policy")
    p.add_argument("--words", type=int, default=None, help="radix-deque struct page words (1 or 2)")
    p.add_argument("--design-opt", action="append", default=[], metavar="K=V", help="design option")
    p.add_argument("--kernel", default="6.1", choices=["6.1", "6.19"],
                   help="kernel semantics (traces come from 6.1; default 6.1)")
    p.add_argument("--workload", "-w", default="default",
                   help="synthetic:NAME, spec.toml, a trace file (.xz/.gz/.zst ok), '-' for stdin, or default")
    p.add_argument("--ops", type=int, default=0, help="operations (synthetic) or max ops (trace)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-pcp", action="store_true", help="disable per-CPU page lists")
    p.add_argument("--lenient", action="store_true", help="skip and count bad input instead of stopping")
    p.add_argument("--pfn-exact", action="store_true", help="take the traced pfn when it is free in the model")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="memdesc", description="Executable model of the Linux page allocator "
                                 "for comparing struct page / memdesc designs.")
    ap.add_argument("--version", action="version", version=f"memdesc {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("machine", help="show a machine layout after boot")
    p.add_argument("spec", help=MACHINE_HELP)
    p.add_argument("--design", "-d", default="linked")
    p.add_argument("--kernel", default="6.19", choices=["6.1", "6.19"])
    p.set_defaults(fn=cmd_machine)

    p = sub.add_parser("run", help="run a workload on one design")
    add_run_args(p)
    p.add_argument("--check-every", type=int, default=0, metavar="N", help="run the invariant checker every N ops")
    p.add_argument("--final-check", action="store_true", help="run the checker once at the end")
    p.add_argument("--sample-every", type=int, default=0, metavar="N", help="record metrics every N ops")
    p.add_argument("--compaction", action="store_true", help="direct compaction on high-order failures")
    p.add_argument("--mm-probe", action="store_true",
                   help="at the end, cma_alloc every whole CMA area and offline every ZONE_MOVABLE block")
    p.add_argument("--json", default=None, metavar="FILE", help="write every metric and the config as JSON")
    p.add_argument("--proc", default=None, help="print /proc files at the end: buddyinfo,pagetypeinfo,zoneinfo")
    p.add_argument("--strict", action="store_true", help="exit 1 if any invariant was violated")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("trace", help="trace utilities")
    tsub = p.add_subparsers(dest="tcmd", required=True)
    q = tsub.add_parser("stats", help="a quick look at a trace before replaying it")
    q.add_argument("file")
    q.add_argument("--kernel", default="6.1", choices=["6.1", "6.19"])
    q.add_argument("--lenient", action="store_true")
    q.add_argument("--json", default=None)
    q.set_defaults(fn=cmd_trace_stats)

    add_compare_parser(sub)
    add_validate_parser(sub)
    add_sweep_parser(sub)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (MachineSpecError, DesignError, MemdescError, ValueError, OSError) as e:
        print(f"memdesc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memdesc: interrupted", file=sys.stderr)
        return 130


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--machine", "-m", default=None, help=MACHINE_HELP)
    p.add_argument("--workload", "-w", default="default",
                   help="synthetic:NAME, spec.toml, a trace file, or default (the bundled real trace)")
    p.add_argument("--designs", "-d", default=None,
                   help="comma-separated design[:k=v[,k=v]] or radix-deque:POLICY (default: every registered "
                        "design with its default options)")
    p.add_argument("--kernel", default="6.1", choices=["6.1", "6.19"])
    p.add_argument("--ops", type=int, default=0, help="operations (synthetic; default 100000) or max ops (trace)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", "-j", type=int, default=None, help="worker processes (default min(2, cpus))")
    p.add_argument("--check-every", type=int, default=0, metavar="N", help="invariant checker every N ops")
    p.add_argument("--sample-every", type=int, default=1000, metavar="N", help="time-series sample every N ops")
    p.add_argument("--mm-probe", action="store_true",
                   help="at the end, cma_alloc every whole CMA area and offline every ZONE_MOVABLE block")
    p.add_argument("--compaction", action="store_true", help="direct compaction on high-order failures")
    p.add_argument("--no-pcp", action="store_true")
    p.add_argument("--strict-input", action="store_true", help="stop on bad workload input instead of counting it")
    p.add_argument("--timeout", type=float, default=0, metavar="S",
                   help="per-design time budget in seconds (0: none); a design over it is reported as timeout")

def add_compare_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="run every design on the identical event stream, side by side",
                       description=compare_mod.__doc__.split("\n\n")[0])
    add_common_args(p)
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="write results.json, timeseries.csv, report.md, report.html and PNG plots")
    p.add_argument("--findings", default=None, metavar="FILE", help="write a findings document (Markdown)")
    p.add_argument("--json", default=None, metavar="FILE", help="write all results as JSON")
    p.set_defaults(fn=cmd_compare)

    q = sub.add_parser("findings", help="run the standard scenarios and write docs/findings.md")
    q.add_argument("--out", "-o", default="docs/findings.md", metavar="FILE")
    q.add_argument("--designs", "-d", default=None, help="variants (default: every design and radix-deque policy)")
    q.add_argument("--jobs", "-j", type=int, default=None)
    q.add_argument("--quick", action="store_true", help="small machines and few ops (a smoke test)")
    q.add_argument("--timeout", type=float, default=90, metavar="S", help="per-design time budget")
    q.add_argument("--report-dir", default=None, metavar="DIR", help="also write full reports per scenario here")
    q.add_argument("--from-reports", default=None, metavar="DIR",
                   help="do not run: rebuild the findings from a previous --report-dir")
    q.set_defaults(fn=cmd_findings)

def jobs_from_args(args: argparse.Namespace) -> list[dict[str, Any]]:
    return make_jobs(parse_designs(args.designs), machine=args.machine, workload=args.workload, ops=args.ops,
                     seed=args.seed, kernel=args.kernel, check_every=args.check_every,
                     sample_every=args.sample_every, mm_probe=args.mm_probe, lenient=not args.strict_input,
                     pcp=not args.no_pcp, compaction=args.compaction, timeout=args.timeout)

def compare_command(args: argparse.Namespace, extra: Sequence[str] = ()) -> str:
    """The ``memdesc compare`` command line that reproduces a comparison (from parsed args)."""
    parts = ["memdesc", "compare"]
    if args.machine:
        parts += ["--machine", args.machine]
    if args.workload != "default":
        parts += ["--workload", args.workload]
    if args.designs:
        parts += ["--designs", ",".join(v.label for v in parse_designs(args.designs))]
    for flag, val, default in (("--kernel", args.kernel, "6.1"), ("--ops", args.ops, 0), ("--seed", args.seed, 1),
                               ("--check-every", args.check_every, 0), ("--sample-every", args.sample_every, 1000),
                               ("--timeout", args.timeout, 0)):
        if val != default:
            parts += [flag, f"{val:g}" if isinstance(val, float) else str(val)]
    for flag, on in (("--mm-probe", args.mm_probe), ("--compaction", args.compaction), ("--no-pcp", args.no_pcp),
                     ("--strict-input", args.strict_input)):
        if on:
            parts.append(flag)
    return " ".join(shlex.quote(p) for p in [*parts, *extra])

def cmd_compare(args: argparse.Namespace) -> int:

    con = _console()
    jobs = jobs_from_args(args)
    if not jobs:
        raise SystemExit("memdesc compare: no designs")
    t0 = time.perf_counter()

    def done(r: dict[str, Any]) -> None:
        con.print(f"[dim]{r['label']}: {r.get('status')} "
                  f"{r.get('ops', 0):,} ops in {r.get('wall_s', 0):.1f} s {r.get('reason', '')}[/dim]",
                  highlight=False)
    results = run_jobs(jobs, args.jobs, on_done=done)
    wall = time.perf_counter() - t0
    meta = describe_run(results, jobs)
    title = (f"memdesc {__version__} compare: {meta['machine']} "
             f"({fmt_bytes(meta['ram_bytes'])} RAM), workload {meta['workload']}, kernel {args.kernel}, "
             f"seed {args.seed}")
    con.print(render_compare(results, title))
    con.print(f"[dim]{len(jobs)} runs in {wall:.1f} s wall on {args.jobs or default_jobs_n()} worker(s)[/dim]")
    doc = {"memdesc_version": __version__, "command": compare_command(args), "run": meta, "wall_s": wall,
           "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
        con.print(f"wrote {args.json}")
    if args.out:
        files = write_report(doc, Path(args.out), title=title)
        con.print(f"wrote {', '.join(str(f) for f in files)}")
    if args.findings:
        write_findings(Path(args.findings), [(title, doc)], compare_command(args, ["--findings", args.findings]))
        con.print(f"wrote {args.findings}")
    return 0

def cmd_findings(args: argparse.Namespace) -> int:

    con = _console()
    variants = parse_designs(args.designs or FINDINGS_DESIGNS)
    scenarios = QUICK_SCENARIOS if args.quick else FINDINGS_SCENARIOS
    if args.from_reports:
        sections = load_sections(Path(args.from_reports), scenarios)
    else:
        sections = []
        runs = run_findings(variants, scenarios, timeout=args.timeout, n_jobs=args.jobs,
                            on_scenario=lambda title: con.print(f"[bold]{title}[/bold]"),
                            on_done=lambda r: con.print(
                                f"[dim]  {r['label']}: {r.get('status')} {r.get('ops', 0):,} ops in "
                                f"{r.get('wall_s', 0):.1f} s {r.get('reason', '')}[/dim]", highlight=False))
        for title, doc in runs:
            con.print(render_compare(doc["results"], f"{title} ({doc['wall_s']:.0f} s)"))
            sections.append((title, doc))
            if args.report_dir:
                write_report(doc, Path(args.report_dir) / f"scenario{len(sections)}", title=title)
    cmd = "memdesc findings" + (f" --out {args.out}" if args.out != "docs/findings.md" else "") + \
        (f" --designs {args.designs}" if args.designs else "") + (" --quick" if args.quick else "")
    write_findings(Path(args.out), sections, cmd)
    con.print(f"wrote {args.out}")
    return 0

def cmd_validate(args: argparse.Namespace) -> int:
    opts: dict[str, Any] = {}
    for item in args.design_opt or []:
        k, _, val = item.partition("=")
        opts[k] = int(val) if val.lstrip("-").isdigit() else val
    res = validate(
        args.trace_dir,
        design=args.design,
        kernel=args.kernel,
        pfn_exact=args.pfn_exact,
        design_options=opts or None,
        max_events=args.max_events or None,
        start=args.start,
        check_every=args.check_every,
        x86_low=args.x86_low,
    )

    Console().print(render_validation(res))
    if args.json:
        Path(args.json).write_text(json.dumps(finite(res), indent=1, default=json_default))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.strict and not all(v["pass"] for v in res["verdicts"].values()):
        return 1
    return 0

def add_validate_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate", help="replay a real kernel trace directory and compare with its /proc snapshots"
    )
    p.add_argument("trace_dir", help="directory with trace.txt.xz and *-start.txt / *-end.txt snapshots")
    p.add_argument("--design", "-d", default="linked")
    p.add_argument("--design-opt", action="append", default=[], metavar="K=V")
    p.add_argument("--kernel", default="6.1", choices=["6.1", "6.19"])
    p.add_argument("--pfn-exact", action="store_true", help="take the traced pfn when it is free in the model")
    p.add_argument(
        "--start",
        default="calibrate",
        choices=["calibrate", "boot"],
        help="start state: calibrate placeholders to the start snapshot (default) or boot all-free",
    )
    p.add_argument(
        "--no-x86-low",
        dest="x86_low",
        action="store_false",
        help="keep the base model's DMA layout (holes and reservations at the top of the zone)",
    )
    p.add_argument("--max-events", type=int, default=0, help="stop after N replayed alloc/free events")
    p.add_argument("--check-every", type=int, default=0, metavar="N")
    p.add_argument("--json", default=None, metavar="FILE")
    p.add_argument("--strict", action="store_true", help="exit 1 if a verdict fails")
    p.set_defaults(fn=cmd_validate)
    return p

def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="designs x machines x workloads x seeds from a TOML file",
                       description=sweep_mod.__doc__.split("\n\n")[0])
    p.add_argument("file", help="sweep TOML file (see examples/sweep.toml)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="output directory (default: sweep-<file stem>)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask distributed scheduler address (tcp://host:8786); default: local processes")
    p.add_argument("--jobs", "-j", type=int, default=None, help="local worker processes (default min(2, cpus))")
    p.add_argument("--retry-errors", action="store_true", help="rerun cells that finished with an error")
    p.set_defaults(fn=cmd_sweep)

def cmd_sweep(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
