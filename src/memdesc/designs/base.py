"""The design interface: what a struct-page / free-list design implements.

The allocator core (memdesc.mm.page_alloc) owns everything design-independent:
zones, counters (nr_free per order, NR_FREE_PAGES), pageblock migratetypes,
watermarks, pcp lists and the allocation/free algorithms. A design owns:

* the memmap: which words each struct page has and their bit layout;
* the free lists: one list per (zone, order, migratetype), identified by an
  integer ``lid`` (see :func:`list_id`), with the operations the kernel's
  free_area uses (add at head or tail, delete an arbitrary block, move to
  another list's tail, peek at the head);
* the "is this pfn a free block head of order o" test (page_is_buddy);
* descriptor life cycle hooks for allocated memory (folio, slab, ...) and any
  allocator metadata (radix-tree nodes, struct buddy) it needs.

The core never branches on a design's name. See docs/designs.md for a worked
example of adding a design in one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from memdesc.mm.mmzone import MIGRATE_TYPES, NR_PAGE_ORDERS

if TYPE_CHECKING:
    from memdesc.mm.page_alloc import PageAllocator


def list_id(zid: int, order: int, mt: int) -> int:
    """Flat index of free_area[order].free_list[mt] of zone ``zid``."""
    return (zid * NR_PAGE_ORDERS + order) * MIGRATE_TYPES + mt


def split_list_id(lid: int) -> tuple[int, int, int]:
    zo, mt = divmod(lid, MIGRATE_TYPES)
    zid, order = divmod(zo, NR_PAGE_ORDERS)
    return zid, order, mt


class DesignError(RuntimeError):
    """A design cannot run on this machine (e.g. embedded on 32-bit)."""


class Design:
    """Base class: every method the core calls. Subclasses override all of them."""

    name = "abstract"
    #: bytes of struct page per pfn this design claims (what the memmap costs)
    struct_page_bytes = 0
    #: True when allocated memory is described by separately allocated descriptors
    uses_descriptors = False
    #: memmap word -> value that del_from_free_list() leaves in a page, for designs whose
    #: list operations touch nothing else (no metadata, no history such as deque
    #: indices); enables the unlink_split_run() refill shortcut.  None: not such a design.
    unlinked_words: dict[int, int] | None = None

    def __init__(self, alloc: PageAllocator, **options: Any) -> None:
        self.alloc = alloc
        self.options = options

    # -- boot ------------------------------------------------------------------------
    def init_memmap(self) -> None:
        """Allocate the memmap and initialise every pfn (memmap_init_range)."""
        raise NotImplementedError

    def set_reserved(self, start: int, end: int) -> None:
        """Mark [start, end) PageReserved (holes, memblock reservations)."""
        raise NotImplementedError

    def boot_done(self) -> None:
        """Optional hook: memblock_free_all() and the watermarks are done
        (``alloc.booted`` is True from here on); the allocator is open for business."""

    # -- free lists ------------------------------------------------------------------
    def add_to_free_list(self, pfn: int, order: int, lid: int, tail: bool) -> None:
        raise NotImplementedError

    def del_from_free_list(self, pfn: int, order: int) -> None:
        raise NotImplementedError

    def move_to_free_list(self, pfn: int, order: int, lid: int) -> None:
        """list_move_tail to another list of the same zone and order."""
        self.del_from_free_list(pfn, order)
        self.add_to_free_list(pfn, order, lid, True)

    def first_in_list(self, lid: int) -> int:
        """Head of the list (list_first_entry_or_null) or -1."""
        raise NotImplementedError

    def unlink_split_run(self, pfn: int, order: int, units: int) -> bool:
        """Optional shortcut for a pcp refill that splits one block (rmqueue_bulk):
        the blocks ``pfn + j * 2^order`` for ``1 <= j < units`` were each, in turn,
        put alone on an empty free list by expand() and taken off it again by
        __rmqueue_smallest().  Leave their words exactly as that add/del pair would
        and return True; return False to have the core run the steps one by one.
        The default applies ``unlinked_words`` (if the design sets it) to each block."""
        words = self.unlinked_words
        if words is None:
            return False
        step = 1 << order
        for word, value in words.items():
            self.mm.set_every(pfn + step, pfn + units * step, step, word, value)
        return True

    def list_pfns(self, lid: int) -> Iterator[int]:
        """Walk a list head to tail (for /proc/pagetypeinfo and the checker)."""
        raise NotImplementedError

    def page_is_buddy(self, pfn: int, order: int, zid: int) -> bool:
        """page_is_buddy(): a free block head of exactly ``order`` in zone ``zid``."""
        raise NotImplementedError

    def buddy_order(self, pfn: int) -> int:
        """Order of the free block headed at pfn, or -1 if pfn is not a free head."""
        raise NotImplementedError

    def list_of(self, pfn: int) -> int:
        """The lid of the list a free head is on (checker; may be slow)."""
        raise NotImplementedError

    # -- allocated memory --------------------------------------------------------------
    def prep_alloc(self, order: int, kind: str, gfp: int) -> Any:
        """Before taking pages (descriptor first, kernelnewbies FolioAlloc).
        Return a token, or None to fail the allocation without side effects."""
        return 0

    def abort_alloc(self, token: Any) -> None:
        """The pages could not be had: release what prep_alloc obtained."""

    def post_alloc(self, pfn: int, order: int, kind: str, token: Any) -> None:
        """Pages [pfn, pfn + 2^order) are now allocated (prep_new_page)."""

    def free_prepare(self, pfn: int, order: int) -> None:
        """free_pages_prepare(): the block stops being allocated memory."""

    def on_split_free(self, pfn: int, order: int) -> None:
        """Optional hook: a block is about to be split by expand()."""

    # -- accounting and checks -------------------------------------------------------
    def memmap_bytes(self) -> int:
        """Bytes of memmap for the machine's present pages."""
        return self.alloc.machine.present_pages * self.struct_page_bytes

    def metadata(self) -> dict[str, Any]:
        """Design-specific metadata accounting for reports (bytes, pages, peaks)."""
        return {}

    def check(self, report: Any) -> None:
        """Design-specific invariants; add violations to ``report``."""

    def numpy_state(self) -> dict[str, Any]:
        """Vectorised views for the checker: {'buddy_mask', 'buddy_order'}."""
        raise NotImplementedError
