"""`linked-pcp`: today's struct page, with the per-CPU lists kept where the kernel keeps
them -- an example of a design that uses the pcp and operation hooks.

In the kernel ``pcp_list`` is a ``list_head`` in the same union of struct page as
``buddy_list`` (include/linux/mm_types.h), so a page on a pcp list is linked through the
same two words as a free buddy block; the list head itself is in struct per_cpu_pages.
``linked`` keeps its pcp lists in Python deques (the contract's default, free of cost);
this design stores their links in struct page words 1 and 2 and counts, per allocator
operation (``op_begin``/``op_end``), how many pcp list operations each kind did -- the
start of a memory-traffic count.

It places every block exactly where ``linked`` does (the differential test checks it).
Use it without touching the package (one registry line, in the environment)::

    export MEMDESC_DESIGNS=linked-pcp=examples/designs/linked_pcp.py:LinkedPcpDesign
    memdesc compare --designs linked,linked-pcp
    python -m pytest -k linked-pcp
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from memdesc.designs.linked import F_NEXT, F_PREV, LIST_POISON, LinkedDesign, W
from memdesc.mm.internal import Op

NIL = (1 << 64) - 1  # end of a pcp list (the model's stand-in for the list head)


class MemmapPcpList:
    """``pcp->lists[pindex]``: head and tail here (struct per_cpu_pages), links in the
    pages' pcp_list words. Implements the PcpList protocol of designs/base.py."""

    __slots__ = ("design", "m", "head", "tail", "n")

    def __init__(self, design: LinkedPcpDesign) -> None:
        self.design = design
        self.m = design.m
        self.head = NIL
        self.tail = NIL
        self.n = 0

    def appendleft(self, pfn: int) -> None:
        m = self.m
        m[pfn * W + F_NEXT] = self.head
        m[pfn * W + F_PREV] = NIL
        if self.head != NIL:
            m[self.head * W + F_PREV] = pfn
        else:
            self.tail = pfn
        self.head = pfn
        self.n += 1
        self.design.count("add")

    def append(self, pfn: int) -> None:
        m = self.m
        m[pfn * W + F_PREV] = self.tail
        m[pfn * W + F_NEXT] = NIL
        if self.tail != NIL:
            m[self.tail * W + F_NEXT] = pfn
        else:
            self.head = pfn
        self.tail = pfn
        self.n += 1
        self.design.count("add_tail")

    def _unlink(self, pfn: int) -> None:
        m = self.m
        nxt = m[pfn * W + F_NEXT]
        prv = m[pfn * W + F_PREV]
        if prv != NIL:
            m[prv * W + F_NEXT] = nxt
        else:
            self.head = nxt
        if nxt != NIL:
            m[nxt * W + F_PREV] = prv
        else:
            self.tail = prv
        m[pfn * W + F_NEXT] = LIST_POISON
        m[pfn * W + F_PREV] = LIST_POISON
        self.n -= 1

    def popleft(self) -> int:
        if self.head == NIL:
            raise IndexError("pop from an empty pcp list")
        pfn = self.head
        self._unlink(pfn)
        self.design.count("del_head")
        return pfn

    def pop(self) -> int:
        if self.tail == NIL:
            raise IndexError("pop from an empty pcp list")
        pfn = self.tail
        self._unlink(pfn)
        self.design.count("del_tail")
        return pfn

    def remove(self, pfn: int) -> None:
        if pfn not in self:
            raise ValueError(f"pfn {pfn:#x} is not on this pcp list")
        self._unlink(pfn)
        self.design.count("del")

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self) -> Iterator[int]:
        p = self.head
        seen = 0
        while p != NIL:
            yield p
            seen += 1
            if seen > self.n:
                raise RuntimeError("pcp list is corrupt (cycle)")
            p = self.m[p * W + F_NEXT]

    def __contains__(self, pfn: object) -> bool:
        return any(p == pfn for p in self)


class LinkedPcpDesign(LinkedDesign):
    """linked, with pcp links in struct page and pcp list operations counted per
    allocator operation kind."""

    name = "linked-pcp"
    linked_equivalent_options: dict[str, Any] = {}

    def __init__(self, alloc: Any, **options: Any) -> None:
        super().__init__(alloc, **options)
        self.ops: list[int] = []  # the operations begun and not yet ended
        self.pcp_ops: Counter = Counter()  # (operation, list operation) -> count
        self.pcp_lists: list[MemmapPcpList] = []

    def new_pcp_list(self, zid: int, cpu: int, pindex: int) -> MemmapPcpList:
        lst = MemmapPcpList(self)
        self.pcp_lists.append(lst)
        return lst

    def op_begin(self, op: int, zone_locked: bool, free_path: bool) -> None:
        self.ops.append(op)

    def op_end(self, op: int) -> None:
        self.ops.pop()

    def count(self, what: str) -> None:
        where = Op(self.ops[-1]).name.lower() if self.ops else "none"
        self.pcp_ops[f"{where}:{what}"] += 1

    def metadata(self) -> dict[str, Any]:
        md = super().metadata()
        md["pcp_list_ops"] = dict(sorted(self.pcp_ops.items()))
        return md

    def fingerprint_state(self) -> list[Any]:
        return [*super().fingerprint_state(), [(p.head, p.tail, p.n) for p in self.pcp_lists]]
