"""Boot a machine with a design named by the registry: the lookup the core leaves to
its callers (the CLI, the analyses, the tests)."""

from __future__ import annotations

from typing import Any

from memdesc.designs import get_design
from memdesc.designs.base import Design
from memdesc.machine import Machine, parse_machine
from memdesc.mm.page_alloc import PageAllocator


def new_allocator(machine: Machine | str, design: str | type[Design] = "linked", *, kernel: str = "6.19",
                  pcp: bool = True, design_options: dict[str, Any] | None = None, thp: bool = True
                  ) -> PageAllocator:
    """A booted PageAllocator: ``machine`` is a Machine or a spec string, ``design`` a
    registered name or a Design subclass."""
    m = parse_machine(machine) if isinstance(machine, str) else machine
    cls = get_design(design) if isinstance(design, str) else design
    return PageAllocator(m, cls, kernel=kernel, pcp=pcp, design_options=design_options, thp=thp)


__all__ = ["new_allocator"]
