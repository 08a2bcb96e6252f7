"""Differential tests between designs: under its ``linked_equivalent_options`` (metadata
kept off the modelled memory) every registered design must place every block exactly
where ``linked`` places it, on the same event stream -- the free-list structure may
differ, the allocator's decisions may not. The reference is linked with the design's
struct page size, so both boot identical zones."""

from __future__ import annotations

import pytest
from stateful import random_workload
from variants import variant_id

from memdesc.designs import design_names, get_design
from memdesc.designs.linked import LinkedDesign
from memdesc.driver.boot import new_allocator
from memdesc.machine import parse_machine

SPECS = ["x86_64:1G", "x86_64:1G,movablecore=25%", "x86_64:1G,cma=64M", "i386:2G"]


def _comparable() -> list:
    out = []
    for name in design_names():
        opts = get_design(name).linked_equivalent_options
        if opts is not None and name != "linked":
            out.append(pytest.param(name, opts, id=variant_id(name, opts)))
    return out


@pytest.mark.parametrize("pcp", [True, False])
@pytest.mark.parametrize("kernel", ["6.1", "6.19"])
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("design,opts", _comparable())
def test_same_placement_as_linked(design, opts, spec, kernel, pcp):
    m = parse_machine(spec)
    a = new_allocator(m, design, kernel=kernel, pcp=pcp, design_options=dict(opts))

    class SameMemmapLinked(LinkedDesign):
        struct_page_bytes = a.design.struct_page_bytes

    ref = new_allocator(m, SameMemmapLinked, kernel=kernel, pcp=pcp)
    assert [z.managed for z in a.zones] == [z.managed for z in ref.zones]
    got = random_workload(a, 3000, seed=11)
    want = random_workload(ref, 3000, seed=11)
    assert got == want
    a.check()
    for z, rz in zip(a.zones, ref.zones, strict=True):
        assert z.nr_free == rz.nr_free and z.free_pages == rz.free_pages
