"""memdesc compare: every design on the identical event stream (tiny machines, few ops)."""

from __future__ import annotations

import csv
import json

import pytest

from memdesc.analysis.compare import (
    Variant,
    key_metrics,
    make_jobs,
    parse_designs,
    parse_variant,
    run_job,
    run_jobs,
    strip_volatile,
    who_wins,
)
from memdesc.cli import main
from memdesc.designs import design_names
from memdesc.report.text import render_compare, table_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = "x86_64:64M"


def test_parse_variants():
    assert parse_variant("linked") == Variant("linked")
    assert parse_variant("radix-deque:borrow").opts == {"policy": "borrow"}
    assert parse_variant("radix-deque:borrow").label == "radix-deque:borrow"
    assert parse_variant("radix-deque:words=1").opts == {"words": 1}
    v = parse_designs("linked,radix-deque:policy=defer,words=1,buddy-desc radix-deque:self")
    assert [x.label for x in v] == ["linked", "radix-deque:policy=defer,words=1", "buddy-desc", "radix-deque:self"]
    assert v[1].opts == {"policy": "defer", "words": 1}
    assert [x.design for x in parse_designs(None)] == design_names()


@pytest.fixture(scope="module")
def tiny_results():
    variants = parse_designs(None) + [parse_variant("radix-deque:borrow"), parse_variant("nonexistent-design")]
    jobs = make_jobs(variants, machine=TINY, workload="synthetic:mixed", ops=3000, seed=7, sample_every=500,
                     check_every=1000)
    return run_jobs(jobs, n_jobs=2)


def test_compare_identical_streams(tiny_results):
    ok = [r for r in tiny_results if r["status"] == "ok"]
    assert ok, [r.get("reason") for r in tiny_results]
    assert ok[0]["label"] == "linked"
    # same events for every design: same number of operations, allocations and frees attempted
    assert {r["ops"] for r in ok} == {3000}
    assert len({r["allocs"] for r in ok}) == 1
    assert len({r["allocs"] + r["frees"] + r["ignored_frees"] for r in ok}) == 1
    for r in ok:
        assert r["samples"][-1]["ops"] == 3000
        assert "unusable_index_9" in r["samples"][-1]
        assert sum(r["violations"].values()) == 0, (r["label"], r["violations"])
    bad = [r for r in tiny_results if r["label"] == "nonexistent-design"]
    assert bad[0]["status"] == "skipped" and "unknown design" in bad[0]["reason"]


def test_compare_table_and_summary(tiny_results):
    cols, rows = table_rows(tiny_results)
    assert "linked" in cols
    names = [n for n, _ in rows]
    for want in ("struct page", "memmap", "metadata % of RAM (peak)", "allocation failures",
                 "allocations on the free path", "throughput"):
        assert want in names
    assert dict(rows)["struct page"][0] == "64 B"
    km = {k["label"]: k for k in map(key_metrics, tiny_results) if k}
    assert km["linked"]["metadata_pct_of_ram"] == pytest.approx(1.5625)
    assert km["linked"]["dynamic_bytes"] == 0
    from rich.console import Console
    con = Console(width=200, record=True)
    con.print(render_compare(tiny_results))
    text = con.export_text()
    assert "nonexistent-design" in text and "least metadata" in text
    assert any("least metadata" in w for w in who_wins(tiny_results))


def test_deterministic_rerun(tiny_results):
    first = next(r for r in tiny_results if r["label"] == "linked")
    again = run_job(make_jobs([Variant("linked")], machine=TINY, workload="synthetic:mixed", ops=3000, seed=7,
                              sample_every=500, check_every=1000)[0])
    assert strip_volatile(json.loads(json.dumps(again, default=str))) == \
        strip_volatile(json.loads(json.dumps(first, default=str)))


def test_design_error_is_skipped_not_fatal():
    r = run_job(make_jobs([Variant("radix-deque", (("words", 3),))], machine=TINY, workload="synthetic:mixed",
                          ops=100, seed=1)[0])
    assert r["status"] == "skipped" and "words" in r["reason"]


def test_mm_probe_on_cma_machine():
    jobs = make_jobs([Variant("linked")], machine="x86_64:128M,cma=16M", workload="synthetic:mixed", ops=1500,
                     seed=1, mm_probe=True)
    r = run_job(jobs[0])
    assert r["status"] == "ok", r.get("reason")
    if "unavailable" in r.get("mm_probe", {}):
        pytest.skip(r["mm_probe"]["unavailable"])
    assert key_metrics(r)["cma_all_ok"] is not None


def test_compare_cli_writes_reports(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["compare", "-m", TINY, "-w", "synthetic:mixed", "--ops", "2000", "--designs", "linked,radix-deque",
               "--jobs", "2", "--sample-every", "400", "--out", str(out), "--json", str(tmp_path / "all.json"),
               "--findings", str(tmp_path / "findings.md")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "struct page" in printed and "linked" in printed
    doc = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in doc["results"]] == ["linked", "radix-deque"]
    assert doc["results"][0]["ops"] == doc["results"][1]["ops"] == 2000
    assert json.loads((tmp_path / "all.json").read_text())["run"]["machine"] == TINY
    rows = list(csv.DictReader((out / "timeseries.csv").open()))
    assert {r["label"] for r in rows} == {"linked", "radix-deque"}
    assert len(rows) == 2 * 5
    for name in ("metadata.png", "free_by_order.png", "fragmentation.png", "success.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    md = (out / "report.md").read_text()
    assert "![Metadata by component](metadata.png)" in md and "| struct page |" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<table>" in html
    findings = (tmp_path / "findings.md").read_text()
    assert "memdesc compare" in findings and "## The answer so far" in findings


def test_findings_quick(tmp_path):
    out = tmp_path / "findings.md"
    assert main(["findings", "--quick", "--designs", "linked,radix-deque:words=1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "memdesc findings" in text and "--quick" in text
    assert text.count("\n## ") >= 5  # the answer + the quick scenarios
    assert "radix-deque:words=1" in text
