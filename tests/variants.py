"""The design variants every generic suite runs: each registered design (built-in, from
$MEMDESC_DESIGNS or register_design) with every option set it declares in
``Design.variants``. No list to edit when a design is added."""

from __future__ import annotations

from typing import Any

import pytest

from memdesc.designs import design_variants, get_design


def variant_id(name: str, opts: dict[str, Any]) -> str:
    return name + ("" if not opts else ":" + ",".join(f"{k}={v}" for k, v in sorted(opts.items())))


def variants(default_only: bool = False) -> list[Any]:
    """pytest params (name, options) with readable ids."""
    out = []
    seen = set()
    for name, opts in design_variants():
        if default_only and name in seen:
            continue
        seen.add(name)
        out.append(pytest.param(name, opts, id=variant_id(name, opts)))
    return out


def expected(name: str, opts: dict[str, Any]) -> frozenset[str]:
    """Checker kinds the variant is built to show."""
    return get_design(name).expected_violations(opts)


def rule_keeping() -> list[Any]:
    """Variants that keep the thread's rules and inject no failures: mm operations
    (contiguous allocation, CMA, offline) must succeed on them."""
    out = []
    for v in variants():
        name, opts = v.values
        cls = get_design(name)
        if not cls.expected_violations(opts) and not any(opts.get(k) for k in cls.fault_options):
            out.append(v)
    return out
