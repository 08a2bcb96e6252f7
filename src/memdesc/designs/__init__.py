"""Design registry: name -> Design subclass.

A built-in design registers with one line in ``_BUILTIN`` (``"name": "module:Class"``,
imported on first use). A design outside the package registers without editing it:
``register_design(name, target)`` from Python, or the environment variable
``MEMDESC_DESIGNS="name=path/to/file.py:Class[,name2=module:Class]"``, which every
command and the test suite read, so that ``MEMDESC_DESIGNS=... memdesc compare`` and
``MEMDESC_DESIGNS=... python -m pytest`` pick the design up.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from memdesc.designs.base import Design, DesignError

_BUILTIN: dict[str, str] = {
    "linked": "memdesc.designs.linked:LinkedDesign",
    "embedded": "memdesc.designs.embedded:EmbeddedDesign",
    "buddy-desc": "memdesc.designs.buddy_desc:BuddyDescDesign",
    "radix-deque": "memdesc.designs.radix_deque:RadixDequeDesign",
}
_REGISTERED: dict[str, str] = {}
ENV = "MEMDESC_DESIGNS"


def _from_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        name, eq, target = item.partition("=")
        if not eq or ":" not in target or not name.strip():
            raise DesignError(f"{ENV}: expected name=path.py:Class or name=module:Class, got {item!r}")
        out[name.strip()] = target.strip()
    return out


def _registry() -> dict[str, str]:
    return {**_BUILTIN, **_from_env(), **_REGISTERED}


def register_design(name: str, target: str) -> None:
    """Register ``module:Class`` or ``path/to/file.py:Class`` under ``name``."""
    _REGISTERED[name] = target


def design_names() -> list[str]:
    """Every registered design: the built-ins, then $MEMDESC_DESIGNS, then register_design()."""
    return list(_registry())


def _load(target: str) -> Any:
    mod, _, cls = target.rpartition(":")
    if mod.endswith(".py"):
        path = Path(mod).resolve()
        modname = f"memdesc_design_{path.stem}"
        module = sys.modules.get(modname)
        if module is None:
            if not path.is_file():
                raise DesignError(f"design file {path} does not exist")
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise DesignError(f"cannot load design file {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod)
    try:
        return getattr(module, cls)
    except AttributeError:
        raise DesignError(f"design target {target!r}: {module.__name__} has no {cls!r}") from None


def get_design(name: str) -> type[Design]:
    """The Design subclass registered under ``name`` (DesignError if unknown)."""
    reg = _registry()
    if name not in reg:
        raise DesignError(f"unknown design {name!r} (known: {', '.join(reg)})")
    cls = _load(reg[name])
    if not (isinstance(cls, type) and issubclass(cls, Design)):
        raise DesignError(f"design {name!r}: {reg[name]} is not a Design subclass")
    return cls


def design_variants() -> list[tuple[str, dict[str, Any]]]:
    """(name, options) of every registered design and every option set it declares
    interesting (``Design.variants``): what the test suites run."""
    return [(name, dict(opts)) for name in design_names() for opts in get_design(name).variants]


__all__ = ["Design", "DesignError", "get_design", "design_names", "design_variants", "register_design"]
