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

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memdesc.analysis.compare import (
    default_jobs_n,
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


# --- command line ----------------------------------------------------------------------------


__all__ = ["load_sweep", "cell_jobs", "cell_key", "run_sweep", "summary_rows", "SweepResult", "SUMMARY_FIELDS"]
