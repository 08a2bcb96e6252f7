"""The invariant checker: CONFIG_DEBUG_VM's counterpart, but O(pages) and complete.

:func:`check_allocator` walks every free list and pcp list once, builds a
:class:`CheckState` (arrays of free, allocated and pcp blocks), runs one function per
invariant family on it, then the design's own ``check``. Each failure is counted under
its family's kind in the :class:`CheckReport`:

* ``nr_free`` (check_free_lists): free_area[order].nr_free equals the list lengths;
* ``free_block`` (check_free_blocks): each free block head is order-aligned, inside its
  list's zone, on one list only, storing the order of its list;
* ``buddy_marker`` (check_buddy_markers): a pfn is marked as a free head exactly when it
  is on a list;
* ``pcp`` (check_pcp): per-CPU list entries have the pcp page state and their list's
  order and zone, appear once, and add up to pcp->count;
* ``state`` (check_page_states): every pfn is in exactly one state -- free (inside one
  free block), on a pcp list, allocated, allocator metadata, or reserved/hole;
* ``unmerged`` (check_unmerged): no two free buddies of equal order left unmerged where
  __free_one_page() would have merged them;
* ``counters`` (check_counters): NR_FREE_PAGES / NR_FREE_CMA_PAGES / nr_free_highatomic
  match the lists, watermarks are ordered;
* ``conservation`` (check_conservation): per zone free + pcp + allocated + metadata +
  reserved == present, every term counted from the blocks themselves;
* ``pageblock`` (check_pageblocks): CMA pageblocks exactly cover the CMA areas (or are
  isolated), the isolated-pageblock counts agree; 6.19: a free block's list type equals
  its pageblock type;
* ``alloc_in_free_path`` (check_free_path): allocations made while freeing;
* design-specific kinds added by ``Design.check``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from memdesc.mm.internal import AS_META, AS_ORDER_MASK, AS_PCP
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    list_id,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator

#: every family's kind, in the order the checker runs them
FAMILIES = ("nr_free", "free_block", "buddy_marker", "pcp", "state", "unmerged", "counters", "conservation",
            "pageblock", "alloc_in_free_path")


class InvariantViolation(AssertionError):
    """The model's state broke an invariant. ``report`` has the details."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class CheckReport:
    counts: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    max_messages: int = 20

    def add(self, kind: str, msg: str, n: int = 1) -> None:
        self.counts[kind] += n
        if len(self.messages) < self.max_messages:
            self.messages.append(f"[{kind}] {msg}")

    def more(self, kind: str, n: int) -> None:
        """Count ``n`` further violations of ``kind`` without a message each."""
        if n > 0:
            self.counts[kind] += n

    @property
    def ok(self) -> bool:
        return not self.counts

    def summary(self) -> str:
        if self.ok:
            return "no invariant violations"
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"invariant violations: {kinds}\n" + "\n".join(self.messages)


@dataclass
class CheckState:
    """What the checker gathered once, for every family and for ``Design.check``.

    Free blocks come from walking the design's lists (H heads, O orders, L list ids),
    allocated blocks (AH, AO, AM metadata flag, AS sizes) and pcp blocks (PH, PO, PS)
    from ``alloc_state``; ``pcp_pages`` counts the pcp lists' pages per zone."""

    n: int
    H: np.ndarray
    O: np.ndarray  # noqa: E741 - the checker's short names
    L: np.ndarray
    S: np.ndarray
    mt_of: np.ndarray
    zid_of_list: np.ndarray
    nr_free_walked: dict[tuple[int, int], int]
    alloc_state: np.ndarray
    zid: np.ndarray
    AH: np.ndarray
    AO: np.ndarray
    AM: np.ndarray
    AS: np.ndarray
    PH: np.ndarray
    PO: np.ndarray
    PS: np.ndarray
    pcp_pages: dict[int, int]
    buddy_mask: np.ndarray  # Design.numpy_state()
    buddy_order: np.ndarray


def gather(a: PageAllocator) -> CheckState:
    """Walk every free list; decode alloc_state into block arrays."""
    d = a.design
    n = a.nr_pfns
    heads: list[int] = []
    orders: list[int] = []
    lids: list[int] = []
    walked: dict[tuple[int, int], int] = {}
    for z in a.zones:
        for o in range(NR_PAGE_ORDERS):
            count = 0
            for mt in range(MIGRATE_TYPES):
                lid = list_id(z.zid, o, mt)
                for pfn in d.list_pfns(lid):
                    heads.append(pfn)
                    orders.append(o)
                    lids.append(lid)
                    count += 1
            walked[(z.zid, o)] = count
    H = np.array(heads, dtype=np.int64)
    O = np.array(orders, dtype=np.int64)  # noqa: E741
    L = np.array(lids, dtype=np.int64)
    ns = d.numpy_state()
    st = np.frombuffer(a.alloc_state, dtype=np.uint8)
    nz = np.nonzero(st)[0]
    stv = st[nz]
    is_pcp = (stv & AS_PCP) != 0
    AO = (stv[~is_pcp] & AS_ORDER_MASK).astype(np.int64) - 1
    PO = (stv[is_pcp] & AS_ORDER_MASK).astype(np.int64) - 1
    pcp_pages = {}
    for z in a.zones:
        total = 0
        for pcp in z.pcp:
            for pindex, lst in enumerate(pcp.lists):
                total += len(lst) << a.pindex_to_order(pindex)
        pcp_pages[z.zid] = total
    return CheckState(
        n=n, H=H, O=O, L=L, S=np.left_shift(1, O), mt_of=L % MIGRATE_TYPES,
        zid_of_list=L // (MIGRATE_TYPES * NR_PAGE_ORDERS), nr_free_walked=walked, alloc_state=st,
        zid=np.frombuffer(a.zid_of_pfn, dtype=np.uint8),
        AH=nz[~is_pcp].astype(np.int64), AO=AO, AM=(stv[~is_pcp] & AS_META) != 0,
        AS=np.left_shift(1, np.maximum(AO, 0)),
        PH=nz[is_pcp].astype(np.int64), PO=PO, PS=np.left_shift(1, np.maximum(PO, 0)), pcp_pages=pcp_pages,
        buddy_mask=ns["buddy_mask"][:n], buddy_order=ns["buddy_order"][:n])


def _first(r: CheckReport, kind: str, idx: np.ndarray, msg, limit: int = 5) -> None:
    """Report the first ``limit`` of ``idx`` with ``msg(i)``, count the rest."""
    for i in idx[:limit]:
        r.add(kind, msg(i))
    r.more(kind, len(idx) - limit)


def check_free_lists(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """nr_free: free_area[order].nr_free equals what the lists hold."""
    for z in a.zones:
        for o in range(NR_PAGE_ORDERS):
            count = s.nr_free_walked[(z.zid, o)]
            if count != z.nr_free[o]:
                r.add("nr_free", f"zone {z.nid}:{z.name} order {o}: nr_free {z.nr_free[o]} but lists hold {count}")


def check_free_blocks(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """free_block: aligned, inside the list's zone, on one list, storing its order."""
    H, O, S = s.H, s.O, s.S
    if not len(H):
        return
    _first(r, "free_block", np.nonzero(H & (S - 1))[0],
           lambda i: f"free block {H[i]:#x} of order {O[i]} is not aligned")
    if np.any(H + S > s.n) or np.any(H < 0):
        r.add("free_block", "free block outside the memmap")
    else:
        bad = np.nonzero((s.zid[H] != s.zid_of_list) | (s.zid[H + S - 1] != s.zid_of_list))[0]
        _first(r, "free_block", bad, lambda i: f"free block {H[i]:#x} order {O[i]} not inside the zone of its list")
    uniq, cnt = np.unique(H, return_counts=True)
    for pfn in uniq[cnt > 1][:5]:
        r.add("free_block", f"pfn {pfn:#x} is on more than one free list")
    if np.all((H >= 0) & (H < s.n)):
        stored = s.buddy_order[H].astype(np.int64)
        _first(r, "free_block", np.nonzero(stored != O)[0],
               lambda i: f"free head {H[i]:#x} stores order {stored[i]} but is on an order-{O[i]} list")


def check_buddy_markers(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """buddy_marker: the free-head markers are exactly the listed heads."""
    marked = np.nonzero(s.buddy_mask)[0]
    H = s.H
    if len(marked) == len(H) and (not len(H) or np.array_equal(np.sort(H), marked)):
        return
    for pfn in np.setdiff1d(marked, H)[:5]:
        r.add("buddy_marker", f"pfn {pfn:#x} is marked as a free head but is on no list")
    for pfn in np.setdiff1d(H, marked)[:5]:
        r.add("buddy_marker", f"pfn {pfn:#x} is on a free list but not marked as a free head")


def check_pcp(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """pcp: list entries have the pcp state of their list's order, belong to the zone,
    appear once; the lists add up to pcp->count; every pcp-state pfn is on a list."""
    st = s.alloc_state
    seen: set[int] = set()
    for z in a.zones:
        for cpu, pcp in enumerate(z.pcp):
            total = 0
            for pindex, lst in enumerate(pcp.lists):
                o = a.pindex_to_order(pindex)
                for pfn in lst:
                    total += 1 << o
                    if pfn in seen:
                        r.add("pcp", f"pfn {pfn:#x} is on two pcp lists")
                    seen.add(pfn)
                    if st[pfn] != (AS_PCP | (o + 1)):
                        r.add("pcp", f"pcp page {pfn:#x} (cpu {cpu}) has alloc_state {st[pfn]:#x}")
                    if s.zid[pfn] != z.zid:
                        r.add("pcp", f"pcp page {pfn:#x} of zone {s.zid[pfn]} on zone {z.zid}'s list")
            if total != pcp.count:
                r.add("pcp", f"zone {z.nid}:{z.name} cpu {cpu}: pcp count {pcp.count} but lists hold {total}")
    if len(seen) != len(s.PH):
        r.add("pcp", f"{len(s.PH)} pfns marked as pcp pages but {len(seen)} on pcp lists")


def check_page_states(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """state: every pfn in exactly one state (one difference array, one cumsum)."""
    n = s.n
    if np.any(s.AO < 0) or np.any(s.PO < 0):
        r.add("state", "alloc_state byte with order 0 field")
    _first(r, "state", np.nonzero(s.AH & (s.AS - 1))[0],
           lambda i: f"allocated block {s.AH[i]:#x} of order {s.AO[i]} is not aligned")
    starts = np.concatenate((s.H, s.AH, s.PH))
    ends = np.concatenate((s.H + s.S, s.AH + s.AS, s.PH + s.PS))
    if len(starts) and (ends.max() > n or starts.min() < 0):
        r.add("state", "a block extends beyond the memmap")
        keep = (starts >= 0) & (starts < n)
        starts, ends = starts[keep], np.minimum(ends[keep], n)
    diff = np.bincount(starts, minlength=n + 1)[: n + 1].astype(np.int32)
    diff -= np.bincount(ends, minlength=n + 1)[: n + 1].astype(np.int32)
    cov = np.cumsum(diff[:-1], dtype=np.int32)
    cov += ~a.present_mask | a.reserved_np
    bad = np.nonzero(cov != 1)[0]
    _first(r, "state", bad, lambda pfn: f"pfn {pfn:#x} is " + (
        "in no state (lost)" if cov[pfn] == 0 else f"in {cov[pfn]} states at once"))


def check_unmerged(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """unmerged: free buddies of equal order that __free_one_page() would have merged."""
    H, O, S = s.H, s.O, s.S
    if not len(H):
        return
    pbo = a.pageblock_order
    keys = H * 16 + O
    order_idx = np.argsort(keys)
    sk = keys[order_idx]
    cand = O < NR_PAGE_ORDERS - 1
    B = H ^ S
    bkeys = B * 16 + O
    pos = np.minimum(np.searchsorted(sk, bkeys), len(sk) - 1)
    hit = cand & (sk[pos] == bkeys)
    for i in np.nonzero(hit)[0]:
        j = order_idx[pos[i]]
        if s.zid_of_list[i] != s.zid_of_list[j]:
            continue
        if O[i] >= pbo:
            m1 = a.pb_mt[H[i] >> pbo]
            m2 = a.pb_mt[B[i] >> pbo]
            if m1 != m2 and (m1 >= MIGRATE_PCPTYPES or m2 >= MIGRATE_PCPTYPES):
                continue
        if H[i] < B[i]:
            r.add("unmerged", f"free buddies {H[i]:#x} and {B[i]:#x} of order {O[i]} were not merged")


def check_counters(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """counters: the free-page counters of each zone match its lists."""
    for z in a.zones:
        sel = s.zid_of_list == z.zid
        pages = s.S[sel]
        mts = s.mt_of[sel]
        counted = int(pages[mts != MIGRATE_ISOLATE].sum())
        cma = int(pages[mts == MIGRATE_CMA].sum())
        ha = int(pages[mts == MIGRATE_HIGHATOMIC].sum())
        if counted != z.free_pages:
            r.add("counters", f"zone {z.nid}:{z.name}: NR_FREE_PAGES {z.free_pages} but lists hold {counted}")
        if cma != z.nr_free_cma:
            r.add("counters", f"zone {z.nid}:{z.name}: NR_FREE_CMA_PAGES {z.nr_free_cma} but CMA lists hold {cma}")
        if ha != z.nr_free_highatomic:
            r.add("counters", f"zone {z.nid}:{z.name}: nr_free_highatomic {z.nr_free_highatomic} but lists hold {ha}")
        if not z.watermark[0] <= z.watermark[1] <= z.watermark[2]:
            r.add("counters", f"zone {z.name}: watermarks not ordered {z.watermark}")


def check_conservation(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """conservation: free + pcp + allocated + metadata + reserved == present, per zone."""
    azid = s.zid[s.AH] if len(s.AH) else np.zeros(0, dtype=np.uint8)
    for z in a.zones:
        free_total = int(s.S[s.zid_of_list == z.zid].sum())
        asel = azid == z.zid
        alloc_pages = int(s.AS[asel & ~s.AM].sum())
        meta_pages = int(s.AS[asel & s.AM].sum())
        pcp_pages = s.pcp_pages[z.zid]
        total = free_total + pcp_pages + alloc_pages + meta_pages + z.reserved
        if total != z.present:
            r.add("conservation", f"zone {z.nid}:{z.name}: free {free_total} + pcp {pcp_pages} + allocated "
                  f"{alloc_pages} + metadata {meta_pages} + reserved {z.reserved} = {total} != present {z.present}")


def check_pageblocks(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """pageblock: CMA pageblocks cover the CMA areas, isolation counts agree, free blocks
    sit on their pageblock's lists (6.19; 6.1 only for CMA and isolated pageblocks)."""
    pbo = a.pageblock_order
    pb = np.frombuffer(a.pb_mt, dtype=np.uint8)
    want_cma = np.zeros(len(pb), dtype=bool)
    for st, e in a.machine.cma_areas:
        want_cma[st >> pbo:e >> pbo] = True
    saved = np.frombuffer(a.pb_saved, dtype=np.uint8)
    eff_cma = (pb == MIGRATE_CMA) | ((pb == MIGRATE_ISOLATE) & (saved == MIGRATE_CMA))
    for b in np.nonzero(eff_cma != want_cma)[0][:5]:
        r.add("pageblock", f"pageblock at pfn {b << pbo:#x}: CMA type {pb[b]} does not match the CMA areas")
    n_iso = int((pb == MIGRATE_ISOLATE).sum())
    counted = sum(z.nr_isolate_pageblock for z in a.zones)
    if n_iso != counted:
        r.add("pageblock", f"{n_iso} isolated pageblocks but zones count {counted}")
    H, O, mt_of = s.H, s.O, s.mt_of
    if not len(H) or np.any(H < 0) or np.any(H >= s.n):
        return
    blk_mt = pb[H >> pbo]
    if a.k61:
        # 6.1: only the non-mergeable types must match (CMA, ISOLATE) in blocks of those types
        bad = np.nonzero(((blk_mt == MIGRATE_CMA) | (blk_mt == MIGRATE_ISOLATE)) & (mt_of != blk_mt) & (O < pbo))[0]
    else:
        bad = np.nonzero((mt_of != blk_mt) & (O <= pbo))[0]
    _first(r, "pageblock", bad,
           lambda i: f"free block {H[i]:#x} order {O[i]} on a type-{mt_of[i]} list in a type-{blk_mt[i]} pageblock")


def check_free_path(a: PageAllocator, s: CheckState, r: CheckReport) -> None:
    """alloc_in_free_path: freeing memory must never allocate memory."""
    if a.allocs_in_free_path:
        r.add("alloc_in_free_path", f"{a.allocs_in_free_path} allocations made inside the free path",
              a.allocs_in_free_path)


CHECKS = (check_free_lists, check_free_blocks, check_buddy_markers, check_pcp, check_page_states, check_unmerged,
          check_counters, check_conservation, check_pageblocks, check_free_path)


def check_allocator(a: PageAllocator, raise_on_error: bool = True) -> CheckReport:
    """Every invariant family, then the design's own checks."""
    r = CheckReport()
    s = gather(a)
    for fn in CHECKS:
        fn(a, s, r)
    a.design.check(r, s)
    if raise_on_error and not r.ok:
        raise InvariantViolation(r)
    return r
