"""Seeded, reproducible synthetic workloads: kernel-like page-allocation event streams.

Each profile imitates one way the kernel uses the page allocator (see
docs/workloads-synthetic.md). ``synthetic_events(name, ops, seed, total_pages)`` yields
exactly ``ops`` operations (an ``Alloc`` or a ``Free`` is one operation; ``Mark``,
``ContigAlloc`` and ``ContigFree`` are extra and not counted) with unique integer handles.

Stream contract (what the runner may rely on):

* every ``Free`` names a handle whose ``Alloc`` came earlier and that was not freed since;
* a Free of a handle whose Alloc failed is ignored by the runner (the generator cannot
  see failures, so it frees such handles like any other);
* at the end of the stream handles may remain live; ``params={'drain_at_end': True}``
  frees all of them (with an odd ``ops`` one handle necessarily stays live, because every
  handle costs two operations);
* the same (name, ops, seed, total_pages, params) gives the same stream, on any platform.

Generators are lazy and cheap: integer draws from one ``random.Random(seed)``, live
blocks kept as packed ints (``handle + ((cpu << 4 | order) << shift)``, see ``_TAGS``)
in plain lists, and no per-event object beyond the event dataclass itself. Memory is
bounded by the number of live handles, never by ``ops``.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

from memdesc.mm import gfp as G
from memdesc.workloads.events import Alloc, ContigAlloc, ContigFree, Event, Free

__all__ = [
    "PROFILES",
    "Profile",
    "SyntheticError",
    "check_params",
    "list_profiles",
    "synthetic_events",
]

# Module-level aliases: double-underscore names would be mangled inside class bodies.
_COMP = G.__GFP_COMP
_ZERO = G.__GFP_ZERO
_RECL = G.__GFP_RECLAIMABLE
_NOWARN = G.__GFP_NOWARN
_NORETRY = G.__GFP_NORETRY
_RETRY = G.__GFP_RETRY_MAYFAIL
_HIGHMEM = G.__GFP_HIGHMEM

GFP_USER_PAGE = G.GFP_HIGHUSER_MOVABLE
GFP_FILE = G.GFP_HIGHUSER_MOVABLE | _COMP  # folio_alloc() adds __GFP_COMP
GFP_READAHEAD = GFP_FILE | _NORETRY | _NOWARN  # readahead_gfp_mask()
GFP_SLAB = G.GFP_KERNEL | _COMP  # allocate_slab()
GFP_SLAB_RECL = G.GFP_KERNEL | _RECL | _COMP  # SLAB_RECLAIM_ACCOUNT caches (dentry, inode)
GFP_SLAB_HIGH = GFP_SLAB | _NOWARN | _NORETRY  # first, optimistic high-order slab try
GFP_PGTABLE = G.GFP_KERNEL_ACCOUNT | _ZERO  # GFP_PGTABLE_USER
GFP_STACK = G.GFP_KERNEL_ACCOUNT | _ZERO  # THREADINFO_GFP
GFP_VMALLOC = G.GFP_KERNEL | _HIGHMEM | _NOWARN  # __vmalloc_area_node()
GFP_KMALLOC_LARGE = G.GFP_KERNEL | _COMP | _NOWARN | _NORETRY
GFP_SKB_FRAG = G.GFP_ATOMIC | _COMP | _NOWARN | _NORETRY  # skb_page_frag_refill()

_MAX_CPUS = 256

# A live block is one int: handle + (tag << shift), tag = cpu << 4 | order, with the
# shift from _tag_shift() above every handle of the stream. The commonest block, order 0
# on CPU 0, is its bare handle; any other decodes with one lookup here.
_TAGS = tuple((tag & 15, tag >> 4, 1 << (tag & 15)) for tag in range(_MAX_CPUS << 4))  # (order, cpu, pages)


class SyntheticError(ValueError):
    """An unknown profile or a bad parameter (name, type or value)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A registered profile: its generator, one-line summary and default parameters."""

    name: str
    summary: str
    gen: Callable[[random.Random, int, int, dict, int], Iterator[Event]]
    defaults: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {}

# Parameters every profile accepts (occupancy control, CPUs, final drain).
_COMMON: dict[str, object] = {
    "occupancy": 0.55,  # steady-state target of live pages / total_pages
    "wave_peak": 0.9,  # occupancy at the top of a pressure wave (<= occupancy: no waves)
    "wave_period": 250_000,  # ops between wave starts
    "wave_len": 100_000,  # ops a wave's raised target lasts
    "cpus": 1,  # allocations are spread over cpus 0..cpus-1
    "drain_at_end": False,  # free every live handle before the stream ends
    "kernel": "6.19",  # gfp composites of this kernel (6.1: GFP_ATOMIC has __GFP_ATOMIC)
}


def _register(name: str, summary: str, common: tuple[str, ...] = tuple(_COMMON), **defaults: object):
    """Register a profile; ``common`` names the shared parameters it honours."""

    def deco(fn):
        PROFILES[name] = Profile(name, summary, fn, {**{k: _COMMON[k] for k in common}, **defaults})
        fn.profile_name = name
        return fn

    return deco


def list_profiles() -> list[tuple[str, str]]:
    """(name, one-line description) for every profile, in registration order."""
    return [(p.name, p.summary) for p in PROFILES.values()]


def check_params(name: str, params: dict | None, where: str = "params") -> dict:
    """Merge ``params`` over the profile's defaults, rejecting unknown keys and wrong
    types (an int is accepted for a float; a bool never for a number)."""
    if name not in PROFILES:
        raise SyntheticError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    defaults = PROFILES[name].defaults
    merged = dict(defaults)
    for key, value in (params or {}).items():
        if key not in defaults:
            raise SyntheticError(
                f"{where}.{key}: unknown parameter for profile {name!r} (known: {', '.join(sorted(defaults))})"
            )
        want = type(defaults[key])
        ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise SyntheticError(f"{where}.{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
        if want in (int, float) and value < 0:
            raise SyntheticError(f"{where}.{key}: must be >= 0, got {value!r}")
        merged[key] = value
    if merged.get("kernel", "6.19") not in G.KERNELS:
        raise SyntheticError(f"{where}.kernel: must be one of {', '.join(G.KERNELS)}, got {merged['kernel']!r}")
    if not 1 <= merged["cpus"] <= _MAX_CPUS:
        raise SyntheticError(f"{where}.cpus: must be in 1..{_MAX_CPUS}, got {merged['cpus']}")
    for key in ("occupancy", "wave_peak"):
        if merged.get(key, 0.0) > 1.0:
            raise SyntheticError(f"{where}.{key}: must be <= 1.0, got {merged[key]}")
    if not 1 <= merged.get("short_window", 1) <= 4096:
        raise SyntheticError(f"{where}.short_window: must be in 1..4096, got {merged['short_window']}")
    return merged


def synthetic_events(
    name: str,
    ops: int,
    seed: int,
    total_pages: int,
    params: dict | None = None,
    *,
    first_handle: int = 0,
) -> Iterator[Event]:
    """Lazily yield exactly ``ops`` Alloc/Free events of profile ``name``.

    ``total_pages`` is the machine's present pages; occupancy targets are fractions of
    it. Handles are ints in ``[first_handle, first_handle + 2 * ops + 2)``."""
    if ops < 0:
        raise SyntheticError(f"ops must be >= 0, got {ops}")
    if total_pages <= 0:
        raise SyntheticError(f"total_pages must be > 0, got {total_pages}")
    if first_handle < 0:
        raise SyntheticError(f"first_handle must be >= 0, got {first_handle}")
    merged = check_params(name, params)
    rng = random.Random(seed)
    return PROFILES[name].gen(rng, ops, total_pages, merged, first_handle)


# --- shared machinery ---------------------------------------------------------------


def _class_table(classes: list[tuple], bits: int = 12) -> list[tuple]:
    """Expand weighted classes ``(weight, *payload)`` into a 2^bits lookup table so a
    draw is one ``getrandbits``; every positive weight gets at least one slot."""
    size = 1 << bits
    live = [c for c in classes if c[0] > 0]
    if not live:
        raise SyntheticError("profile has no allocation class with positive weight")
    total = sum(c[0] for c in live)
    counts = [max(1, int(c[0] * size / total)) for c in live]
    # Largest classes absorb the rounding error.
    order = sorted(range(len(live)), key=lambda i: -live[i][0])
    diff = size - sum(counts)
    k = 0
    while diff != 0:
        i = order[k % len(order)]
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
        k += 1
    table: list[tuple] = []
    for c, n in zip(live, counts, strict=True):
        table.extend([tuple(c[1:])] * n)
    return table


def _gfp_61(gfp: int) -> int:
    """The 6.1 spelling of a 6.19 mask: GFP_ATOMIC-based masks (__GFP_HIGH without
    direct reclaim) also carry __GFP_ATOMIC (0x200), which 6.1 turns into ALLOC_HARDER."""
    if gfp & G.__GFP_HIGH and not gfp & G.__GFP_DIRECT_RECLAIM:
        return gfp | G.__GFP_ATOMIC
    return gfp


def _tag_shift(first_handle: int, ops: int) -> int:
    """Bit position of the tag in a packed live entry: above every handle of the stream
    (handles are below ``first_handle + 2 * ops + 2``)."""
    return (first_handle + 2 * ops + 2).bit_length()


def _drain(entries: list[int], budget: int, tshift: int) -> Iterator[Free]:
    """Free live entries (tag at bit ``tshift``), newest first, at most ``budget`` of them."""
    hmask = (1 << tshift) - 1
    for entry in reversed(entries[len(entries) - budget :] if budget < len(entries) else entries):
        order, cpu, _pages = _TAGS[entry >> tshift]
        yield Free(entry & hmask, order, cpu)


def _target(op: int, base: int, peak: int, period: int, length: int) -> int:
    """Occupancy target (pages) at op ``op``: ``base``, raised to ``peak`` during the
    last ``length`` ops of every ``period`` (a pressure wave: the generator allocates
    towards the peak as fast as its alloc/free mix allows, then falls back)."""
    if peak <= base or period <= 0 or length <= 0:
        return base
    return peak if op % period >= period - length else base


# Alloc probabilities of _pool_engine far below, below and above its occupancy target:
# 92, 75 and 35 % in 20-bit fixed point, shifted over the 12 class bits of a draw.
_ALLOC_PROBS = (int(0.92 * (1 << 20)) << 12, int(0.75 * (1 << 20)) << 12, int(0.35 * (1 << 20)) << 12)


def _alloc_bands(lo_mark: int, target: int, hard_cap: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Occupancy bands of ``_pool_engine``: with ``live`` pages, ``bands[bisect(edges,
    live)]`` is ``(threshold, low, high)``: allocate when the 32-bit draw is below
    ``threshold`` (always with nothing live, never at the hard cap), valid while
    ``low <= live < high``."""
    edges = [1, max(1, lo_mark), max(1, target), max(1, hard_cap)]
    thresholds = (1 << 32, *_ALLOC_PROBS, 0)
    return edges, list(zip(thresholds, [0, *edges], [*edges, 1 << 62], strict=True))


def _pool_engine(
    rng: random.Random,
    ops: int,
    total_pages: int,
    p: dict,
    first_handle: int,
    classes: list[tuple],
    *,
    short_window: int = 256,
    long_free: float = 0.3,
    contig: tuple[int, int, int, int, int] | None = None,
) -> Iterator[Event]:
    """The common generator behind the random-mix profiles.

    ``classes`` are ``(weight, order, gfp, kind, long_lived, burst)``: a draw picks a
    class; ``burst`` > 1 makes that many consecutive allocations of the class on one
    CPU (NAPI-style). Short-lived blocks are freed from among the ``short_window`` most
    recent ones (LIFO-ish: most allocations die young); long-lived ones are freed
    uniformly at random, and only while occupancy is above target, so they accumulate
    and scatter — that is the fragmentation. Occupancy follows ``_target``: below half
    of it 92 % of ops allocate, below it 75 %, above it 35 %, above 98 % of memory none.

    ``contig`` = (every, min_order, max_order, align_cap, max_live): every ``every``
    ops, a ContigAlloc of 2^k pages (k uniform in [min_order, max_order]); the oldest
    is ContigFree'd when more than ``max_live`` are held.
    """
    if p["kernel"] == "6.1":
        classes = [(w, o, _gfp_61(g), *rest) for (w, o, g, *rest) in classes]
    short: list[int] = []
    long: list[int] = []
    spop, lpop = short.pop, long.pop
    tshift = _tag_shift(first_handle, ops)
    hmask = (1 << tshift) - 1
    # Table rows: (order, gfp, kind, pages, append-to-pool, burst (0: none), tag << tshift
    # on CPU 0); cpu_tag[cpu] adds a CPU's part of the tag.
    table = [
        (o, g, k, 1 << o, long.append if lg else short.append, b if b > 1 else 0, o << tshift)
        for (o, g, k, lg, b) in _class_table(classes)
    ]
    getrandbits = rng.getrandbits
    rand = rng.random
    alloc, free, tags = Alloc, Free, _TAGS
    cpus = p["cpus"]
    multi_cpu = cpus > 1
    cpu_tag = [cpu << (tshift + 4) for cpu in range(cpus)]
    drain = p["drain_at_end"]
    base = int(p["occupancy"] * total_pages)
    peak = int(p["wave_peak"] * total_pages)
    period, wlen = p["wave_period"], p["wave_len"]
    hard_cap = int(total_pages * 0.98)
    live_pages = 0
    handle = first_handle
    burst_left = 0
    burst_row: tuple = ()  # (order, gfp, kind, pages, append, cpu, tag) of the current burst
    contig_live: deque[int] = deque()
    next_contig = contig[0] if contig else ops
    next_wave = 0
    next_drain = 0 if drain else ops
    target = base
    # The alloc threshold in force, thr, only changes when live_pages leaves [band_lo,
    # band_hi) or the target moves.
    thr = band_lo = band_hi = 0
    edges: list[int] = []
    bands: list[tuple[int, int, int]] = []
    window = short_window
    # 1 + the short-window slot (counted back from the newest) of the 12 class bits,
    # for a full window.
    window_back = [1 + ((x * window) >> 12) for x in range(4096)]
    long_thr = int(long_free * (1 << 20))
    op = 0
    while op < ops:
        if op == next_wave:
            target = min(_target(op, base, peak, period, wlen), hard_cap)
            edges, bands = _alloc_bands(target >> 1, target, hard_cap)
            thr, band_lo, band_hi = bands[bisect(edges, live_pages)]
            next_wave += 1024
        if op == next_contig:
            every, kmin, kmax, align_cap, max_live = contig
            k = kmin + int(rand() * (kmax - kmin + 1))
            yield ContigAlloc(handle, 1 << k, k if k < align_cap else align_cap, True)
            contig_live.append(handle)
            handle += 1
            if len(contig_live) > max_live:
                yield ContigFree(contig_live.popleft())
            next_contig += every
        if op == next_drain:
            # The stream must end with frees only once ops left <= live handles;
            # that needs at least (ops - op - live handles) // 2 more ops.
            diff = ops - op - len(short) - len(long)
            if diff <= 0:
                break
            next_drain = op + max(1, diff // 2)
        # The ops up to the next check, one event each. One 32-bit draw per op: the high
        # 20 bits decide alloc vs free (never at the hard cap), the low 12 bits pick the
        # class (alloc) or the slot in the short window (free).
        stop = min(next_wave, next_contig, next_drain, ops)
        for r in map(getrandbits, repeat(32, stop - op)):
            if burst_left:
                burst_left -= 1
                order, gfp, kind, pages, append, cpu, tag = burst_row
            elif r < thr:
                order, gfp, kind, pages, append, burst, tag = table[r & 4095]
                cpu = 0
                if multi_cpu:
                    cpu = int(rand() * cpus)
                    tag += cpu_tag[cpu]
                if burst:
                    burst_left = int(rand() * burst)
                    burst_row = (order, gfp, kind, pages, append, cpu, tag)
            else:
                # Free: swap-remove, the last entry takes the freed slot.
                if long and (not short or (live_pages > target and getrandbits(20) < long_thr)):
                    n = len(long)
                    i = (getrandbits(32) * n) >> 32
                    if i < n - 1:
                        entry = long[i]
                        long[i] = lpop()
                    else:
                        entry = lpop()
                else:
                    n = len(short)
                    back = window_back[r & 4095] if n > window else 1 + (((r & 4095) * n) >> 12)
                    if back > 1:
                        i = n - back
                        entry = short[i]
                        short[i] = spop()
                    else:
                        entry = spop()
                if entry <= hmask:  # order 0 on CPU 0: the bare handle
                    live_pages -= 1
                    ev = free(entry, 0)
                else:
                    order, cpu, pages = tags[entry >> tshift]
                    live_pages -= pages
                    ev = free(entry & hmask, order, cpu)
                if live_pages < band_lo:
                    thr, band_lo, band_hi = bands[bisect(edges, live_pages)]
                yield ev
                continue
            live_pages += pages
            if live_pages >= band_hi:
                thr, band_lo, band_hi = bands[bisect(edges, live_pages)]
            append(handle + tag if tag else handle)
            if cpu:
                yield alloc(handle, order, gfp, kind, -1, cpu)
            else:
                yield alloc(handle, order, gfp, kind)
            handle += 1
        op = stop
    if drain:
        yield from _drain(short + long, ops - op, tshift)
        while contig_live:
            yield ContigFree(contig_live.popleft())


# --- profiles ---------------------------------------------------------------------


@_register(
    "mixed",
    "kernel-like random mix of orders, gfp masks and lifetimes (default)",
    thp_weight=2.0,
    atomic_weight=3.0,
    long_fraction=0.15,
    short_window=256,
)
def _mixed(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """A whole-machine mix: user anon/file pages (movable), slab and page tables
    (unmovable), dentry/inode slabs (reclaimable), GFP_ATOMIC bursts, THP faults and a
    few DMA/DMA32 and high-order kernel allocations. Weights are percent of allocations."""
    lf = p["long_fraction"]
    s = 1.0 - lf
    classes = [
        # weight, order, gfp, kind, long_lived, burst
        (38 * s, 0, GFP_USER_PAGE, "anon", False, 1),
        (38 * lf, 0, GFP_USER_PAGE, "anon", True, 1),
        (10 * s, 0, GFP_FILE, "file", False, 1),
        (10 * lf * 2, 0, GFP_FILE, "file", True, 1),
        (2.0, 1, GFP_READAHEAD, "file", False, 1),
        (1.5, 2, GFP_READAHEAD, "file", True, 1),
        (7 * s, 0, GFP_SLAB, "slab", False, 1),
        (7 * lf, 0, GFP_SLAB, "slab", True, 1),
        (1.5, 1, GFP_SLAB_HIGH, "slab", False, 1),
        (1.0, 2, GFP_SLAB_HIGH, "slab", False, 1),
        (1.2, 3, GFP_SLAB_HIGH, "slab", True, 1),
        (4 * s, 0, GFP_SLAB_RECL, "slab", False, 1),
        (4 * lf * 2, 0, GFP_SLAB_RECL, "slab", True, 1),
        (0.5, 1, GFP_SLAB_RECL, "slab", True, 1),
        (3.0, 0, GFP_PGTABLE, "pgtable", False, 1),
        (0.6, 0, GFP_PGTABLE, "pgtable", True, 1),
        (0.4, 2, GFP_STACK, "misc", False, 1),
        (1.0, 0, GFP_VMALLOC, "vmalloc", False, 1),
        (0.3, 0, G.GFP_KERNEL_ACCOUNT, None, True, 1),
        (p["atomic_weight"] * 0.8, 0, G.GFP_ATOMIC, "misc", False, 16),
        (p["atomic_weight"] * 0.2, 3, GFP_SKB_FRAG, "misc", False, 4),
        (p["thp_weight"] * 0.7, 9, G.GFP_TRANSHUGE_LIGHT, "anon", False, 1),
        (p["thp_weight"] * 0.3, 9, G.GFP_TRANSHUGE, "anon", True, 1),
        (0.25, 4, GFP_KMALLOC_LARGE, "misc", False, 1),
        (0.1, 5, GFP_KMALLOC_LARGE, "misc", False, 1),
        (0.05, 6, GFP_KMALLOC_LARGE, None, False, 1),
        (0.03, 7, GFP_KMALLOC_LARGE, None, True, 1),
        (0.02, 8, GFP_KMALLOC_LARGE, None, False, 1),
        (0.03, 10, G.GFP_KERNEL | _COMP | _NOWARN | _RETRY, "misc", False, 1),
        (0.3, 0, G.GFP_KERNEL | G.GFP_DMA32, "misc", True, 1),
        (0.1, 1, G.GFP_KERNEL | G.GFP_DMA32, "misc", False, 1),
        (0.03, 0, G.GFP_KERNEL | G.GFP_DMA, "misc", False, 1),
    ]
    return _pool_engine(rng, ops, total_pages, p, first, classes, short_window=p["short_window"])


@_register(
    "anon-thp",
    "anonymous faults, a fraction trying order-9 THP, the rest order 0",
    thp_ratio=0.3,
    madvise_ratio=0.3,
    long_fraction=0.3,
)
def _anon_thp(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """Anonymous page faults: ``thp_ratio`` of them allocate an order-9 THP
    (GFP_TRANSHUGE for madvised regions, GFP_TRANSHUGE_LIGHT otherwise, as with
    defrag=madvise); the rest order-0 GFP_HIGHUSER_MOVABLE. The kernel's fallback to
    order 0 after a failed THP is not modelled: the generator cannot see failures."""
    thp, mad, lf = p["thp_ratio"], p["madvise_ratio"], p["long_fraction"]
    if thp > 1.0 or mad > 1.0 or lf > 1.0:
        raise SyntheticError("params: thp_ratio, madvise_ratio and long_fraction must be <= 1.0")
    classes = [
        ((1 - thp) * (1 - lf), 0, GFP_USER_PAGE, "anon", False, 1),
        ((1 - thp) * lf, 0, GFP_USER_PAGE, "anon", True, 1),
        (thp * (1 - mad) * (1 - lf), 9, G.GFP_TRANSHUGE_LIGHT, "anon", False, 1),
        (thp * (1 - mad) * lf, 9, G.GFP_TRANSHUGE_LIGHT, "anon", True, 1),
        (thp * mad * (1 - lf), 9, G.GFP_TRANSHUGE, "anon", False, 1),
        (thp * mad * lf, 9, G.GFP_TRANSHUGE, "anon", True, 1),
    ]
    return _pool_engine(rng, ops, total_pages, p, first, classes)


@_register(
    "slab-churn",
    "unmovable and reclaimable slab pages, orders 0-3, heavy churn, ~5% pinning outliers",
    occupancy=0.4,
    wave_peak=0.6,
    reclaimable_ratio=0.4,
    pin_ratio=0.05,
    short_window=64,
)
def _slab_churn(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """Slab caches growing and shrinking: GFP_KERNEL (unmovable) and
    GFP_KERNEL|__GFP_RECLAIMABLE (dentry/inode caches) slabs of orders 0-3, most
    freed almost immediately; ``pin_ratio`` of slabs are long-lived and pin their
    pageblocks (a single live object keeps a slab page). Never movable."""
    r, pin = p["reclaimable_ratio"], p["pin_ratio"]
    if r > 1.0 or pin > 1.0:
        raise SyntheticError("params: reclaimable_ratio and pin_ratio must be <= 1.0")
    # Slab order mix: kmalloc-8..kmalloc-512 caches use order 0; larger ones order 1-3.
    orders = ((0, 0.6, GFP_SLAB), (1, 0.15, GFP_SLAB_HIGH), (2, 0.1, GFP_SLAB_HIGH), (3, 0.15, GFP_SLAB_HIGH))
    classes = []
    for order, w, gfp in orders:
        for recl, wr in ((False, 1 - r), (True, r)):
            g = (gfp | _RECL) if recl else gfp
            classes.append((w * wr * (1 - pin), order, g, "slab", False, 1))
            classes.append((w * wr * pin, order, g, "slab", True, 1))
    return _pool_engine(rng, ops, total_pages, p, first, classes, short_window=p["short_window"], long_free=0.1)


@_register(
    "network-atomic",
    "GFP_ATOMIC RX bursts (order 0, order 2-3 skb frags) over CPUs, GFP_KERNEL background",
    cpus=4,
    occupancy=0.45,
    burst_max=64,
    atomic_ratio=0.7,
    jumbo_ratio=0.15,
)
def _network_atomic(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """Packet receive from interrupt/softirq context: bursts of up to ``burst_max``
    (the NAPI budget) GFP_ATOMIC allocations on one CPU — order 0 pages, or order 2-3
    skb frag pages (jumbo frames, skb_page_frag_refill) — freed soon after; plus a
    steady background of GFP_KERNEL order-0 allocations that live long."""
    a, j = p["atomic_ratio"], p["jumbo_ratio"]
    if a > 1.0 or j > 1.0:
        raise SyntheticError("params: atomic_ratio and jumbo_ratio must be <= 1.0")
    b = max(1, p["burst_max"])
    mean_burst = (b + 1) / 2
    # Weights are per class draw; a burst draw yields ~mean_burst allocations.
    classes = [
        (a * (1 - j) / mean_burst, 0, G.GFP_ATOMIC, "misc", False, b),
        (a * j * 0.3 / mean_burst, 2, G.GFP_ATOMIC | _COMP, "misc", False, b),
        (a * j * 0.7 / mean_burst, 3, GFP_SKB_FRAG, "misc", False, b),
        ((1 - a) * 0.7, 0, G.GFP_KERNEL, "misc", True, 1),
        ((1 - a) * 0.3, 0, G.GFP_KERNEL, "misc", False, 1),
    ]
    return _pool_engine(rng, ops, total_pages, p, first, classes, short_window=512, long_free=0.5)


@_register(
    "cma",
    "periodic CMA ContigAlloc/ContigFree requests over movable anon/file churn",
    contig_every=5000,
    contig_min_order=4,
    contig_max_order=10,
    contig_align_max=8,
    contig_max_live=4,
)
def _cma(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """Device drivers (camera, video decode) calling cma_alloc() every
    ``contig_every`` ops for 2^k pages, k in [contig_min_order, contig_max_order],
    aligned to min(k, contig_align_max) (CONFIG_CMA_ALIGNMENT); at most
    ``contig_max_live`` held at once. The background is movable page cache and anon
    memory, the only kind allowed in CMA pageblocks, which cma_alloc must migrate."""
    kmin, kmax = p["contig_min_order"], p["contig_max_order"]
    if kmin > kmax or kmax > 20:
        raise SyntheticError("params: need contig_min_order <= contig_max_order <= 20")
    if p["contig_every"] < 1:
        raise SyntheticError("params.contig_every: must be >= 1")
    classes = [
        (45, 0, GFP_USER_PAGE, "anon", False, 1),
        (15, 0, GFP_USER_PAGE, "anon", True, 1),
        (2, 9, G.GFP_TRANSHUGE_LIGHT, "anon", False, 1),
        (20, 0, GFP_FILE, "file", True, 1),
        (10, 0, GFP_FILE, "file", False, 1),
        (5, 2, GFP_READAHEAD, "file", True, 1),
        (3, 3, GFP_READAHEAD, "file", False, 1),
    ]
    contig = (p["contig_every"], kmin, kmax, p["contig_align_max"], p["contig_max_live"])
    return _pool_engine(rng, ops, total_pages, p, first, classes, contig=contig)


@_register(
    "pagecache",
    "file folios with readahead orders 0..5 and LRU reclaim waves at a high mark",
    common=("cpus", "drain_at_end", "kernel"),
    readahead_max_order=5,
    high_mark=0.85,
    reclaim_fraction=0.3,
    truncate_ratio=0.1,
    sequential_ratio=0.6,
)
def _pagecache(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """Page cache filling with file folios (GFP_HIGHUSER_MOVABLE|__GFP_COMP; readahead
    adds __GFP_NORETRY|__GFP_NOWARN). Sequential reads ramp readahead folios up to
    ``readahead_max_order``; random reads (``1 - sequential_ratio``) use order 0. When
    live pages cross ``high_mark`` a reclaim wave frees the oldest ``reclaim_fraction``
    of cached pages (LRU order); between waves ``truncate_ratio`` of ops free the
    newest folios (deleted temporary files)."""
    max_order = p["readahead_max_order"]
    if max_order > 10:
        raise SyntheticError("params.readahead_max_order: must be <= 10")
    for key in ("high_mark", "reclaim_fraction", "truncate_ratio", "sequential_ratio"):
        if p[key] > 1.0:
            raise SyntheticError(f"params.{key}: must be <= 1.0, got {p[key]}")
    # A sequential stream ramps through every order once, then stays at the maximum.
    seq = [
        (float(max(1, max_order)) if i == max_order else 1.0, i, GFP_READAHEAD if i else GFP_FILE)
        for i in range(max_order + 1)
    ]
    seq_w = sum(c[0] for c in seq)
    s = p["sequential_ratio"]
    classes = [(w / seq_w * s, o, g, "file", False, 1) for w, o, g in seq]
    classes.append((1 - s, 0, GFP_FILE, "file", False, 1))
    return _pagecache_gen(rng, ops, total_pages, p, first, classes)


def _pagecache_gen(
    rng: random.Random, ops: int, total_pages: int, p: dict, first: int, classes: list[tuple]
) -> Iterator[Event]:
    getrandbits = rng.getrandbits
    rand = rng.random
    alloc, free, tags = Alloc, Free, _TAGS
    tshift = _tag_shift(first, ops)
    hmask = (1 << tshift) - 1
    # Table rows: (order, gfp, kind, pages, tag << tshift on CPU 0); cpu_tag[cpu] adds a
    # CPU's part of the tag.
    table = [(o, g, k, 1 << o, o << tshift) for (o, g, k, _lg, _b) in _class_table(classes)]
    cpus, drain = p["cpus"], p["drain_at_end"]
    multi_cpu = cpus > 1
    cpu_tag = [cpu << (tshift + 4) for cpu in range(cpus)]
    high = min(int(p["high_mark"] * total_pages), int(total_pages * 0.98))
    frac = p["reclaim_fraction"]
    trunc = int(p["truncate_ratio"] * (1 << 20)) << 12  # compared with a whole 32-bit draw
    lru: deque[int] = deque()
    popleft, pop, append = lru.popleft, lru.pop, lru.append
    live_pages = 0
    handle = first
    reclaim_left = 0  # pages still to reclaim in the current wave
    next_drain = 0 if drain else ops
    op = 0
    while op < ops:
        if op == next_drain:
            diff = ops - op - len(lru)
            if diff <= 0:
                break
            next_drain = op + max(1, diff // 2)
        stop = min(next_drain, ops)
        for _ in repeat(None, stop - op):
            if reclaim_left:
                entry = popleft()
            else:
                r = getrandbits(32)
                if r < trunc and lru:
                    entry = pop()
                else:
                    order, gfp, kind, pages, tag = table[r & 4095]
                    live_pages += pages
                    if multi_cpu:
                        cpu = int(rand() * cpus)
                        append(handle + tag + cpu_tag[cpu])
                        yield alloc(handle, order, gfp, kind, -1, cpu)
                    else:
                        append(handle + tag if tag else handle)
                        yield alloc(handle, order, gfp, kind)
                    handle += 1
                    if live_pages >= high:
                        reclaim_left = max(1, int(live_pages * frac))
                    continue
            if entry <= hmask:  # order 0 on CPU 0: the bare handle
                pages = 1
                ev = free(entry, 0)
            else:
                order, cpu, pages = tags[entry >> tshift]
                ev = free(entry & hmask, order, cpu)
            live_pages -= pages
            if reclaim_left:
                reclaim_left -= pages
                if reclaim_left < 0 or not lru:
                    reclaim_left = 0
            yield ev
        op = stop
    if drain:
        yield from _drain(list(lru), ops - op, tshift)


@_register(
    "fork-exec",
    "process groups (page tables, kernel stack, anon pages) that die together",
    occupancy=0.5,
    anon_mean=96,
    pgtable_mean=8,
    daemon_ratio=0.05,
    vmap_stack=False,
    thp_ratio=0.0,
)
def _fork_exec(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    """fork()+exec()+exit() of short processes: each process allocates a kernel stack
    (order 2 THREADINFO_GFP = GFP_KERNEL_ACCOUNT|__GFP_ZERO, or with ``vmap_stack`` 4
    order-0 vmalloc pages), page tables (order 0 GFP_PGTABLE_USER, kind pgtable) and
    anon pages (GFP_HIGHUSER_MOVABLE; ``thp_ratio`` of them order-9 THP), interleaved
    with up to 3 other processes being built; at exit all its pages are freed
    together. Exits favour recent processes (short lifetimes); ``daemon_ratio`` of
    processes are long-lived daemons."""
    if p["daemon_ratio"] > 1.0 or p["thp_ratio"] > 1.0:
        raise SyntheticError("params: daemon_ratio and thp_ratio must be <= 1.0")
    return _fork_exec_gen(rng, ops, total_pages, p, first)


def _fork_exec_gen(rng: random.Random, ops: int, total_pages: int, p: dict, first: int) -> Iterator[Event]:
    getrandbits = rng.getrandbits
    rand = rng.random
    alloc, free, tags = Alloc, Free, _TAGS
    tshift = _tag_shift(first, ops)
    hmask = (1 << tshift) - 1
    cpus, drain = p["cpus"], p["drain_at_end"]
    hard_cap = int(total_pages * 0.98)
    base = int(p["occupancy"] * total_pages)
    peak = int(p["wave_peak"] * total_pages)
    period, wlen = p["wave_period"], p["wave_len"]
    anon_mean, pt_mean = max(1, p["anon_mean"]), max(1, p["pgtable_mean"])
    daemon, thp, vstack = p["daemon_ratio"], p["thp_ratio"], p["vmap_stack"]
    # Below target, exits still take ~40 % of ops, so processes die young (16-bit fixed point).
    exit_thr = int(0.4 / (anon_mean + pt_mean + 1) * (1 << 16))
    # (order, gfp, kind) of a page table, an anon page, an anon THP and a kernel stack
    # chunk, and the same as todo rows of a process on each CPU: (order, gfp, kind,
    # pages, tag, cpu).
    stack = (0, GFP_VMALLOC | _ZERO, "vmalloc") if vstack else (2, GFP_STACK, "misc")
    kinds = ((0, GFP_PGTABLE, "pgtable"), (0, GFP_USER_PAGE, "anon"), (9, G.GFP_TRANSHUGE_LIGHT, "anon"), stack)
    by_cpu = [[(o, g, k, 1 << o, (cpu << 4 | o) << tshift, cpu) for o, g, k in kinds] for cpu in range(cpus)]
    n_stack = 4 if vstack else 1
    # Processes being built: (entries, todo popped from the end). ``pick`` maps the top 9
    # bits of a draw to one of them: picks[n][x] = x * n >> 9.
    building: list[tuple[list[int], list[tuple]]] = []
    picks = [[(x * n) >> 9 for x in range(512)] for n in range(5)]
    pick = picks[0]
    procs: list[list[int]] = []  # finished short-lived processes
    daemons: list[list[int]] = []
    dying: list[int] = []
    live_pages = 0
    handle = first
    target = base
    next_wave = 0
    next_drain = 0 if drain else ops
    op = 0
    while op < ops:
        if op == next_wave:
            target = min(_target(op, base, peak, period, wlen), hard_cap)
            next_wave += 1024
        if op == next_drain:
            # Every op allocates or frees one handle: live handles = allocs - frees.
            diff = ops - op - (2 * (handle - first) - op)
            if diff <= 0:
                break
            next_drain = op + max(1, diff // 2)
        stop = min(next_wave, next_drain, ops)
        for r in map(getrandbits, repeat(32, stop - op)):
            if (
                not dying
                and (procs or daemons)
                and ((live_pages >= target and not building) or r & 0xFFFF < exit_thr or live_pages >= hard_cap)
            ):
                pool = daemons if daemons and (not procs or rand() < daemon * 0.5) else procs
                n = len(pool)
                # Most exits are of recent, short-lived processes.
                i = n - 1 - int(rand() * (32 if n > 32 else n)) if pool is procs else int(rand() * n)
                last = pool.pop()
                if i < n - 1:
                    dying, pool[i] = pool[i], last
                else:
                    dying = last
            if dying and (not building or r & 0x10000):
                entry = dying.pop()
                if entry <= hmask:  # order 0 on CPU 0: the bare handle
                    live_pages -= 1
                    yield free(entry, 0)
                else:
                    order, cpu, pages = tags[entry >> tshift]
                    live_pages -= pages
                    yield free(entry & hmask, order, cpu)
                continue
            # A new process 1 time in 64 (bits 17-22 of the draw all zero).
            if not building or (not r & 0x7E0000 and len(building) < 4 and live_pages < target):
                cpu = int(rand() * cpus) if cpus > 1 else 0
                pgtable, anon, thp_cls, stack_chunk = by_cpu[cpu]
                n_anon = 1 + int(rand() * 2 * anon_mean)
                todo = [thp_cls if rand() < thp else anon for _ in range(n_anon)] if thp else [anon] * n_anon
                todo += [pgtable] * (1 + int(rand() * 2 * pt_mean))
                todo += [stack_chunk] * n_stack  # popped first: copy_process() allocates the stack first
                building.append(([], todo))
                pick = picks[len(building)]
            k = pick[r >> 23]
            entries, todo = building[k]
            order, gfp, kind, pages, tag, cpu = todo.pop()
            entries.append(handle + tag if tag else handle)
            live_pages += pages
            yield alloc(handle, order, gfp, kind, -1, cpu)
            handle += 1
            if not todo:
                building[k] = building[-1]
                building.pop()
                pick = picks[len(building)]
                (daemons if rand() < daemon else procs).append(entries)
        op = stop
    if drain:
        rest = dying + [e for b in building for e in b[0]]
        rest += [e for pr in procs + daemons for e in pr]
        yield from _drain(rest, ops - op, tshift)
