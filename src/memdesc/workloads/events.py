"""The one event model every workload source produces and the runner consumes.

Handles are stable integer IDs chosen by the workload: the runner maps a handle to
the pfn the model allocated, so migration can move a block without the workload
noticing. ``src`` says where an event came from ("trace.txt:1234") for errors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Alloc:
    """alloc_pages(gfp, order) whose result is remembered under ``handle``.

    ``kind`` is the memdesc kind of the allocation (file, anon, slab, pgtable,
    vmalloc, misc, ...) or None to derive it from gfp/order. ``pfn`` is the traced
    pfn (trace replay; -1 otherwise), used by --pfn-exact."""

    handle: int
    order: int
    gfp: int
    kind: str | None = None
    nid: int = -1
    cpu: int = 0
    pfn: int = -1
    src: str | None = None


@dataclass(slots=True)
class Free:
    """Free the block allocated under ``handle`` (``order`` -1: whatever it was)."""

    handle: int
    order: int = -1
    cpu: int = 0
    src: str | None = None


@dataclass(slots=True)
class ContigAlloc:
    """alloc_contig_range / cma_alloc of ``nr_pages`` pages (``cma`` True: from the
    CMA area, else from ZONE_MOVABLE / any zone) aligned to 2^align_order pages."""

    handle: int
    nr_pages: int
    align_order: int = 0
    cma: bool = True
    src: str | None = None


@dataclass(slots=True)
class ContigFree:
    handle: int
    src: str | None = None


@dataclass(slots=True)
class Offline:
    """offline_pages() of one memory block (section) given by its first pfn, or
    block index ``block`` within ZONE_MOVABLE when start_pfn is -1."""

    start_pfn: int = -1
    nr_pages: int = 0
    block: int = -1
    src: str | None = None


@dataclass(slots=True)
class Online:
    start_pfn: int = -1
    nr_pages: int = 0
    block: int = -1
    src: str | None = None


@dataclass(slots=True)
class Compact:
    """compact_memory for one node's zone type (None: all zones), as
    /proc/sys/vm/compact_memory does."""

    nid: int = -1
    zone: str | None = None
    order: int = -1
    src: str | None = None


@dataclass(slots=True)
class Mark:
    """A named point in the stream (trace CAPTURE markers, phase boundaries)."""

    text: str
    src: str | None = None


Event = Alloc | Free | ContigAlloc | ContigFree | Offline | Online | Compact | Mark
