from pathlib import Path

import pytest

from memdesc.driver.boot import new_allocator
from memdesc.machine import MachineSpecError, parse_machine, parse_size
from memdesc.mm.mmzone import ZoneType

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


def test_sizes():
    assert parse_size("16G") == 16 << 30
    assert parse_size("256M") == 256 << 20
    assert parse_size("1T") == 1 << 40
    with pytest.raises(MachineSpecError):
        parse_size("lots")


def test_x86_64_zones():
    m = parse_machine("x86_64:16G")
    z = {zz.ztype: zz for zz in m.zones if zz.present_pages}
    assert z[ZoneType.DMA].end_pfn == 4096
    assert z[ZoneType.DMA32].end_pfn <= 1 << 20
    assert z[ZoneType.NORMAL].start_pfn == 1 << 20
    assert m.present_pages == (16 << 30) >> 12


def test_movablecore_and_cma():
    m = parse_machine("x86_64:16G,movablecore=25%")
    mov = [z for z in m.zones if z.ztype == ZoneType.MOVABLE][0]
    assert mov.start_pfn % 1024 == 0
    assert abs(mov.present_pages - m.present_pages // 4) < 2048
    c = parse_machine("x86_64:16G,cma=256M")
    (s, e), = c.cma_areas
    assert e - s == 65536 and s % 512 == 0 and c.config_cma


def test_i386_highmem():
    m = parse_machine("i386:4G")
    hm = [z for z in m.zones if z.ztype == ZoneType.HIGHMEM][0]
    assert hm.start_pfn == (896 << 20) >> 12
    assert m.word_size == 4


def test_numa():
    m = parse_machine("numa:2x8G")
    assert m.nr_nodes == 2
    assert sum(z.present_pages for z in m.zones if z.nid == 1) == (8 << 30) >> 12


def test_bad_specs():
    for bad in ("x86_64", "sparc:4G", "x86_64:4G,bogus=1", "x86_64:4G,movablecore=100%", "numa:x8G"):
        with pytest.raises(MachineSpecError):
            parse_machine(bad)


def test_one_tib_is_representable():
    m = parse_machine("x86_64:1T")
    assert m.present_pages == 1 << 28


@pytest.mark.skipif(not TRACES.exists(), reason="shared traces not present")
@pytest.mark.parametrize("d", sorted(p.name for p in TRACES.glob("*/")) if TRACES.exists() else [])
def test_zoneinfo_machines(d):
    m = parse_machine(f"zoneinfo:{TRACES / d / 'zoneinfo-start.txt'}")
    a = new_allocator(m, kernel="6.1")
    text = (TRACES / d / "zoneinfo-start.txt").read_text()
    # managed pages of every populated zone match the kernel's
    for z in a.zones:
        if z.present:
            block = text.split(f"zone {z.name:>8s}")[1]
            managed = int(block.split("managed")[1].split()[0])
            assert z.managed == managed
            low = int(block.split("low")[1].split()[0])
            assert abs(z.watermark[1] - low) <= max(3, low // 50)  # watermarks as the kernel computes them
    a.check()
