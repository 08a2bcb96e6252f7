import pytest

from memdesc.mm import gfp as G
from memdesc.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, ZoneType


def test_composite_values_match_kernel_facts():
    assert G.GFP_KERNEL == 0xCC0
    assert G.GFP_KERNEL_ACCOUNT == 0x400CC0
    assert G.GFP_ATOMIC_61 == 0xA20 and G.GFP_ATOMIC == 0x820
    assert G.GFP_NOWAIT_61 == 0x800 and G.GFP_NOWAIT == 0x2800
    assert G.GFP_HIGHUSER_MOVABLE == 0x100CCA
    assert G.GFP_TRANSHUGE_LIGHT == 0x1C20CA and G.GFP_TRANSHUGE == 0x1C24CA
    assert G.GFP_USER == 0x100CC0 and G.GFP_NOFS == 0xC40 and G.GFP_NOIO == 0xC00


@pytest.mark.parametrize("text,kernel,mask", [
    ("GFP_KERNEL|__GFP_ZERO", "6.1", 0xCC0 | 0x100),
    ("none", "6.1", 0),
    ("GFP_ATOMIC", "6.1", 0xA20),
    ("GFP_ATOMIC", "6.19", 0x820),
    ("__GFP_NOWARN|__GFP_NORETRY", "6.1", 0x12000),
    ("GFP_HIGHUSER_MOVABLE|__GFP_COMP", "6.1", 0x100CCA | 0x40000),
    ("GFP_KERNEL|0x4000000", "6.1", 0xCC0 | 0x4000000),
])
def test_parse(text, kernel, mask):
    assert G.parse_gfp(text, kernel) == mask


def test_format_roundtrip_and_version_differences():
    assert G.format_gfp(0, "6.1") == "none"
    assert G.format_gfp(getattr(G, "__GFP_COMP") | getattr(G, "__GFP_ZERO"), "6.1") == "__GFP_COMP|__GFP_ZERO"
    assert G.format_gfp(getattr(G, "__GFP_COMP") | getattr(G, "__GFP_ZERO"), "6.19") == "__GFP_ZERO|__GFP_COMP"
    assert G.format_gfp(getattr(G, "__GFP_KSWAPD_RECLAIM"), "6.1") == "GFP_NOWAIT"
    assert G.format_gfp(getattr(G, "__GFP_KSWAPD_RECLAIM"), "6.19") == "__GFP_KSWAPD_RECLAIM"
    for k in G.KERNELS:
        for m in (G.GFP_KERNEL, G.GFP_TRANSHUGE, G.GFP_HIGHUSER_MOVABLE | getattr(G, "__GFP_ZERO"), 0x4000000 | 1):
            assert G.parse_gfp(G.format_gfp(m, k), k) == m


def test_unknown_flag_rejected():
    with pytest.raises(G.GfpError, match="__GFP_BOGUS"):
        G.parse_gfp("GFP_KERNEL|__GFP_BOGUS", "6.1")
    with pytest.raises(G.GfpError):
        G.parse_gfp("__GFP_ATOMIC", "6.19")


def test_gfp_zone_table():
    assert G.gfp_zone(G.GFP_KERNEL) == ZoneType.NORMAL
    assert G.gfp_zone(G.GFP_DMA) == ZoneType.DMA
    assert G.gfp_zone(G.GFP_DMA32) == ZoneType.DMA32
    assert G.gfp_zone(G.GFP_HIGHUSER) == ZoneType.HIGHMEM
    assert G.gfp_zone(G.GFP_HIGHUSER_MOVABLE) == ZoneType.MOVABLE
    assert G.gfp_zone(getattr(G, "__GFP_MOVABLE")) == ZoneType.NORMAL  # MOVABLE alone: not ZONE_MOVABLE
    for bad in (G.GFP_DMA | G.GFP_DMA32, getattr(G, "__GFP_HIGHMEM") | G.GFP_DMA):
        with pytest.raises(G.GfpError):
            G.gfp_zone(bad)


def test_gfp_migratetype():
    assert G.gfp_migratetype(G.GFP_KERNEL) == MIGRATE_UNMOVABLE
    assert G.gfp_migratetype(G.GFP_HIGHUSER_MOVABLE) == MIGRATE_MOVABLE
    assert G.gfp_migratetype(G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE")) == MIGRATE_RECLAIMABLE
    with pytest.raises(G.GfpError):
        G.gfp_migratetype(getattr(G, "__GFP_MOVABLE") | getattr(G, "__GFP_RECLAIMABLE"))
