"""memdesc sweep: grid of designs x machines x seeds, local processes and Dask, resume."""

from __future__ import annotations

import json

import pytest

from memdesc.analysis.compare import strip_volatile
from memdesc.analysis.sweep import cell_jobs, load_sweep, run_sweep, summary_rows
from memdesc.cli import main

SWEEP = """
[sweep]
designs = ["linked", "buddy-desc", "radix-deque"]
machines = ["x86_64:64M", "x86_64:64M,movablecore=25%"]
workloads = ["synthetic:mixed"]
seeds = [1, 2]
ops = 1200
sample_every = 400
"""


@pytest.fixture
def sweep_file(tmp_path):
    p = tmp_path / "sweep.toml"
    p.write_text(SWEEP)
    return p


def _stable(cells):
    return {c["key"]: strip_volatile(json.loads(json.dumps(c, default=str))) for c in cells}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sw")
    p = d / "sweep.toml"
    p.write_text(SWEEP)
    cfg = load_sweep(p)
    return cfg, run_sweep(cfg, d / "out", n_jobs=2)


def test_grid(local_run):
    cfg, res = local_run
    assert len(cell_jobs(cfg)) == 12 and len({j["key"] for j in cell_jobs(cfg)}) == 12
    assert res.ran == 12 and res.reused == 0 and res.pending == 0
    assert all(c["status"] == "ok" for c in res.cells), [c.get("reason") for c in res.cells]
    rows = summary_rows(res.cells)
    assert {r["design"] for r in rows} == {"linked", "buddy-desc", "radix-deque"}
    # identical event stream per (machine, seed): identical op counts across designs
    by = {}
    for c in res.cells:
        by.setdefault((c["job"]["machine"], c["job"]["seed"]), set()).add((c["ops"], c["allocs"]))
    assert all(len(v) == 1 for v in by.values())


def test_resume_after_interruption(local_run, tmp_path):
    cfg, full = local_run
    out = tmp_path / "out"
    part = run_sweep(cfg, out, n_jobs=2, limit=5)  # "interrupted" after 5 cells
    assert part.ran == 5 and part.pending == 7
    assert len(list((out / "cells").glob("*.json"))) == 5
    assert not list((out / "cells").glob(".*tmp"))
    rest = run_sweep(cfg, out, n_jobs=2)
    assert rest.reused == 5 and rest.ran == 7 and rest.pending == 0
    assert _stable(rest.cells) == _stable(full.cells)
    again = run_sweep(cfg, out, n_jobs=2)
    assert again.ran == 0 and again.reused == 12


def test_dask_matches_local(local_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    cfg, full = local_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        res = run_sweep(cfg, tmp_path / "dask", scheduler=cl.scheduler_address)
    assert res.ran == 12
    assert _stable(res.cells) == _stable(full.cells)


def test_sweep_cli(sweep_file, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "12 cells run" in text
    for name in ("sweep.json", "summary.csv", "report.md", "report.html", "sweep_metadata.png"):
        assert (out / name).exists(), name
    assert (out / "sweep_metadata.png").read_bytes().startswith(b"\x89PNG")
    assert len((out / "summary.csv").read_text().splitlines()) == 13
    assert main(["sweep", str(sweep_file), "--out", str(out)]) == 0
    assert "0 cells run, 12 reused" in capsys.readouterr().out
