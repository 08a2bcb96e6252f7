"""The ``memdesc`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from memdesc import __version__
from memdesc.designs import DesignError, design_names
from memdesc.driver.boot import new_allocator
from memdesc.machine import MachineSpecError, format_size, parse_machine
from memdesc.mm.internal import MemdescError

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
    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 140)


def cmd_machine(args: argparse.Namespace) -> int:
    from rich.table import Table
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
    from memdesc.workloads import default_machine_spec
    spec = args.machine or default_machine_spec()
    m = parse_machine(spec)
    opts = _parse_design_opts(getattr(args, "design_opt", []))
    if getattr(args, "policy", None):
        opts["policy"] = args.policy
    if getattr(args, "words", None):
        opts["words"] = args.words
    return new_allocator(m, args.design, kernel=args.kernel, pcp=not args.no_pcp, design_options=opts)


def cmd_run(args: argparse.Namespace) -> int:
    from memdesc.driver.runner import Runner, run_summary
    from memdesc.workloads import open_workload
    a = build_allocator(args)
    wl = open_workload(args.workload, a.machine.present_pages, args.ops, args.seed, kernel=args.kernel,
                       config_cma=a.machine.config_cma, lenient=args.lenient)
    if args.compaction:
        try:
            from memdesc.mm.compaction import install_direct_compaction
            install_direct_compaction(a)
        except ImportError:
            pass
    con = _console()
    runner = Runner(a, check_every=args.check_every, sample_every=args.sample_every,
                    pfn_exact=args.pfn_exact, lenient=args.lenient)
    max_ops = args.ops if wl.kind == "trace" and args.ops else None
    if args.progress and sys.stderr.isatty():
        from rich.progress import Progress
        with Progress(console=con, transient=True) as prog:
            task = prog.add_task(f"{args.design} on {wl.name}", total=max_ops or args.ops or None)
            runner.progress = lambda n: prog.update(task, completed=n)
            runner.run(wl.events, max_ops=max_ops)
    else:
        runner.run(wl.events, max_ops=max_ops)
    probe = None
    if args.mm_probe:
        # the questions ZONE_MOVABLE and CMA exist to answer: can all of it be had back?
        ops = runner._get_mmops()
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
    from memdesc.report.text import render_run_summary
    con.print(render_run_summary(summary))
    if args.proc:
        from memdesc.mm import vmstat
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
    import dataclasses
    if dataclasses.is_dataclass(stats):
        return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return dict(vars(stats))


def cmd_trace_stats(args: argparse.Namespace) -> int:
    from memdesc.report.text import render_trace_stats
    from memdesc.workloads.replay import trace_stats
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

    _add_optional_commands(sub)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (MachineSpecError, DesignError, MemdescError, ValueError, OSError) as e:
        print(f"memdesc: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memdesc: interrupted", file=sys.stderr)
        return 130


def _add_optional_commands(sub: Any) -> None:
    """Commands living in their own modules (compare, validate, sweep)."""
    for modname in ("compare", "validate", "sweep"):
        try:
            mod = __import__(f"memdesc.analysis.{modname}", fromlist=["add_parser"])
        except ImportError:
            continue
        if hasattr(mod, "add_parser"):
            mod.add_parser(sub)


if __name__ == "__main__":
    sys.exit(main())
