"""/proc/buddyinfo, /proc/pagetypeinfo, /proc/zoneinfo and the debugfs extfrag files.

Mirrors mm/vmstat.c (6.1, with the 6.19 differences of kernel-facts §5.4/§5.5).
Every text format has a *pure* renderer that takes plain data (``render_*``), the
adapter that feeds it from a :class:`memdesc.mm.page_alloc.PageAllocator` and a parser
that reads the real kernel file back into the same plain data, so
``render_x(parse_x(real_file)) == real_file`` byte for byte.

Zone and migratetype numbering: the model's numbering is fixed (memdesc.mm.mmzone);
the printed columns follow the kernel configuration, i.e. ``machine.kernel_zone_names``
(x86_64 adds ``Device``) and ``machine.config_cma`` (without CONFIG_CMA there is no
CMA column and Isolate follows HighAtomic).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    MIGRATETYPE_NAMES,
    NR_PAGE_ORDERS,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
)

__all__ = [
    "FREE_LIST_CAP", "ContigPageInfo", "kernel_migratetypes", "buddyinfo", "pagetypeinfo", "zoneinfo",
    "render_buddyinfo", "render_pagetypeinfo", "render_zoneinfo", "parse_buddyinfo",
    "parse_pagetypeinfo", "parse_zoneinfo", "fill_contig_page_info", "fragmentation_index",
    "unusable_free_index", "extfrag_for_order", "extfrag_index", "unusable_index",
    "render_extfrag_index", "render_unusable_index", "fragmentation_summary",
    "calculate_normal_threshold", "pageblock_counts",
]

FREE_LIST_CAP = 100000  # pagetypeinfo_showfree_print: list walk capped, printed with '>'

# --- stat item names (vmstat_text[]) ------------------------------------------------
# 6.1 node_stat_item names as printed by the real Debian 6.1 x86_64 kernel (the i386
# kernel lacks the CONFIG_NUMA_BALANCING pgpromote_* pair).
_NODE_STATS_61 = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
    "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file",
    "workingset_nodes", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages", "nr_mapped",
    "nr_file_pages", "nr_dirty", "nr_writeback", "nr_writeback_temp", "nr_shmem",
    "nr_shmem_hugepages", "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages", "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "nr_dirtied",
    "nr_written", "nr_throttled_written", "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired",
    "nr_foll_pin_released", "nr_kernel_stack", "nr_page_table_pages", "nr_sec_page_table_pages",
    "nr_swapcached",
)
_NODE_STATS_NUMA_BALANCING = ("pgpromote_success", "pgpromote_candidate")
# zone_stat_item names. 6.1: Debian config (CONFIG_ZSMALLOC=m -> nr_zspages present).
_ZONE_STATS_61 = (
    "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file",
    "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock", "nr_bounce",
    "nr_zspages", "nr_free_cma",
)
# Recent mainline (read from a post-6.15 mm/vmstat.c): NR_FREE_PAGES_BLOCKS added,
# nr_bounce gone. Exact release of each change is unverified.
_ZONE_STATS_619 = (
    "nr_free_pages", "nr_free_pages_blocks", "nr_zone_inactive_anon", "nr_zone_active_anon",
    "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending",
    "nr_mlock", "nr_zspages", "nr_free_cma",
)
_NUMA_STATS = ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other")

# zoneinfo fields printed "\n        %-8s %lu" after "pages free"
_WMARK_FIELDS_61 = ("boost", "min", "low", "high", "spanned", "present", "managed", "cma")
_WMARK_FIELDS_619 = ("boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma")
_WMARK_FIELD_SET = frozenset(_WMARK_FIELDS_619)
_TAIL_FIELDS = ("node_unreclaimable", "start_pfn", "reserved_highatomic", "free_highatomic")
_SPECIAL_KEYS = frozenset({"pages free", "protection", "per-node stats", "pagesets", *_WMARK_FIELD_SET,
                           *_TAIL_FIELDS})


def kernel_migratetypes(config_cma: bool) -> tuple[tuple[int, str], ...]:
    """The configured enum migratetype as (model migratetype, migratetype_names[]) pairs."""
    mts = [MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC]
    if config_cma:
        mts.append(MIGRATE_CMA)
    mts.append(MIGRATE_ISOLATE)
    return tuple((mt, MIGRATETYPE_NAMES[mt]) for mt in mts)


def _node_zones(alloc: Any, nid: int) -> list[Any]:
    """The node's zones in kernel zone index order (node_zones[])."""
    return sorted((z for z in alloc.zones if z.nid == nid), key=lambda z: z.node_zone_idx)


def _populated(alloc: Any) -> list[Any]:
    """walk_zones_in_node(assert_populated=true) over all online nodes."""
    out = []
    for nid in range(alloc.machine.nr_nodes):
        out.extend(z for z in _node_zones(alloc, nid) if z.present)
    return out


# --- /proc/buddyinfo ------------------------------------------------------------------
def render_buddyinfo(rows: Iterable[tuple[int, str, Sequence[int]]]) -> str:
    """frag_show_print(): ``(nid, zone name, nr_free per order)`` rows, populated zones only."""
    out = []
    for nid, name, counts in rows:
        out.append(f"Node {nid}, zone {name:>8} " + "".join(f"{c:6d} " for c in counts) + "\n")
    return "".join(out)


def buddyinfo(alloc: Any) -> str:
    """/proc/buddyinfo of the model (frag_show)."""
    return render_buddyinfo((z.nid, z.name, list(z.nr_free)) for z in _populated(alloc))


def parse_buddyinfo(text: str) -> dict[tuple[int, str], list[int]]:
    """Parse /proc/buddyinfo into ``{(nid, zone): [nr_free per order]}``."""
    out: dict[tuple[int, str], list[int]] = {}
    for line in text.splitlines():
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)$", line)
        if m:
            out[(int(m.group(1)), m.group(2))] = [int(x) for x in m.group(3).split()]
    return out


# --- /proc/pagetypeinfo ---------------------------------------------------------------
def _fmt_free(count: int) -> str:
    if count >= FREE_LIST_CAP:
        return f">{FREE_LIST_CAP:6d} "
    return f"{count:6d} "


def render_pagetypeinfo(pageblock_order: int, mt_names: Sequence[str],
                        free: Mapping[tuple[int, str, str], Sequence[int]],
                        blocks: Mapping[tuple[int, str], Mapping[str, int]],
                        nr_orders: int = NR_PAGE_ORDERS) -> str:
    """pagetypeinfo_show() for every node with memory: header, pagetypeinfo_showfree()
    and pagetypeinfo_showblockcount(). ``free`` counts of FREE_LIST_CAP or more print
    as ``>100000`` (the capped list walk). Zones keep the mappings' insertion order."""
    nids = sorted({k[0] for k in blocks} | {k[0] for k in free})
    out = []
    for nid in nids:
        out.append(f"Page block order: {pageblock_order}\n")
        out.append(f"Pages per block:  {1 << pageblock_order}\n\n")
        out.append(f"{'Free pages count per migrate type at order':<43} "
                   + "".join(f"{o:6d} " for o in range(nr_orders)) + "\n")
        for (n, zone, mt), counts in free.items():
            if n == nid:
                out.append(f"Node {n:4d}, zone {zone:>8}, type {mt:>12} "
                           + "".join(_fmt_free(c) for c in counts) + "\n")
        out.append(f"\n{'Number of blocks type ':<23}" + "".join(f"{m:>12} " for m in mt_names) + "\n")
        for (n, zone), counts in blocks.items():
            if n == nid:
                out.append(f"Node {n}, zone {zone:>8} "
                           + "".join(f"{counts.get(m, 0):12d} " for m in mt_names) + "\n")
    return "".join(out)


def pageblock_counts(alloc: Any, z: Any) -> dict[int, int]:
    """pagetypeinfo_showblockcount_print(): step from zone_start_pfn by pageblock_nr_pages
    (unaligned start kept), skip pfns in holes (no online memmap) or of another zone,
    count get_pageblock_migratetype(); returns ``{model migratetype: count}``."""
    nr = 1 << alloc.pageblock_order
    pfns = np.arange(z.start_pfn, z.start_pfn + z.spanned, nr, dtype=np.int64)
    if not len(pfns):
        return {}
    zid = np.frombuffer(alloc.zid_of_pfn, dtype=np.uint8)
    keep = alloc.present_mask[pfns] & (zid[pfns] == z.zid)
    pb = np.frombuffer(alloc.pb_mt, dtype=np.uint8)
    mts = pb[pfns[keep] >> alloc.pageblock_order]
    counts = np.bincount(mts, minlength=len(MIGRATETYPE_NAMES))
    return {mt: int(counts[mt]) for mt in range(len(MIGRATETYPE_NAMES))}


def pagetypeinfo(alloc: Any) -> str:
    """/proc/pagetypeinfo of the model (pagetypeinfo_show)."""
    mts = kernel_migratetypes(alloc.machine.config_cma)
    free: dict[tuple[int, str, str], list[int]] = {}
    blocks: dict[tuple[int, str], dict[str, int]] = {}
    for z in _populated(alloc):
        for mt, name in mts:
            free[(z.nid, z.name, name)] = [min(alloc.free_count(z, o, mt), FREE_LIST_CAP)
                                           for o in range(NR_PAGE_ORDERS)]
        bc = pageblock_counts(alloc, z)
        blocks[(z.nid, z.name)] = {name: bc.get(mt, 0) for mt, name in mts}
    return render_pagetypeinfo(alloc.pageblock_order, [n for _, n in mts], free, blocks)


def parse_pagetypeinfo(text: str) -> dict[str, Any]:
    """Parse /proc/pagetypeinfo: ``{'free': {(nid, zone, mt): [counts]}, 'blocks':
    {(nid, zone): {mt: n}}, 'pageblock_order': int, 'migratetypes': [names]}``.
    A capped count (``>100000``) parses as 100000."""
    free: dict[tuple[int, str, str], list[int]] = {}
    blocks: dict[tuple[int, str], dict[str, int]] = {}
    order = -1
    names: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^Page block order:\s*(\d+)", line)
        if m:
            order = int(m.group(1))
            continue
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+),\s+type\s+(\S+)\s+(.*)$", line)
        if m:
            free[(int(m.group(1)), m.group(2), m.group(3))] = [
                int(x.lstrip(">")) for x in m.group(4).split()]
            continue
        if line.startswith("Number of blocks type"):
            names = line[len("Number of blocks type"):].split()
            continue
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+)\s+([\d\s]+)$", line)
        if m and names:
            vals = [int(x) for x in m.group(3).split()]
            blocks[(int(m.group(1)), m.group(2))] = dict(zip(names, vals, strict=False))
    return {"free": free, "blocks": blocks, "pageblock_order": order, "migratetypes": names}


# --- /proc/zoneinfo -------------------------------------------------------------------
def calculate_normal_threshold(managed: int, nr_cpus: int) -> int:
    """calculate_normal_threshold(): the per-cpu vmstat drift threshold of a zone."""
    mem = managed >> (27 - 12)
    return min(125, 2 * nr_cpus.bit_length() * (1 + mem.bit_length()))


def render_zoneinfo(zones: Mapping[tuple[int, str], Mapping[str, Any]]) -> str:
    """zoneinfo_show_print() for every zone record, in mapping order. A record holds
    (in print order) optional ``per-node stats`` (name -> value), ``pages free``, the
    watermark/size fields (``promo`` only for 6.19), ``protection`` (tuple), then for
    populated zones (present != 0) the zone stat items (any other key, print order),
    ``pagesets`` (list of dicts: cpu, count, high, batch, [high_min, high_max],
    [threshold]), ``node_unreclaimable``, ``start_pfn`` and the optional 6.19
    ``reserved_highatomic``/``free_highatomic``."""
    out = []
    for (nid, name), d in zones.items():
        out.append(f"Node {nid}, zone {name:>8}")
        if "per-node stats" in d:
            out.append("\n  per-node stats")
            for k, v in d["per-node stats"].items():
                out.append(f"\n      {k:<12} {v}")
        out.append(f"\n  pages free     {d['pages free']}")
        for k in _WMARK_FIELDS_619:
            if k in d:
                out.append(f"\n        {k:<8} {d[k]}")
        out.append("\n        protection: (" + ", ".join(str(v) for v in d["protection"]) + ")")
        if not d.get("present"):
            out.append("\n")
            continue
        for k, v in d.items():
            if k not in _SPECIAL_KEYS:
                out.append(f"\n      {k:<12} {v}")
        out.append("\n  pagesets")
        for p in d.get("pagesets", ()):
            out.append(f"\n    cpu: {p['cpu']}")
            if "high_min" in p:  # 6.19 layout
                out.append(f"\n              count:    {p['count']}"
                           f"\n              high:     {p['high']}"
                           f"\n              batch:    {p['batch']}"
                           f"\n              high_min: {p['high_min']}"
                           f"\n              high_max: {p['high_max']}")
            else:
                out.append(f"\n              count: {p['count']}"
                           f"\n              high:  {p['high']}"
                           f"\n              batch: {p['batch']}")
            if "threshold" in p:
                out.append(f"\n  vm stats threshold: {p['threshold']}")
        out.append(f"\n  node_unreclaimable:  {d['node_unreclaimable']}"
                   f"\n  start_pfn:           {d['start_pfn']}")
        if "reserved_highatomic" in d:
            out.append(f"\n  reserved_highatomic: {d['reserved_highatomic']}"
                       f"\n  free_highatomic:     {d['free_highatomic']}")
        out.append("\n")
    return "".join(out)


def _protection(alloc: Any, z: Any | None, kidx: int) -> tuple[int, ...]:
    """zone->lowmem_reserve[] in kernel index order (MAX_NR_ZONES entries). The model
    array is indexed by ZoneType; ZONE_DEVICE (x86_64, never managed) repeats the
    cumulative value of the last model zone, as setup_per_zone_lowmem_reserve() does."""
    m = alloc.machine
    types = m.kernel_zone_types
    n = len(m.kernel_zone_names)
    if z is None:
        return (0,) * n
    vals = [int(z.lowmem_reserve[t]) for t in types]
    for k in range(len(types), n):  # Device
        vals.append(vals[-1] if kidx < k else 0)
    return tuple(vals)


def zoneinfo(alloc: Any) -> str:
    """/proc/zoneinfo of the model (zoneinfo_show): every configured zone of every node
    in kernel order. Statistics the model does not track (LRU, slab, NUMA events...)
    print as 0 under their real names so parsers keep working."""
    m = alloc.machine
    k619 = alloc.kernel != "6.1"
    numa = m.arch == "x86_64"
    node_stats = _NODE_STATS_61 + (_NODE_STATS_NUMA_BALANCING if numa else ())
    zone_stats = (_ZONE_STATS_619 if k619 else _ZONE_STATS_61) + (_NUMA_STATS if numa else ())
    records: dict[tuple[int, str], dict[str, Any]] = {}
    for nid in range(m.nr_nodes):
        by_type = {z.ztype: z for z in alloc.zones if z.nid == nid}
        first = True
        for kidx, name in enumerate(m.kernel_zone_names):
            ztype = m.kernel_zone_types[kidx] if kidx < len(m.kernel_zone_types) else None
            z = by_type.get(ztype) if ztype is not None else None
            d: dict[str, Any] = {}
            populated = z is not None and z.present > 0
            if populated and first:  # is_zone_first_populated()
                first = False
                d["per-node stats"] = dict.fromkeys(node_stats, 0)

            def wm(i: int, z: Any = z) -> int:
                return alloc.wmark_pages(z, i) if z is not None else 0

            d["pages free"] = z.free_pages if z is not None else 0
            d["boost"] = z.watermark_boost if z is not None else 0
            d["min"], d["low"], d["high"] = wm(WMARK_MIN), wm(WMARK_LOW), wm(WMARK_HIGH)
            if k619:
                d["promo"] = wm(WMARK_PROMO)
            d["spanned"] = z.spanned if z is not None else 0
            d["present"] = z.present if z is not None else 0
            d["managed"] = z.managed if z is not None else 0
            d["cma"] = z.cma_pages if z is not None else 0
            d["protection"] = _protection(alloc, z, kidx)
            if populated:
                stats = dict.fromkeys(zone_stats, 0)
                stats["nr_free_pages"] = z.free_pages
                stats["nr_free_cma"] = z.nr_free_cma
                if "nr_free_pages_blocks" in stats:
                    stats["nr_free_pages_blocks"] = sum(
                        c << o for o, c in enumerate(z.nr_free) if o >= alloc.pageblock_order)
                d.update(stats)
                thr = calculate_normal_threshold(z.managed, m.nr_cpus)
                psets = []
                for cpu, p in enumerate(z.pcp):
                    ps: dict[str, int] = {"cpu": cpu, "count": p.count, "high": p.high, "batch": p.batch}
                    if k619:
                        ps["high_min"] = getattr(p, "high_min", p.high)
                        ps["high_max"] = getattr(p, "high_max", p.high)
                    ps["threshold"] = thr
                    psets.append(ps)
                d["pagesets"] = psets
                d["node_unreclaimable"] = 0
                d["start_pfn"] = z.start_pfn
                if k619:
                    d["reserved_highatomic"] = z.nr_reserved_highatomic
                    d["free_highatomic"] = z.nr_free_highatomic
            records[(nid, name)] = d
    return render_zoneinfo(records)


def parse_zoneinfo(text: str) -> dict[tuple[int, str], dict[str, Any]]:
    """Parse /proc/zoneinfo into ``{(nid, zone): record}`` (the structure
    :func:`render_zoneinfo` takes): keys in file order, ``protection`` a tuple,
    ``per-node stats`` a dict, ``pagesets`` a list of per-cpu dicts, zone stat items
    (nr_free_pages, nr_free_cma, ...) and the scalar fields as ints."""
    out: dict[tuple[int, str], dict[str, Any]] = {}
    cur: dict[str, Any] | None = None
    in_node_stats = False
    for line in text.splitlines():
        m = re.match(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$", line)
        if m:
            cur = out.setdefault((int(m.group(1)), m.group(2)), {})
            in_node_stats = False
            continue
        if cur is None or not line.strip():
            continue
        if line == "  per-node stats":
            cur["per-node stats"] = {}
            in_node_stats = True
            continue
        m = re.match(r"^\s+protection: \(([-\d, ]*)\)$", line)
        if m:
            cur["protection"] = tuple(int(x) for x in m.group(1).split(",") if x.strip())
            continue
        if line == "  pagesets":
            cur["pagesets"] = []
            continue
        m = re.match(r"^    cpu: (\d+)$", line)
        if m:
            cur.setdefault("pagesets", []).append({"cpu": int(m.group(1))})
            continue
        m = re.match(r"^ {14}(count|high|batch|high_min|high_max):\s+(-?\d+)$", line)
        if m and cur.get("pagesets"):
            cur["pagesets"][-1][m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^  vm stats threshold: (-?\d+)$", line)
        if m and cur.get("pagesets"):
            cur["pagesets"][-1]["threshold"] = int(m.group(1))
            continue
        m = re.match(r"^  (pages free|node_unreclaimable:|start_pfn:|reserved_highatomic:|free_highatomic:)"
                     r"\s+(-?\d+)$", line)
        if m:
            cur[m.group(1).rstrip(":")] = int(m.group(2))
            in_node_stats = False
            continue
        m = re.match(r"^ {8}(\w+)\s+(-?\d+)$", line)
        if m and m.group(1) in _WMARK_FIELD_SET:
            cur[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^ {6}(\w+)\s+(-?\d+)$", line)
        if m:
            target = cur["per-node stats"] if in_node_stats else cur
            target[m.group(1)] = int(m.group(2))
    return out


# --- fragmentation (§5.5) ---------------------------------------------------------------
@dataclass(frozen=True)
class ContigPageInfo:
    """struct contig_page_info."""

    free_pages: int
    free_blocks_total: int
    free_blocks_suitable: int


def _counts(zone_or_counts: Any) -> Sequence[int]:
    return zone_or_counts.nr_free if hasattr(zone_or_counts, "nr_free") else zone_or_counts


def fill_contig_page_info(zone_free_counts: Any, suitable_order: int) -> ContigPageInfo:
    """fill_contig_page_info(): from a zone (its ``nr_free``) or a list of nr_free per order."""
    free_pages = total = suitable = 0
    for order, blocks in enumerate(_counts(zone_free_counts)):
        total += blocks
        free_pages += blocks << order
        if order >= suitable_order:
            suitable += blocks << (order - suitable_order)
    return ContigPageInfo(free_pages, total, suitable)


def _info(arg: Any, order: int) -> ContigPageInfo:
    return arg if isinstance(arg, ContigPageInfo) else fill_contig_page_info(arg, order)


def fragmentation_index(zone_free_counts: Any, order: int) -> int:
    """__fragmentation_index() (integer, x1000): 0 with no free blocks, -1000 if a
    suitable block exists, else 1000 - (1000 + free_pages*1000/2^order) / free_blocks_total.
    Can be negative (e.g. one order-0 page, order 1 -> -500) exactly as in C."""
    if order >= NR_PAGE_ORDERS:
        return 0
    info = _info(zone_free_counts, order)
    if not info.free_blocks_total:
        return 0
    if info.free_blocks_suitable:
        return -1000
    return 1000 - (1000 + info.free_pages * 1000 // (1 << order)) // info.free_blocks_total


def unusable_free_index(zone_free_counts: Any, order: int) -> int:
    """unusable_free_index() (x1000): share of free memory in blocks smaller than 2^order."""
    info = _info(zone_free_counts, order)
    if info.free_pages == 0:
        return 1000
    return (info.free_pages - (info.free_blocks_suitable << order)) * 1000 // info.free_pages


def extfrag_for_order(zone_free_counts: Any, order: int) -> int:
    """extfrag_for_order(): percent (0..100) of free pages in blocks below 2^order."""
    info = _info(zone_free_counts, order)
    if info.free_pages == 0:
        return 0
    return (info.free_pages - (info.free_blocks_suitable << order)) * 100 // info.free_pages


def _c_thousandths(idx: int, width: int) -> str:
    """printf("%<width>d.%03d ", idx / 1000, idx % 1000) with C truncating division."""
    q = abs(idx) // 1000 * (1 if idx >= 0 else -1)
    r = idx - q * 1000
    return f"{q:{width}d}.{r:03d} "


def render_extfrag_index(rows: Iterable[tuple[int, str, Sequence[int]]]) -> str:
    """extfrag_show_print(): ``(nid, zone, nr_free per order)`` rows -> debugfs extfrag_index."""
    out = []
    for nid, name, counts in rows:
        out.append(f"Node {nid}, zone {name:>8} " + "".join(
            _c_thousandths(fragmentation_index(counts, o), 2) for o in range(len(counts))) + "\n")
    return "".join(out)


def render_unusable_index(rows: Iterable[tuple[int, str, Sequence[int]]]) -> str:
    """unusable_show_print(): rows -> debugfs extfrag/unusable_index."""
    out = []
    for nid, name, counts in rows:
        out.append(f"Node {nid}, zone {name:>8} " + "".join(
            _c_thousandths(unusable_free_index(counts, o), 0) for o in range(len(counts))) + "\n")
    return "".join(out)


def extfrag_index(alloc: Any) -> str:
    """/sys/kernel/debug/extfrag/extfrag_index of the model (extfrag_show)."""
    return render_extfrag_index((z.nid, z.name, list(z.nr_free)) for z in _populated(alloc))


def unusable_index(alloc: Any) -> str:
    """/sys/kernel/debug/extfrag/unusable_index of the model (unusable_show)."""
    return render_unusable_index((z.nid, z.name, list(z.nr_free)) for z in _populated(alloc))


def fragmentation_summary(alloc: Any) -> dict[str, dict[str, Any]]:
    """JSON-friendly per populated zone (key ``"<nid>:<zone>"``): free pages, nr_free,
    and per order the unusable index, extfrag index (floats, /1000) and extfrag_for_order."""
    out: dict[str, dict[str, Any]] = {}
    for z in _populated(alloc):
        counts = list(z.nr_free)
        orders = range(len(counts))
        out[f"{z.nid}:{z.name}"] = {
            "free_pages": fill_contig_page_info(counts, 0).free_pages,
            "nr_free": counts,
            "unusable_index": [unusable_free_index(counts, o) / 1000 for o in orders],
            "extfrag_index": [fragmentation_index(counts, o) / 1000 for o in orders],
            "extfrag_pct": [extfrag_for_order(counts, o) for o in orders],
        }
    return out
