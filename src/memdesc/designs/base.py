"""The design contract: everything a struct-page / free-list design implements, and the
core services it may use.

The allocator core (memdesc.mm) owns everything design-independent: zones, counters
(``nr_free`` per order, NR_FREE_PAGES, ...), pageblock migratetypes, watermarks, the pcp
bookkeeping and the allocation/free algorithms. A design owns:

* the memmap: which words each struct page has and their bit layout;
* the free lists: one list per (zone, order, migratetype), identified by an integer
  list id (memdesc.mm.mmzone.list_id), with the operations free_area uses (add at head
  or tail, delete a given block, move to another list's tail, peek at the head);
* the pcp lists' storage (where their links live) -- the core decides what goes on them;
* the "is this pfn a free block head of order o" test (page_is_buddy);
* the descriptor life cycle of allocated memory (folio, slab, ...) and any allocator
  metadata it needs (radix-tree nodes, struct buddy), taken from the modelled memory.

Every hook the core, the mm operations, the checker or the reports call is declared
below with its default; nothing reaches a design any other way. ``REQUIRED_HOOKS`` lists
the ones without a usable default. A design uses the core only through the services in
``CORE_SERVICES`` (attributes and methods of ``self.alloc``); it never touches a core
counter: when it has to change what the core accounts (radix-deque turning a page of a
block being freed into a tree node), it asks the core to do it (``carve_meta_page``).

docs/designs.md is generated from this file's hook table (``hook_table()``) and walks
through adding a design in one file.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from memdesc.designs.memmap import Memmap

if TYPE_CHECKING:
    from memdesc.mm.debug_vm import CheckReport, CheckState
    from memdesc.mm.page_alloc import PageAllocator


class DesignError(RuntimeError):
    """A design cannot run with these options or on this machine (e.g. embedded's
    ``strict32`` on 32-bit)."""


class PcpList(Protocol):
    """One per-CPU list (``pcp->lists[pindex]``), head at the left: the subset of
    ``collections.deque`` the core uses. A design may return its own object from
    ``Design.new_pcp_list`` to keep the links in its struct page words."""

    def appendleft(self, pfn: int) -> None:
        """list_add(): free_unref_page_commit() puts a freed page at the head."""

    def append(self, pfn: int) -> None:
        """list_add_tail(): rmqueue_bulk() refills at the tail."""

    def popleft(self) -> int:
        """list_first_entry() + list_del(): __rmqueue_pcplist() takes the head."""

    def pop(self) -> int:
        """list_last_entry() + list_del(): free_pcppages_bulk() drains from the tail."""

    def remove(self, pfn: int) -> None:
        """list_del() of a given page (an exact-pfn take of a pcp page)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[int]: ...

    def __contains__(self, pfn: object) -> bool: ...


#: what a design may use of ``self.alloc`` (memdesc.mm.page_alloc.PageAllocator);
#: tests/test_design_contract.py checks every built-in design against it.
CORE_SERVICES: dict[str, str] = {
    "machine": "the Machine (word_size, arch, present_pages, kernel_zone_index(), ...); read only",
    "kernel": "'6.1' or '6.19'",
    "nr_pfns": "memmap entries (max_pfn rounded up to MAX_ORDER_NR_PAGES)",
    "zones": "list of Zone (global index zid); read only",
    "pageblock_order": "pageblock_order",
    "pageblock_nr_pages": "pageblock_nr_pages",
    "booted": "memblock_free_all() and the watermarks are done",
    "pcp_enabled": "per-CPU lists are on",
    "thp": "THP enabled (pageblock-order pages use the pcp lists)",
    "zid_of_pfn": "zone id of every pfn (page_zone() by section; NO_ZONE outside zones); read only",
    "counters": "the core's AllocCounters; read only",
    "allocs_in_free_path": "allocations made inside free_pages(); read only",
    "in_free_path": "nonzero inside free_pages() (allocating now is allocation on the free path)",
    "alloc_depth": "nesting depth of alloc_pages() (1 = a top-level allocation)",
    "zone_of": "zone_of(pfn) -> Zone",
    "get_pageblock_migratetype": "get_pageblock_migratetype(pfn): the pageblock's type (ISOLATE when isolated)",
    "pageblock_base_migratetype": "the pageblock's type underneath MIGRATE_ISOLATE (e.g. CMA)",
    "PageHighMem": "PageHighMem(pfn): not permanently mapped (HIGHMEM, or MOVABLE carved from highmem)",
    "alloc_pages": "alloc_pages(gfp, order, kind='meta:...'): allocator metadata from the modelled memory",
    "free_pages": "free_pages(pfn, order): give a metadata block back",
    "buddy_only": "context: allocations inside bypass the pcp lists (the free path holds pcp->lock)",
    "carve_meta_page": "carve_meta_page(pfn, order, lid, tail, kind, on_page): the last page of a free "
                       "block being added becomes allocator metadata, the rest is added as smaller blocks",
    "nr_pcp_blocks": "blocks sitting on pcp lists (all zones, all CPUs)",
}


class Design:
    """Base class of every design: the whole contract, with defaults.

    Subclasses set ``name`` and ``struct_page_bytes`` and implement ``REQUIRED_HOOKS``;
    everything else is optional. ``alloc`` is the PageAllocator the design serves."""

    #: the registry name
    name = "abstract"
    #: bytes of struct page per pfn this design claims (what the memmap costs)
    struct_page_bytes = 0
    #: True when allocated memory is described by separately allocated descriptors
    uses_descriptors = False
    #: memmap word -> value that del_from_free_list() leaves in a page, for designs whose
    #: list operations touch nothing else (no metadata, no history such as deque
    #: indices); enables the unlink_split_run() refill shortcut.  None: not such a design.
    unlinked_words: dict[int, int] | None = None
    #: design option sets the test suites run (stateful, mm ops, differential); the
    #: first is the default
    variants: tuple[dict[str, Any], ...] = ({},)
    #: options that inject allocation failures (fault injection): under them the test
    #: suites do not expect contiguous allocation or offlining to succeed
    fault_options: frozenset[str] = frozenset()
    #: options under which the design places every block where ``linked`` would (its
    #: metadata kept off the modelled memory); the differential tests compare the two.
    #: None: the design's placement is its own
    linked_equivalent_options: dict[str, Any] | None = None
    #: True when relocate_meta() can move some allocator metadata pages (migration then
    #: asks the design instead of refusing every metadata page)
    relocates_meta = False

    def __init__(self, alloc: PageAllocator, **options: Any) -> None:
        self.alloc = alloc
        self.options = options
        #: the memmap (struct page words per pfn); set by init_memmap()
        self.mm: Memmap | None = None

    @classmethod
    def expected_violations(cls, options: dict[str, Any]) -> frozenset[str]:
        """Checker kinds this variant is built to show (the thread's rule violations,
        e.g. radix-deque's ``borrow`` allocates on the free path); the test suites accept
        these and nothing else."""
        return frozenset()

    # -- boot ------------------------------------------------------------------------
    def init_memmap(self) -> None:
        """Allocate the memmap and initialise every pfn (memmap_init_range)."""
        raise NotImplementedError

    def set_reserved(self, start: int, end: int) -> None:
        """Mark [start, end) PageReserved (holes, memblock reservations, offlined memory)."""
        raise NotImplementedError

    def clear_reserved(self, start: int, end: int) -> None:
        """ClearPageReserved over [start, end): memory going online again (online_pages);
        the exact inverse of set_reserved on pages that were free before it."""
        raise NotImplementedError

    def boot_done(self) -> None:
        """memblock_free_all() and the watermarks are done (``alloc.booted`` is True from
        here on); the allocator is open for business."""

    # -- free lists (zone->free_area) ---------------------------------------------------
    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        """__add_to_free_list(): put the free block at the head (or tail) of list ``lid``
        and mark it a free head of ``order``. The core has counted it already; a design
        that cannot hold the block as it is asks the core to carve_meta_page()."""
        raise NotImplementedError

    def del_from_free_list(self, pfn: int, order: int) -> None:
        """__del_page_from_free_list(): unlink the free head and clear its marker."""
        raise NotImplementedError

    def move_to_free_list(self, pfn: int, order: int, lid: int) -> None:
        """move_to_free_list(): list_move_tail to another list of the same zone and order
        (move_freepages_block, steal_suitable_fallback). Default: delete and add at the tail."""
        self.del_from_free_list(pfn, order)
        self.add_to_free_list(pfn, order, lid, True)

    def first_in_list(self, lid: int) -> int:
        """Head of the list (list_first_entry_or_null) or -1."""
        raise NotImplementedError

    def list_pfns(self, lid: int) -> Iterator[int]:
        """Walk a list head to tail (/proc/pagetypeinfo and the checker)."""
        raise NotImplementedError

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        """page_is_buddy(): a free block head of exactly ``order`` in zone ``zid``."""
        raise NotImplementedError

    def buddy_order(self, pfn: int) -> int:
        """buddy_order(): order of the free block headed at pfn, or -1 if not a free head."""
        raise NotImplementedError

    def on_split_free(self, pfn: int, order: int) -> None:
        """expand() is about to split the free block at pfn (already off its list)."""

    def unlink_split_run(self, pfn: int, order: int, units: int) -> bool:
        """Optional shortcut for a pcp refill that splits one block (rmqueue_bulk):
        the blocks ``pfn + j * 2^order`` for ``1 <= j < units`` were each, in turn,
        put alone on an empty free list by expand() and taken off it again by
        __rmqueue_smallest().  Leave their words exactly as that add/del pair would
        and return True; return False to have the core run the steps one by one.
        The default applies ``unlinked_words`` (if the design sets it) to each block."""
        words = self.unlinked_words
        if words is None or self.mm is None:
            return False
        step = 1 << order
        for word, value in words.items():
            self.mm.set_every(pfn + step, pfn + units * step, step, word, value)
        return True

    # -- per-CPU lists ---------------------------------------------------------------------
    def new_pcp_list(self, zid: int, cpu: int, pindex: int) -> PcpList:
        """The storage of ``zone->per_cpu_pageset[cpu]->lists[pindex]``. Default: a deque
        (links outside the modelled memory, as if pcp_list cost nothing)."""
        return deque()

    # -- operation boundaries ----------------------------------------------------------
    def op_begin(self, op: int, zone_locked: bool, free_path: bool) -> None:
        """An allocator operation starts (memdesc.mm.internal.Op); operations nest (a
        pcp refill inside an allocation). Called only if the design overrides it."""

    def op_end(self, op: int) -> None:
        """The operation begun last ends (also when it failed)."""

    # -- allocated memory --------------------------------------------------------------
    def prep_alloc(self, order: int, kind: str, gfp: int) -> Any:
        """Before taking pages (descriptor first, kernelnewbies FolioAlloc).
        Return a token, or None to fail the allocation without side effects."""
        return 0

    def abort_alloc(self, token: Any) -> None:
        """The pages could not be had: release what prep_alloc obtained."""

    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        """Pages [pfn, pfn + 2^order) are now allocated (prep_new_page); ``token`` is
        prep_alloc's, or 0 when the core took the block without it (mark_allocated)."""

    def free_prepare(self, pfn: int, order: int) -> None:
        """free_pages_prepare(): the block stops being allocated memory."""

    # -- mm operations (migration, isolation, offline) ---------------------------------
    def kind_of(self, pfn: int) -> str | None:
        """The memdesc kind of the allocated block at pfn (file, anon, ...) for the
        migration target's descriptor; None: the core assumes 'anon'."""
        return None

    def meta_kind(self, pfn: int) -> str | None:
        """What the allocator-metadata page at pfn holds ('radix-node', ...) for blocker
        reports; None: plain 'metadata'."""
        return None

    def meta_movable(self, pfn: int) -> bool:
        """has_unmovable_pages(): this metadata page can be moved (like __PageMovable)."""
        return False

    def relocate_meta(self, pfn: int) -> int:
        """Move the metadata page at pfn elsewhere (allocate the new page, re-point, free
        the old one) and return the new pfn, or -1 (nothing changed). Only asked when
        ``relocates_meta`` is set."""
        return -1

    # -- accounting and checks ---------------------------------------------------------
    def memmap_bytes(self) -> int:
        """Bytes of memmap for the machine's present pages."""
        return self.alloc.machine.present_pages * self.struct_page_bytes

    def metadata(self) -> dict[str, Any]:
        """Design-specific metadata accounting for reports (bytes, pages, peaks)."""
        return {}

    def numpy_state(self) -> dict[str, Any]:
        """Vectorised views for the checker: 'buddy_mask' (bool per pfn: a free head),
        'buddy_order' (its order); optional 'reserved_mask'."""
        raise NotImplementedError

    def check(self, report: CheckReport, state: CheckState) -> None:
        """Design-specific invariants; add violations to ``report``. ``state`` holds the
        checker's arrays (free blocks from the list walk, allocated and pcp blocks)."""

    def fingerprint_state(self) -> list[Any]:
        """Everything the design stores (buffers, tables), for tests that prove a
        rejected call changed nothing. Default: the memmap words."""
        return [self.mm.buf] if self.mm is not None else []


#: hooks a design must implement (no usable default)
REQUIRED_HOOKS = ("init_memmap", "set_reserved", "clear_reserved", "add_to_free_list", "del_from_free_list",
                  "first_in_list", "list_pfns", "page_is_buddy", "buddy_order", "numpy_state")

#: who calls each hook (for the generated table in docs/designs.md)
HOOK_CALLERS: dict[str, str] = {
    "expected_violations": "tests",
    "init_memmap": "core (boot)",
    "set_reserved": "core (boot), memory_hotplug (offline)",
    "clear_reserved": "memory_hotplug (online)",
    "boot_done": "core (boot)",
    "add_to_free_list": "core",
    "del_from_free_list": "core",
    "move_to_free_list": "core (move_freepages_block, 6.1 steal)",
    "first_in_list": "core, compaction, vmstat",
    "list_pfns": "checker, vmstat",
    "page_is_buddy": "core (merging)",
    "buddy_order": "core, isolation, compaction, checker",
    "on_split_free": "core (expand)",
    "unlink_split_run": "core (rmqueue_bulk)",
    "new_pcp_list": "core (boot)",
    "op_begin": "core, compaction, migrate",
    "op_end": "core, compaction, migrate",
    "prep_alloc": "core (alloc_pages, alloc_pages_at)",
    "abort_alloc": "core",
    "post_alloc": "core",
    "free_prepare": "core (free_pages)",
    "kind_of": "migrate",
    "meta_kind": "migrate, isolation (blocker reports)",
    "meta_movable": "isolation (has_unmovable_pages)",
    "relocate_meta": "migrate",
    "memmap_bytes": "core (metadata_summary)",
    "metadata": "reports, runner samples",
    "numpy_state": "checker",
    "check": "checker",
    "fingerprint_state": "tests",
}


def hooks() -> list[tuple[str, Callable[..., Any]]]:
    """(name, function) of every hook declared on Design, in declaration order."""
    out = []
    for name, fn in vars(Design).items():
        if name.startswith("_") or not callable(fn) and not isinstance(fn, classmethod):
            continue
        out.append((name, fn.__func__ if isinstance(fn, classmethod) else fn))
    return out


def _first_paragraph(doc: str | None) -> str:
    para = (doc or "").strip().split("\n\n")[0]
    return " ".join(para.split()).replace("``", "`").replace("|", "/")


def hook_table() -> str:
    """The Markdown table of hooks in docs/designs.md (tests/test_architecture.py fails
    when the document and this file disagree)."""
    rows = ["| hook | required | called by | what |", "|---|---|---|---|"]
    for name, fn in hooks():
        rows.append(f"| `{name}` | {'yes' if name in REQUIRED_HOOKS else 'no'} | {HOOK_CALLERS.get(name, '?')} "
                    f"| {_first_paragraph(fn.__doc__)} |")
    return "\n".join(rows)


def services_table() -> str:
    """The Markdown table of CORE_SERVICES in docs/designs.md."""
    rows = ["| `self.alloc.` | what |", "|---|---|"]
    rows += [f"| `{name}` | {what.replace('|', '/')} |" for name, what in CORE_SERVICES.items()]
    return "\n".join(rows)
