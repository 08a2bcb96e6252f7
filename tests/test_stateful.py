"""The shared stateful suite on every registered design variant, machine kind and kernel
version (tests/variants.py: picked up from the registry, no list to edit)."""

from __future__ import annotations

import pytest
from stateful import make_allocator_machine
from variants import expected, variants

from memdesc.designs import DesignError

MACHINES = ["x86_64:64M", "x86_64:128M,movablecore=50%", "x86_64:128M,cma=32M", "i386:1G"]


@pytest.mark.parametrize("kernel", ["6.1", "6.19"])
@pytest.mark.parametrize("spec", MACHINES)
@pytest.mark.parametrize("design,opts", variants())
def test_stateful(design, opts, spec, kernel):
    try:
        tc = make_allocator_machine(spec, design, opts, kernel=kernel, pcp=kernel == "6.19" or "cma" in spec,
                                    max_examples=3, steps=40, allowed_violations=expected(design, opts))
        case = tc("runTest")
        case.runTest()
    except DesignError as e:  # e.g. a design that refuses 32-bit
        pytest.skip(str(e))
