"""Design registry: name -> Design subclass. A new design registers itself here."""

from __future__ import annotations

from memdesc.designs.base import Design, DesignError

_REGISTRY: dict[str, str] = {
    "linked": "memdesc.designs.linked:LinkedDesign",
    "embedded": "memdesc.designs.embedded:EmbeddedDesign",
    "buddy-desc": "memdesc.designs.buddy_desc:BuddyDescDesign",
    "radix-deque": "memdesc.designs.radix_deque:RadixDequeDesign",
}


def register_design(name: str, target: str) -> None:
    """Register ``module:Class`` under ``name`` (lazy import)."""
    _REGISTRY[name] = target


def design_names() -> list[str]:
    return list(_REGISTRY)


def get_design(name: str) -> type[Design]:
    import importlib

    if name not in _REGISTRY:
        raise DesignError(f"unknown design {name!r} (known: {', '.join(_REGISTRY)})")
    mod, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


__all__ = ["Design", "DesignError", "get_design", "design_names", "register_design"]
