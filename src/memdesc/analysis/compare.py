"""``memdesc compare``: every struct-page design on the identical event stream.

Each design (or design variant, ``radix-deque:borrow``, ``radix-deque:words=1``, ...)
runs in its own process; every process re-opens the workload with the same seed, so all
designs see byte-identical events. The per-design :func:`memdesc.driver.runner.run_summary`
dicts are gathered and shown side by side (rich table), and optionally written as JSON,
CSV time series, Markdown and a self-contained HTML report (memdesc.report.html).

Designs that cannot run here (import error, or ``DesignError`` such as ``embedded`` on a
32-bit machine) are reported as skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from memdesc.designs import DesignError, design_names, get_design
from memdesc.driver.boot import new_allocator
from memdesc.driver.runner import Runner, run_summary
from memdesc.machine import parse_machine
from memdesc.mm.compaction import install_direct_compaction
from memdesc.mm.memory_hotplug import movable_memory_blocks
from memdesc.mm.mmzone import NR_PAGE_ORDERS, PAGE_SHIFT
from memdesc.mm.vmstat import fragmentation_index, unusable_free_index
from memdesc.workloads import bundled_trace_dir, default_machine_spec, open_workload

#: order used for the high-order / fragmentation headline numbers (pageblock / THP order)
FRAG_ORDER = 9
#: "costly" orders start here (PAGE_ALLOC_COSTLY_ORDER = 3)
HIGH_ORDER = 3
#: fields whose values depend on wall-clock time (dropped when comparing runs for equality)
VOLATILE_KEYS = frozenset({"elapsed_s", "ops_per_s", "seconds", "wall_s", "throughput"})


# --- design variants --------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One column of a comparison: a registered design and its options."""

    design: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        if not self.options:
            return self.design
        opts = dict(self.options)
        if set(opts) == {"policy"}:
            return f"{self.design}:{opts['policy']}"
        return f"{self.design}:" + ",".join(f"{k}={v}" for k, v in self.options)

    @property
    def opts(self) -> dict[str, Any]:
        return dict(self.options)


def _convert(v: str) -> Any:
    if v in ("true", "false"):
        return v == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def parse_variant(text: str) -> Variant:
    """``design``, ``design:k=v[,k=v]`` or the shorthand ``radix-deque:POLICY``."""
    text = text.strip()
    design, _, rest = text.partition(":")
    opts: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        if "=" in item:
            k, v = item.split("=", 1)
            opts[k.strip()] = _convert(v.strip())
        else:
            opts["policy"] = item
    return Variant(design.strip(), tuple(sorted(opts.items())))


def parse_designs(text: str | Sequence[str] | None) -> list[Variant]:
    """A comma (or space / semicolon) separated list of variants. Commas also separate a
    variant's options: ``radix-deque:policy=borrow,words=1,linked`` is two variants, since
    a ``k=v`` item continues the variant before it."""
    if text is None or text == "" or text == "all":
        return default_variants()
    items = text if not isinstance(text, str) else [text]
    groups: list[str] = []
    for chunk in items:
        for tok in chunk.replace(";", " ").replace(",", " ").split():
            if groups and "=" in tok and ":" not in tok:
                groups[-1] += ("," if not groups[-1].endswith(":") else "") + tok
            else:
                groups.append(tok)
    out: list[Variant] = []
    for g in groups:
        v = parse_variant(g)
        if v not in out:
            out.append(v)
    return out


def default_variants() -> list[Variant]:
    return [Variant(n) for n in design_names()]


# --- one run, in a worker process ---------------------------------------------------------
class CompareTimeout(Exception):
    """The per-design time budget ran out (checked every 16384 operations)."""


class CompareRunner(Runner):
    """A Runner whose samples also carry the order-9 fragmentation indices and the
    dynamic metadata split into components."""

    def sample(self) -> None:
        super().sample()
        s = self.result.samples[-1]
        s.update(fragmentation_at(s["free_blocks_per_order"]))
        md = self.alloc.design.metadata()
        s["metadata_components"] = dynamic_components(md)


def fragmentation_at(per_order: Sequence[int], order: int = FRAG_ORDER) -> dict[str, float]:
    """Kernel unusable-free-space index and extfrag index (both /1000) at ``order``,
    computed over the given free-block counts (``__fragmentation_index``,
    ``unusable_free_index`` of mm/vmstat.c)."""
    counts = list(per_order)
    return {f"unusable_index_{order}": unusable_free_index(counts, order) / 1000,
            f"extfrag_index_{order}": fragmentation_index(counts, order) / 1000}


def dynamic_components(md: dict[str, Any], page_size: int = 1 << PAGE_SHIFT) -> dict[str, int]:
    """Dynamic metadata bytes (what the design takes from the allocator at run time)
    split by kind: slab pages per descriptor cache, radix-tree node pages, other."""
    comp: dict[str, int] = {}
    for name, c in (md.get("caches") or {}).items():
        b = int(c.get("slab_pages_live", 0)) * page_size
        if b:
            key = "struct buddy" if name == "buddy" else f"{name} descriptors"
            comp[key] = comp.get(key, 0) + b
    rn = int(md.get("radix_node_pages_live", 0)) * page_size
    if rn:
        comp["radix nodes"] = rn
    dyn = int(md.get("dynamic_bytes", 0))
    rest = dyn - sum(comp.values())
    if rest > 0:
        comp["other"] = rest
    return comp


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one design variant on the job's machine and workload; returns its run_summary
    plus ``label``, ``status`` (ok | skipped | timeout | error) and ``reason``. Never raises."""
    label = job["label"]
    t0 = time.perf_counter()
    base = {"label": label, "design": job["design"], "design_options": job.get("options", {}),
            "machine_spec": job["machine"], "workload_spec": job["workload"], "seed": job["seed"]}
    try:
        get_design(job["design"])
        spec = job["machine"] or default_machine_spec()
        m = parse_machine(spec)
        a = new_allocator(m, job["design"], kernel=job["kernel"], pcp=job.get("pcp", True),
                          design_options=dict(job.get("options", {})))
    except (DesignError, TypeError, ValueError) as e:
        return {**base, "status": "skipped", "reason": f"{type(e).__name__}: {e}"}
    except Exception as e:  # noqa: BLE001 - a design under construction may fail at boot
        return {**base, "status": "skipped", "reason": f"boot failed: {type(e).__name__}: {e}"}
    status, reason = "ok", ""
    runner = None
    try:
        ops = job.get("ops", 0)
        wl = open_workload(job["workload"], m.present_pages, ops, job["seed"], kernel=job["kernel"],
                           config_cma=m.config_cma, lenient=job.get("lenient", True))
        if job.get("compaction"):
            install_direct_compaction(a)
        runner = CompareRunner(a, check_every=job.get("check_every", 0), sample_every=job.get("sample_every", 0),
                               lenient=job.get("lenient", True))
        timeout = job.get("timeout") or 0
        max_ops = ops if wl.kind == "trace" and ops else None
        probe = None
        with _time_budget(timeout) as budget:
            runner.progress = budget.progress
            phase = "replay"
            try:
                runner.run(wl.events, max_ops=max_ops)
                if job.get("mm_probe"):
                    phase = "mm probe (cma_alloc / offline at the end)"
                    probe = mm_probe(runner)
            except CompareTimeout as e:
                status, reason = "timeout", f"stopped in the {phase} after {runner.result.ops:,} ops: {e}"
        smp = runner.result.samples
        if runner.sample_every and (not smp or smp[-1]["ops"] != runner.result.ops):
            runner.sample()  # the end state is always the last sample
        if status == "ok" and (job.get("check_every") or job.get("final_check")):
            runner.check()
        config = {"design": job["design"], "design_options": a.design.options, "kernel": job["kernel"],
                  "pcp": job.get("pcp", True), "workload": wl.name, "workload_kind": wl.kind, "ops": ops,
                  "seed": job["seed"], "check_every": job.get("check_every", 0), "machine": a.machine.spec,
                  "label": label}
        summary = run_summary(runner, config)
        if wl.stats is not None:
            summary["replay"] = _stats_dict(wl.stats)
        if probe is not None:
            summary["mm_probe"] = probe
    except Exception as e:  # noqa: BLE001 - report, do not kill the comparison
        return {**base, "status": "error", "reason": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=8), "ops": runner.result.ops if runner else 0}
    summary.update(base)
    summary["status"] = status
    summary["reason"] = reason
    summary["wall_s"] = time.perf_counter() - t0
    return summary


class _time_budget:
    """Per-run time budget: a soft check every 16384 operations (Runner.progress) and, in a
    process's main thread, a hard SIGALRM that also stops a run stuck inside one operation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.perf_counter() + seconds if seconds else 0.0
        self.old: Any = None

    def progress(self, n: int) -> None:
        if self.deadline and time.perf_counter() > self.deadline:
            raise CompareTimeout(f"over the {self.seconds:g} s budget")

    def _alarm(self, signum: int, frame: Any) -> None:
        raise CompareTimeout(f"over the {self.seconds:g} s budget (stuck inside an operation)")

    def __enter__(self) -> _time_budget:
        if self.seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGALRM, self._alarm)
            # the soft check normally fires first; the alarm is the backstop
            signal.setitimer(signal.ITIMER_REAL, self.seconds * 1.2 + 5)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


def _stats_dict(st: Any) -> dict[str, Any]:
    if hasattr(st, "as_dict"):
        return st.as_dict()
    if dataclasses.is_dataclass(st):
        return dataclasses.asdict(st)
    return dict(vars(st))


def mm_probe(runner: Runner) -> dict[str, Any]:
    """At the end of a run: cma_alloc of each whole CMA area and offline of every
    ZONE_MOVABLE memory block (memdesc.driver.mmops), when the machine has them."""
    out: dict[str, Any] = {}
    try:
        ops = runner.mm_ops()
        if ops.cma:
            out["cma"] = ops.cma_alloc_all()
        if movable_memory_blocks(runner.alloc):
            out["offline"] = ops.offline_all_movable()
    except CompareTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    return out


# --- many runs --------------------------------------------------------------------------------
def make_jobs(variants: Iterable[Variant], *, machine: str | None, workload: str, ops: int, seed: int,
              kernel: str = "6.1", check_every: int = 0, sample_every: int = 1000, mm_probe: bool = False,
              lenient: bool = True, pcp: bool = True, compaction: bool = False, timeout: float = 0,
              final_check: bool = False) -> list[dict[str, Any]]:
    if workload.startswith("synthetic:") and not ops:
        ops = 100_000
    return [{"label": v.label, "design": v.design, "options": v.opts, "machine": machine or "",
             "workload": workload, "ops": ops, "seed": seed, "kernel": kernel, "check_every": check_every,
             "sample_every": sample_every, "mm_probe": mm_probe, "lenient": lenient, "pcp": pcp,
             "compaction": compaction, "timeout": timeout, "final_check": final_check} for v in variants]


def default_jobs_n() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def run_jobs(jobs: list[dict[str, Any]], n_jobs: int | None = None, executor: Executor | None = None,
             on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run jobs (inline when one worker suffices, else in a process pool or the given
    executor); results come back in job order."""
    n = n_jobs or default_jobs_n()
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if executor is None and (n <= 1 or len(jobs) <= 1):
        for i, j in enumerate(jobs):
            results[i] = run_job(j)
            if on_done:
                on_done(results[i])
        return [r for r in results if r is not None]
    own = executor is None
    ex = executor or ProcessPoolExecutor(max_workers=min(n, len(jobs)))
    try:
        futs = {ex.submit(run_job, j): i for i, j in enumerate(jobs)}
        for f in as_completed(futs):
            i = futs[f]
            try:
                results[i] = f.result()
            except Exception as e:  # noqa: BLE001 - a worker died
                results[i] = {"label": jobs[i]["label"], "design": jobs[i]["design"], "status": "error",
                              "reason": f"worker failed: {type(e).__name__}: {e}"}
            if on_done:
                on_done(results[i])
    finally:
        if own:
            ex.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


# --- metrics for tables, CSV, reports --------------------------------------------------------
def _success(high_order: dict[Any, Any], pred: Callable[[int], bool]) -> tuple[int, int]:
    att = ok = 0
    for o, v in high_order.items():
        if pred(int(o)):
            att += v["attempts"]
            ok += v["succeeded"]
    return att, ok


def _unmovable_meta(md: dict[str, Any]) -> dict[str, int]:
    """Unmovable allocator metadata placed where only movable data may live."""
    v = md.get("violations")
    out: dict[str, int] = {}
    if isinstance(v, dict):
        for k in ("HighMem", "Movable", "CMA", "Isolate"):
            if v.get(k):
                out[k] = int(v[k])
        live = v.get("live")
        if isinstance(live, dict):
            for k, n in live.items():
                if n:
                    out[f"{k} (live)"] = int(n)
    return out


def key_metrics(s: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one run_summary (flat, JSON-able). Empty for skipped runs."""
    if "metadata" not in s:
        return {}
    md = s["metadata"]
    samples = s.get("samples") or []
    dyn = int(md.get("dynamic_bytes", 0))
    dyn_peak = max([dyn, int(md.get("dynamic_bytes_peak", 0))] +
                   [int(x.get("dynamic_metadata_bytes", 0)) for x in samples])
    comp = dynamic_components(md)
    peak_comp = dict(comp)
    for x in samples:
        for k, b in (x.get("metadata_components") or {}).items():
            peak_comp[k] = max(peak_comp.get(k, 0), b)
    ho = s.get("high_order", {})
    att3, ok3 = _success(ho, lambda o: o >= HIGH_ORDER)
    att9, ok9 = _success(ho, lambda o: o == FRAG_ORDER)
    per_order = [0] * NR_PAGE_ORDERS
    for z in s.get("zones", []):
        for o, n in enumerate(z["nr_free"]):
            per_order[o] += n
    frag = fragmentation_at(per_order)
    series = [x[f"unusable_index_{FRAG_ORDER}"] for x in samples if f"unusable_index_{FRAG_ORDER}" in x]
    mm = s.get("mm_ops") or {}
    probe = s.get("mm_probe") or {}
    cma_ok = cma_att = off_ok = off_att = None
    if mm.get("cma_attempted"):
        cma_att, cma_ok = mm["cma_attempted"], mm["cma_succeeded"]
    if mm.get("offline_attempted"):
        off_att, off_ok = mm["offline_attempted"], mm["offline_succeeded"]
    unmov = _unmovable_meta(md)
    inv = {k: v for k, v in s.get("violations", {}).items() if v}
    present = s["machine"]["present_bytes"]
    return {
        "label": s.get("label", s["config"].get("design")),
        "status": s.get("status", "ok"),
        "struct_page_bytes": md["struct_page_bytes"],
        "memmap_bytes": md["memmap_bytes"],
        "dynamic_bytes": dyn,
        "dynamic_bytes_peak": dyn_peak,
        "components": comp,
        "components_peak": peak_comp,
        "reserve_pages": md.get("reserve_pages"),
        "total_metadata_bytes": md["total_metadata_bytes"],
        "peak_metadata_bytes": md["memmap_bytes"] + dyn_peak,
        "metadata_bytes_per_gib": md["metadata_bytes_per_gib"],
        "metadata_pct_of_ram": md["metadata_pct_of_ram"],
        "peak_metadata_pct_of_ram": 100.0 * (md["memmap_bytes"] + dyn_peak) / present if present else 0.0,
        "alloc_failures": s["alloc_failures"],
        "alloc_failures_by_cause": dict(s.get("alloc_failures_by_cause", {})),
        "high_order_attempts": att3, "high_order_succeeded": ok3,
        "high_order_rate": ok3 / att3 if att3 else None,
        "order9_attempts": att9, "order9_succeeded": ok9, "order9_rate": ok9 / att9 if att9 else None,
        "cma_attempted": cma_att, "cma_succeeded": cma_ok,
        "offline_attempted": off_att, "offline_succeeded": off_ok,
        "cma_all_ok": probe["cma"]["ok"] if "cma" in probe else None,
        "offline_all": (f"{probe['offline']['offlined']}/{probe['offline']['blocks']}" if "offline" in probe
                        else None),
        "offline_all_ok": probe["offline"]["ok"] if "offline" in probe else None,
        "allocs_in_free_path": int(s.get("counters", {}).get("allocs_in_free_path", 0)),
        "unmovable_meta": unmov,
        "invariant_violations": inv,
        f"unusable_index_{FRAG_ORDER}": frag[f"unusable_index_{FRAG_ORDER}"],
        f"extfrag_index_{FRAG_ORDER}": frag[f"extfrag_index_{FRAG_ORDER}"],
        f"unusable_index_{FRAG_ORDER}_max": max(series) if series else frag[f"unusable_index_{FRAG_ORDER}"],
        "unusable_series": series,
        "ops": s["ops"], "elapsed_s": s["elapsed_s"], "ops_per_s": s["ops_per_s"],
    }


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= mult:
            return f"{n / mult:.2f} {unit}"
    return f"{int(n)} B"


def not_run(results: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r.get("label", "?"), r.get("status", "?"), r.get("reason", "")) for r in results if "metadata" not in r]


def who_wins(results: Sequence[dict[str, Any]]) -> list[str]:
    """Short generated statements: which design is best on each headline metric."""
    km = [key_metrics(r) for r in results if "metadata" in r]
    if len(km) < 1:
        return []
    out = []
    base = next((k for k in km if k["label"] == "linked"), None)

    def best(key: str, lower: bool = True) -> list[dict[str, Any]]:
        vals = [k for k in km if k.get(key) is not None]
        if not vals:
            return []
        b = (min if lower else max)(k[key] for k in vals)
        return [k for k in vals if k[key] == b]

    w = best("peak_metadata_bytes")
    if w:
        k = w[0]
        s = (f"least metadata: {', '.join(x['label'] for x in w)} with {fmt_bytes(k['peak_metadata_bytes'])} at peak "
             f"({k['peak_metadata_pct_of_ram']:.3f} % of RAM, {k['struct_page_bytes']} B struct page)")
        if base and base is not k:
            s += (f", {base['peak_metadata_bytes'] / max(1, k['peak_metadata_bytes']):.1f}x less than linked "
                  f"({base['metadata_pct_of_ram']:.3f} %)")
        out.append(s)
    fails = {k["label"]: k["alloc_failures"] for k in km}
    if any(fails.values()):
        low = min(fails.values())
        worse = [f"{lab} ({n:,})" for lab, n in fails.items() if n > low]
        out.append(f"allocation failures: fewest {low:,} ({', '.join(lab for lab, n in fails.items() if n == low)})"
                   + (f"; more: {', '.join(worse)}" if worse else ""))
    else:
        out.append("no design failed an allocation")
    w = best("order9_rate", lower=False)
    if w and any(k["order9_attempts"] for k in km):
        rates = {k["label"]: k["order9_rate"] for k in km if k["order9_rate"] is not None}
        if len(set(rates.values())) > 1:
            out.append(f"order-{FRAG_ORDER} success best: {', '.join(k['label'] for k in w)} "
                       f"({100 * w[0]['order9_rate']:.1f} %); worst "
                       f"{min(rates, key=lambda x: rates[x])} ({100 * min(rates.values()):.1f} %)")
        else:
            out.append(f"order-{FRAG_ORDER} success identical for all designs "
                       f"({100 * next(iter(rates.values())):.1f} %)")
    bad = [k["label"] for k in km if k["allocs_in_free_path"] or k["unmovable_meta"]]
    if bad:
        out.append("rule violations (allocation on the free path / unmovable metadata in "
                   f"HIGHMEM, MOVABLE or CMA): {', '.join(bad)}")
    else:
        out.append("no design allocated on the free path or put unmovable metadata in HIGHMEM/MOVABLE/CMA")
    inv = [k["label"] for k in km if k["invariant_violations"]]
    if inv:
        out.append(f"invariant checker found violations in: {', '.join(inv)}")
    for key, what in (("cma_all_ok", "cma_alloc of the whole CMA area"),
                      ("offline_all_ok", "offlining every ZONE_MOVABLE block")):
        vals = {k["label"]: k[key] for k in km if k[key] is not None}
        if vals:
            failed = [lab for lab, v in vals.items() if not v]
            out.append(f"{what}: " + (f"fails for {', '.join(failed)}" if failed else "succeeds for every design"))
    u = best(f"unusable_index_{FRAG_ORDER}_max")
    if u and len({k[f'unusable_index_{FRAG_ORDER}_max'] for k in km}) > 1:
        out.append(f"lowest worst-case order-{FRAG_ORDER} unusable index: {', '.join(k['label'] for k in u)} "
                   f"({u[0][f'unusable_index_{FRAG_ORDER}_max']:.3f})")
    t = best("ops_per_s", lower=False)
    if t:
        out.append(f"fastest model run: {t[0]['label']} ({t[0]['ops_per_s']:,.0f} ops/s; model speed, "
                   "not kernel speed)")
    for r in results:
        if r.get("status") == "timeout" and "metadata" in r:
            out.append(f"{r['label']} timed out ({r.get('reason', '')}); its numbers cover the part that ran")
    for lab, status, why in not_run(results):
        out.append(f"{lab} not compared ({status}): {why}")
    return out


def strip_volatile(obj: Any) -> Any:
    """A copy without wall-clock fields, for comparing two runs of the same job."""
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


# --- command line -----------------------------------------------------------------------------


def short_spec(spec: str | None) -> str:
    """A machine or workload spec with the bundled trace's paths shortened."""
    if not spec:
        return "default"
    return spec.replace(str(bundled_trace_dir()), "<bundled-trace>")


def describe_run(results: Sequence[dict[str, Any]], jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    j = jobs[0] if jobs else {}
    first = next((r for r in results if "machine" in r and isinstance(r["machine"], dict)), None)
    return {"machine": short_spec(first["machine"]["spec"] if first else j.get("machine")),
            "ram_bytes": first["machine"]["present_bytes"] if first else None,
            "workload": short_spec(first["config"]["workload"] if first else j.get("workload")),
            "workload_spec": j.get("workload"), "ops": j.get("ops"), "seed": j.get("seed"),
            "kernel": j.get("kernel"), "designs": [x["label"] for x in jobs]}


__all__ = ["Variant", "parse_variant", "parse_designs", "make_jobs", "run_job", "run_jobs", "key_metrics",
           "who_wins", "strip_volatile", "fmt_bytes", "not_run"]

