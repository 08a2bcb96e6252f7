"""Shared hypothesis stateful suite: random allocations, frees and bad calls with
the invariant checker after every step. Reused by every design (see
tests/test_stateful.py): ``make_allocator_machine(spec, design, ...)`` returns a
TestCase class."""

from __future__ import annotations

import hashlib
from array import array

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine
from memdesc.mm import gfp as G
from memdesc.mm.internal import AS_PCP, BadCall
from memdesc.mm.page_alloc import PageAllocator

GFPS = [
    G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE"), G.GFP_ATOMIC,
    G.GFP_NOWAIT, G.GFP_TRANSHUGE_LIGHT, G.GFP_KERNEL_ACCOUNT, G.GFP_DMA32 | G.GFP_KERNEL, G.GFP_USER,
    G.GFP_HIGHUSER, G.GFP_NOIO, G.GFP_NOFS,
]
GFPS_61 = [G.GFP_ATOMIC_61 if g == G.GFP_ATOMIC else G.GFP_NOWAIT_61 if g == G.GFP_NOWAIT else g for g in GFPS]


def _feed(h, obj) -> None:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        h.update(bytes(obj))
    elif isinstance(obj, array):
        h.update(obj.tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(obj.tobytes())
    else:
        h.update(repr(obj).encode())


def fingerprint(a: PageAllocator) -> str:
    """A digest of all allocator state a bad call must not change: the core's page state,
    pageblocks, zone counters and pcp lists, and everything the design declares
    (Design.fingerprint_state)."""
    h = hashlib.sha1()
    for obj in (a.alloc_state, a.pb_mt, a.pb_saved):
        _feed(h, obj)
    for z in a.zones:
        _feed(h, (z.free_pages, z.nr_free, z.nr_free_cma, z.nr_free_highatomic, z.nr_reserved_highatomic,
                  z.watermark_boost, [(p.count, p.free_factor, [list(lst) for lst in p.lists]) for p in z.pcp]))
    for obj in a.design.fingerprint_state():
        _feed(h, obj)
    return h.hexdigest()


def make_allocator_machine(spec: str, design: str, design_options: dict | None = None, kernel: str = "6.19",
                           pcp: bool = True, max_examples: int = 12, steps: int = 60,
                           allowed_violations: frozenset[str] = frozenset()):
    """``allowed_violations``: rule-violation kinds a policy is expected to
    produce (e.g. radix-deque ``borrow`` allocates on the free path)."""
    gfps = GFPS_61 if kernel == "6.1" else GFPS

    class AllocatorMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.a = new_allocator(parse_machine(spec), design, kernel=kernel, pcp=pcp,
                                   design_options=dict(design_options or {}))
            self.live: list[tuple[int, int]] = []
            self.freed: list[tuple[int, int]] = []

        @rule(g=st.sampled_from(gfps), order=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 9, 10]),
              cpu=st.integers(0, 1), n=st.integers(1, 40))
        def alloc(self, g: int, order: int, cpu: int, n: int) -> None:
            for _ in range(n):
                pfn = self.a.alloc_pages(g, order, cpu=cpu)
                if pfn >= 0:
                    assert pfn % (1 << order) == 0
                    self.live.append((pfn, order))

        @precondition(lambda self: self.live)
        @rule(data=st.data(), n=st.integers(1, 40), cpu=st.integers(0, 1))
        def free(self, data: st.DataObject, n: int, cpu: int) -> None:
            for _ in range(min(n, len(self.live))):
                i = data.draw(st.integers(0, len(self.live) - 1))
                pfn, order = self.live.pop(i)
                self.a.free_pages(pfn, order, cpu=cpu)
                self.freed.append((pfn, order))

        @precondition(lambda self: self.freed)
        @rule(data=st.data())
        def double_free(self, data: st.DataObject) -> None:
            pfn, order = data.draw(st.sampled_from(self.freed))
            if self._allocated(pfn):  # reused since, by the workload or by design metadata
                return
            self._bad(lambda: self.a.free_pages(pfn, order))

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def wrong_order(self, data: st.DataObject) -> None:
            pfn, order = data.draw(st.sampled_from(self.live))
            self._bad(lambda: self.a.free_pages(pfn, (order + 1) % 11))

        @rule(pfn=st.integers(-5, 1 << 40))
        def free_random_pfn(self, pfn: int) -> None:
            if self._allocated(pfn):
                return
            self._bad(lambda: self.a.free_pages(pfn, 0))

        @rule(order=st.sampled_from([-1, 11, 12, 64]))
        def bad_order(self, order: int) -> None:
            self._bad(lambda: self.a.alloc_pages(G.GFP_KERNEL, order))

        @rule(g=st.sampled_from([G.GFP_DMA | G.GFP_DMA32, getattr(G, "__GFP_MOVABLE") | getattr(G, "__GFP_RECLAIMABLE"),
                                 getattr(G, "__GFP_HIGHMEM") | getattr(G, "__GFP_DMA")]))
        def contradictory_gfp(self, g: int) -> None:
            self._bad(lambda: self.a.alloc_pages(g, 0))

        def _allocated(self, pfn: int) -> bool:
            a = self.a
            return 0 <= pfn < a.nr_pfns and bool(a.alloc_state[pfn]) and not a.alloc_state[pfn] & AS_PCP

        def _bad(self, call) -> None:
            before = fingerprint(self.a)
            try:
                call()
            except BadCall:
                pass
            else:
                raise AssertionError("bad call accepted")
            assert fingerprint(self.a) == before, "a rejected call changed state"

        @invariant()
        def invariants_hold(self) -> None:
            rep = self.a.check(raise_on_error=False)
            unexpected = {k: v for k, v in rep.counts.items() if k not in allowed_violations}
            assert not unexpected, rep.summary()

    AllocatorMachine.TestCase.settings = settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], derandomize=True)
    return AllocatorMachine.TestCase


def random_workload(a: PageAllocator, n: int, seed: int = 1, check_every: int = 0,
                    after_step=None) -> list[int]:
    """Random alloc/free mix with kinds; returns the pfn (or -1) of every allocation
    in order (differential tests compare these sequences between designs).
    ``after_step(a)`` runs after every operation (design-specific invariants)."""
    import random

    rng = random.Random(seed)
    gfps = [G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | getattr(G, "__GFP_RECLAIMABLE"),
            G.GFP_TRANSHUGE, G.GFP_ATOMIC_61 if a.k61 else G.GFP_ATOMIC, G.GFP_DMA32 | G.GFP_KERNEL]
    kinds = [None, "anon", "file", "slab", "pgtable", "vmalloc", "misc"]
    live: list[tuple[int, int]] = []
    seq = []
    for i in range(n):
        if live and rng.random() < 0.47:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            a.free_pages(*live.pop())
        else:
            o = rng.choice([0] * 12 + [1, 2, 3, 4, 9])
            pfn = a.alloc_pages(rng.choice(gfps), o, kind=rng.choice(kinds), cpu=rng.randrange(a.nr_cpus))
            seq.append(pfn)
            if pfn >= 0:
                live.append((pfn, o))
        if after_step is not None:
            after_step(a)
        if check_every and i % check_every == 0:
            a.check()
    return seq
