"""Exhaustive invariant checker, like CONFIG_DEBUG_VM but O(pages) and complete.

Checked (each failure is counted under a kind in the report):

* ``state``: every pfn is in exactly one state -- free (inside exactly one free
  block), on a pcp list, allocated, allocator metadata, or reserved/hole;
* ``free_block``: each free block head is order-aligned, inside one zone, marked
  PageBuddy with its order, on exactly one list of its own zone and order;
* ``buddy_marker``: no pfn is marked as a free head without being on a list;
* ``nr_free``: free_area[order].nr_free equals the list lengths;
* ``counters``: NR_FREE_PAGES / NR_FREE_CMA_PAGES / nr_free_highatomic match the lists;
* ``unmerged``: no two free buddies of equal order left unmerged where
  __free_one_page() would have merged them;
* ``pcp``: per-CPU list entries, counts and their orders;
* ``pageblock``: CMA pageblocks exactly cover the CMA areas (or are isolated);
  6.19: a free block's list type equals its pageblock type;
* ``conservation``: per zone free + pcp + allocated + metadata + reserved == present;
* ``alloc_in_free_path``: allocations made while freeing;
* design-specific kinds added by ``Design.check``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from memdesc.designs.base import list_id
from memdesc.mm.mmzone import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
)

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator


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

    @property
    def ok(self) -> bool:
        return not self.counts

    def summary(self) -> str:
        if self.ok:
            return "no invariant violations"
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"invariant violations: {kinds}\n" + "\n".join(self.messages)


def check_allocator(a: PageAllocator, raise_on_error: bool = True) -> CheckReport:
    from memdesc.mm.page_alloc import AS_META, AS_ORDER_MASK, AS_PCP

    r = CheckReport()
    d = a.design
    n = a.nr_pfns
    pbo = a.pageblock_order

    # -- walk every free list ----------------------------------------------------------
    heads: list[int] = []
    orders: list[int] = []
    lids: list[int] = []
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
            if count != z.nr_free[o]:
                r.add("nr_free", f"zone {z.nid}:{z.name} order {o}: nr_free {z.nr_free[o]} but lists hold {count}")
    H = np.array(heads, dtype=np.int64)
    O = np.array(orders, dtype=np.int64)
    L = np.array(lids, dtype=np.int64)
    S = np.left_shift(1, O)
    zid_arr = np.frombuffer(a.zid_of_pfn, dtype=np.uint8)
    if len(H):
        mt_of = L % MIGRATE_TYPES
        zid_of_list = L // (MIGRATE_TYPES * NR_PAGE_ORDERS)
        bad = np.nonzero(H & (S - 1))[0]
        for i in bad[:5]:
            r.add("free_block", f"free block {H[i]:#x} of order {O[i]} is not aligned")
        if len(bad) > 5:
            r.counts["free_block"] += len(bad) - 5
        if np.any(H + S > n) or np.any(H < 0):
            r.add("free_block", "free block outside the memmap")
        else:
            zh = zid_arr[H]
            zt = zid_arr[H + S - 1]
            bad = np.nonzero((zh != zid_of_list) | (zt != zid_of_list))[0]
            for i in bad[:5]:
                r.add("free_block", f"free block {H[i]:#x} order {O[i]} not inside the zone of its list")
            if len(bad) > 5:
                r.counts["free_block"] += len(bad) - 5
        # duplicates (a block on two lists)
        uniq, cnt = np.unique(H, return_counts=True)
        for pfn in uniq[cnt > 1][:5]:
            r.add("free_block", f"pfn {pfn:#x} is on more than one free list")
    else:
        mt_of = np.zeros(0, dtype=np.int64)

    # -- buddy markers agree with the lists --------------------------------------------
    ns = d.numpy_state()
    bm = ns["buddy_mask"][:n]
    marked = np.nonzero(bm)[0]
    if len(marked) != len(H) or (len(H) and not np.array_equal(np.sort(H), marked)):
        extra = np.setdiff1d(marked, H)
        missing = np.setdiff1d(H, marked)
        for pfn in extra[:5]:
            r.add("buddy_marker", f"pfn {pfn:#x} is marked as a free head but is on no list")
        for pfn in missing[:5]:
            r.add("buddy_marker", f"pfn {pfn:#x} is on a free list but not marked as a free head")
    if len(H):
        bo = ns["buddy_order"][:n][H].astype(np.int64)
        bad = np.nonzero(bo != O)[0]
        for i in bad[:5]:
            r.add("free_block", f"free head {H[i]:#x} stores order {bo[i]} but is on an order-{O[i]} list")

    # -- allocated blocks and pcp pages ------------------------------------------------
    st = np.frombuffer(a.alloc_state, dtype=np.uint8)
    nz = np.nonzero(st)[0]
    stv = st[nz]
    is_pcp = (stv & AS_PCP) != 0
    AH = nz[~is_pcp].astype(np.int64)
    AO = (stv[~is_pcp] & AS_ORDER_MASK).astype(np.int64) - 1
    AM = (stv[~is_pcp] & AS_META) != 0
    PH = nz[is_pcp].astype(np.int64)
    PO = (stv[is_pcp] & AS_ORDER_MASK).astype(np.int64) - 1
    if np.any(AO < 0) or np.any(PO < 0):
        r.add("state", "alloc_state byte with order 0 field")
    AS = np.left_shift(1, np.maximum(AO, 0))
    PS = np.left_shift(1, np.maximum(PO, 0))
    bad = np.nonzero(AH & (AS - 1))[0]
    for i in bad[:5]:
        r.add("state", f"allocated block {AH[i]:#x} of order {AO[i]} is not aligned")

    # pcp lists agree with alloc_state
    pcp_seen = set()
    for z in a.zones:
        for cpu, pcp in enumerate(z.pcp):
            total = 0
            for pindex, lst in enumerate(pcp.lists):
                o = a._pindex_order(pindex)
                for pfn in lst:
                    total += 1 << o
                    if pfn in pcp_seen:
                        r.add("pcp", f"pfn {pfn:#x} is on two pcp lists")
                    pcp_seen.add(pfn)
                    if st[pfn] != (AS_PCP | (o + 1)):
                        r.add("pcp", f"pcp page {pfn:#x} (cpu {cpu}) has alloc_state {st[pfn]:#x}")
                    if zid_arr[pfn] != z.zid:
                        r.add("pcp", f"pcp page {pfn:#x} of zone {zid_arr[pfn]} on zone {z.zid}'s list")
            if total != pcp.count:
                r.add("pcp", f"zone {z.nid}:{z.name} cpu {cpu}: pcp count {pcp.count} but lists hold {total}")
    if len(pcp_seen) != len(PH):
        r.add("pcp", f"{len(PH)} pfns marked as pcp pages but {len(pcp_seen)} on pcp lists")

    # -- every pfn in exactly one state (one difference array, one cumsum) ------------
    starts = np.concatenate((H, AH, PH))
    ends = np.concatenate((H + S, AH + AS, PH + PS))
    if len(starts) and (ends.max() > n or starts.min() < 0):
        r.add("state", "a block extends beyond the memmap")
        ends = np.minimum(ends, n)
    diff = np.bincount(starts, minlength=n + 1)[: n + 1].astype(np.int32)
    diff -= np.bincount(ends, minlength=n + 1)[: n + 1].astype(np.int32)
    cov = np.cumsum(diff[:-1], dtype=np.int32)
    cov += ~a.present_mask | a.reserved_np
    bad = np.nonzero(cov != 1)[0]
    if len(bad):
        for pfn in bad[:5]:
            what = "in no state (lost)" if cov[pfn] == 0 else f"in {cov[pfn]} states at once"
            r.add("state", f"pfn {pfn:#x} is {what}")
        if len(bad) > 5:
            r.counts["state"] += len(bad) - 5

    # -- unmerged buddies ------------------------------------------------------------------
    if len(H):
        keys = H * 16 + O
        order_idx = np.argsort(keys)
        sk = keys[order_idx]
        cand = O < NR_PAGE_ORDERS - 1
        B = H ^ S
        bkeys = B * 16 + O
        pos = np.searchsorted(sk, bkeys)
        pos = np.minimum(pos, len(sk) - 1)
        hit = cand & (sk[pos] == bkeys)
        for i in np.nonzero(hit)[0]:
            j = order_idx[pos[i]]
            if zid_of_list[i] != zid_of_list[j]:
                continue
            if O[i] >= pbo:
                m1 = a.pb_mt[H[i] >> pbo]
                m2 = a.pb_mt[B[i] >> pbo]
                if m1 != m2 and (m1 >= MIGRATE_PCPTYPES or m2 >= MIGRATE_PCPTYPES):
                    continue
            if H[i] < B[i]:
                r.add("unmerged", f"free buddies {H[i]:#x} and {B[i]:#x} of order {O[i]} were not merged")

    # -- counters and conservation ----------------------------------------------------------
    for z in a.zones:
        sel = zid_of_list == z.zid if len(H) else np.zeros(0, dtype=bool)
        pages = S[sel] if len(H) else np.zeros(0, dtype=np.int64)
        mts = mt_of[sel] if len(H) else np.zeros(0, dtype=np.int64)
        free_total = int(pages.sum())
        free_counted = int(pages[mts != MIGRATE_ISOLATE].sum())
        cma = int(pages[mts == MIGRATE_CMA].sum())
        ha = int(pages[mts == MIGRATE_HIGHATOMIC].sum())
        if free_counted != z.free_pages:
            r.add("counters", f"zone {z.nid}:{z.name}: NR_FREE_PAGES {z.free_pages} but lists hold {free_counted}")
        if cma != z.nr_free_cma:
            r.add("counters", f"zone {z.nid}:{z.name}: NR_FREE_CMA_PAGES {z.nr_free_cma} but CMA lists hold {cma}")
        if ha != z.nr_free_highatomic:
            r.add("counters", f"zone {z.nid}:{z.name}: nr_free_highatomic {z.nr_free_highatomic} but lists hold {ha}")
        asel = zid_arr[AH] == z.zid if len(AH) else np.zeros(0, dtype=bool)
        alloc_pages = int(AS[asel & ~AM].sum()) if len(AH) else 0
        meta_pages = int(AS[asel & AM].sum()) if len(AH) else 0
        pcp_pages = sum(p.count for p in z.pcp)
        total = free_total + pcp_pages + alloc_pages + meta_pages + z.reserved
        if total != z.present:
            r.add("conservation", f"zone {z.nid}:{z.name}: free {free_total} + pcp {pcp_pages} + allocated "
                  f"{alloc_pages} + metadata {meta_pages} + reserved {z.reserved} = {total} != present {z.present}")
        if not z.watermark[0] <= z.watermark[1] <= z.watermark[2]:
            r.add("counters", f"zone {z.name}: watermarks not ordered {z.watermark}")

    # -- pageblocks ---------------------------------------------------------------------------
    pb = np.frombuffer(a.pb_mt, dtype=np.uint8)
    want_cma = np.zeros(len(pb), dtype=bool)
    for s, e in a.machine.cma_areas:
        want_cma[s >> pbo:e >> pbo] = True
    is_cma = pb == MIGRATE_CMA
    saved = np.frombuffer(a.pb_saved, dtype=np.uint8)
    eff_cma = is_cma | ((pb == MIGRATE_ISOLATE) & (saved == MIGRATE_CMA))
    bad = np.nonzero(eff_cma != want_cma)[0]
    for b in bad[:5]:
        r.add("pageblock", f"pageblock at pfn {b << pbo:#x}: CMA type {pb[b]} does not match the CMA areas")
    n_iso = int((pb == MIGRATE_ISOLATE).sum())
    if n_iso != sum(z.nr_isolate_pageblock for z in a.zones):
        r.add("pageblock", f"{n_iso} isolated pageblocks but zones count "
              f"{sum(z.nr_isolate_pageblock for z in a.zones)}")
    if len(H):
        blk_mt = pb[H >> pbo]
        if a.k61:
            # 6.1: only the non-mergeable types must match (CMA, ISOLATE) in blocks of those types
            bad = np.nonzero(((blk_mt == MIGRATE_CMA) | (blk_mt == MIGRATE_ISOLATE)) & (mt_of != blk_mt)
                             & (O < pbo))[0]
        else:
            bad = np.nonzero((mt_of != blk_mt) & (O <= pbo))[0]
        for i in bad[:5]:
            r.add("pageblock", f"free block {H[i]:#x} order {O[i]} on a type-{mt_of[i]} list in a "
                  f"type-{blk_mt[i]} pageblock")
        if len(bad) > 5:
            r.counts["pageblock"] += len(bad) - 5

    if a.allocs_in_free_path:
        r.add("alloc_in_free_path", f"{a.allocs_in_free_path} allocations made inside the free path",
              a.allocs_in_free_path)
    d.check(r)
    if raise_on_error and not r.ok:
        raise InvariantViolation(r)
    return r
