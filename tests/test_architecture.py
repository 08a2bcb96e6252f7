"""The package's shape: no import cycles, imports at module level, a declared design
contract that every design keeps and docs/designs.md reproduces."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from memdesc.designs import design_names, get_design
from memdesc.designs.base import CORE_SERVICES, REQUIRED_HOOKS, Design, hook_table, services_table

SRC = Path(__file__).resolve().parents[1] / "src" / "memdesc"
DOCS = Path(__file__).resolve().parents[1] / "docs"
#: optional heavy dependencies, imported where they are used
LAZY_OK = ("matplotlib", "dask", "distributed")
#: zone fields only the core may change
CORE_COUNTERS = {"nr_free", "free_pages", "nr_free_cma", "nr_free_highatomic", "nr_reserved_highatomic",
                 "managed", "reserved", "nr_isolate_pageblock", "watermark", "watermark_boost", "lowmem_reserve"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(node: ast.ImportFrom | ast.Import, mod: str, ispkg: bool, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = mod.split(".") if ispkg else mod.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            tgt = ".".join(base + ([node.module] if node.module else []))
        else:
            tgt = node.module or ""
        names = [tgt] + [f"{tgt}.{a.name}" for a in node.names]
    return [t for t in names if t in mods]


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Import graph (module- and function-level edges; not ``if TYPE_CHECKING:`` imports,
    which never run) and every function-level import."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    lazy = []
    for m, p in mods.items():
        tree = ast.parse(p.read_text())
        ispkg = p.name == "__init__.py"
        type_only = {id(n) for blk in tree.body if isinstance(blk, ast.If) and "TYPE_CHECKING" in ast.unparse(blk.test)
                     for n in ast.walk(blk)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in type_only:
                graph[m].update(t for t in _targets(node, m, ispkg, mods) if t != m)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                        if (name or "").split(".")[0] not in LAZY_OK:
                            lazy.append(f"{p.relative_to(SRC.parent)}:{node.lineno} imports {name} in {fn.name}()")
    return graph, lazy


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_imports_at_module_level():
    _, lazy = _graph()
    assert lazy == []


def test_no_name_mangled_methods():
    bad = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("__")
                    and not node.name.endswith("__")):
                bad.append(f"{p.name}:{node.lineno} {node.name}")
    assert bad == []


def test_no_hook_probing():
    """Nothing reaches a design through getattr/hasattr: every hook is declared."""
    bad = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr")):
                src = ast.unparse(node.args[0])
                if "design" in src or src in ("d", "self"):
                    bad.append(f"{p.relative_to(SRC)}:{node.lineno} {ast.unparse(node)}")
    assert bad == []


def _design_files() -> list[Path]:
    return [p for p in (SRC / "designs").glob("*.py") if p.name not in ("__init__.py", "base.py", "memmap.py")]


def _alloc_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Attributes read from the allocator: ``self.alloc.X``, ``self.page_alloc.X`` and
    ``a.X`` / ``alloc.X`` for locals bound to it."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        aliases = {"alloc"} if any(a.arg == "alloc" for a in fn.args.args) else set()
        for node in ast.walk(fn):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and ast.unparse(node.value) in ("self.alloc", "self.page_alloc")):
                aliases.add(node.targets[0].id)
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute):
                base = ast.unparse(node.value)
                if base in ("self.alloc", "self.page_alloc") or base in aliases:
                    out.append((node.lineno, node.attr))
    return out


@pytest.mark.parametrize("path", _design_files(), ids=lambda p: p.name)
def test_designs_use_only_core_services(path):
    bad = [f"{path.name}:{ln} alloc.{attr}" for ln, attr in _alloc_uses(ast.parse(path.read_text()))
           if attr not in CORE_SERVICES]
    assert bad == []


@pytest.mark.parametrize("path", _design_files(), ids=lambda p: p.name)
def test_designs_do_not_touch_core_counters(path):
    """No design writes a zone counter or calls the core's accounting."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            while isinstance(t, ast.Subscript):
                t = t.value
            if isinstance(t, ast.Attribute) and t.attr in CORE_COUNTERS:
                bad.append(f"{path.name}:{node.lineno} writes .{t.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("account_freepages", "_add_to_free_list",
                                                             "del_page_from_free_list"):
            bad.append(f"{path.name}:{node.lineno} calls {node.attr}")
    assert bad == []


@pytest.mark.parametrize("name", design_names())
def test_registered_designs_implement_the_required_hooks(name):
    cls = get_design(name)
    missing = [h for h in REQUIRED_HOOKS if getattr(cls, h) is getattr(Design, h)]
    assert missing == []
    assert cls.name == name and cls.struct_page_bytes > 0
    assert cls.variants and all(isinstance(v, dict) for v in cls.variants)
    for h, fn in inspect.getmembers(Design, inspect.isfunction):
        if not h.startswith("_") and hasattr(cls, h):
            assert inspect.signature(getattr(cls, h)).parameters.keys() == inspect.signature(fn).parameters.keys(), h


def test_docs_hook_table_matches_the_contract():
    text = (DOCS / "designs.md").read_text()
    assert hook_table() in text, "docs/designs.md: regenerate the hook table from memdesc.designs.base.hook_table()"
    assert services_table() in text, "docs/designs.md: regenerate the services table (services_table())"
