"""The shared stateful suite on every design, machine kind and kernel version."""

from __future__ import annotations

import importlib

import pytest
from stateful import make_allocator_machine

from memdesc.designs import DesignError, get_design

MACHINES = ["x86_64:64M", "x86_64:128M,movablecore=50%", "x86_64:128M,cma=32M", "i386:1G"]
# rule violations a design/policy is built to show (the thread's problems), not bugs
EXPECTED = {
    ("radix-deque", "borrow"): frozenset({"alloc_in_free_path"}),
    ("radix-deque", "self"): frozenset({"unmovable_meta_in_movable", "unmovable_meta_in_highmem",
                                         "unmovable_meta_in_cma", "unmovable_meta_in_isolated"}),
}
DESIGNS = [
    ("linked", {}),
    ("embedded", {}),
    ("buddy-desc", {}),
    ("buddy-desc", {"desc_fail_rate": 0.05}),
    ("radix-deque", {}),
    ("radix-deque", {"words": 1}),
    ("radix-deque", {"policy": "borrow"}),
    ("radix-deque", {"policy": "defer", "meta_fail_rate": 0.2}),
    ("radix-deque", {"policy": "movable-nodes"}),
    ("radix-deque", {"policy": "self"}),
]


def _available(design: str) -> bool:
    try:
        get_design(design)
        return True
    except (DesignError, ImportError, AttributeError):
        return False


def _cases():
    for design, opts in DESIGNS:
        for spec in MACHINES:
            for kernel in ("6.1", "6.19"):
                yield pytest.param(design, opts, spec, kernel, id=f"{design}-{opts}-{spec}-{kernel}")


@pytest.mark.parametrize("design,opts,spec,kernel", list(_cases()))
def test_stateful(design, opts, spec, kernel):
    if not _available(design):
        pytest.skip(f"design {design} not available")
    importlib.import_module("memdesc.mm.page_alloc")
    try:
        allowed = EXPECTED.get((design, opts.get("policy")), frozenset())
        tc = make_allocator_machine(spec, design, opts, kernel=kernel, pcp=kernel == "6.19" or "cma" in spec,
                                    max_examples=3, steps=40, allowed_violations=allowed)
        case = tc("runTest")
    except DesignError as e:  # e.g. a design that refuses 32-bit
        pytest.skip(str(e))
    try:
        case.runTest()
    except DesignError as e:
        pytest.skip(str(e))
