"""Readers for kernel page-allocator traces as the kernel and its tools print them.

Three text formats are understood and auto-detected (:func:`detect_format`):

* ``tracefs``: the ``trace`` / ``trace_pipe`` files of tracefs,
  ``comm-pid [cpu] flags  ts: event: body`` (optional ``(tgid)`` column, optional
  irq-info flags);
* ``trace-cmd``: ``trace-cmd report`` output (same shape, usually without the flags
  column unless ``-l``, event names padded with spaces, a ``cpus=N`` header);
* ``perf``: ``perf script`` output, ``comm pid[/tid] [cpu] ts: kmem:event: body``.

Input may be plain text, gzip, xz, bzip2 or zstd (recognised by magic bytes, not by
the file name) or ``-`` for stdin; it is streamed, so memory does not grow with the
trace length.  :func:`read_trace` turns lines into :class:`TraceRecord` objects:

* the kmem page events (``mm_page_alloc``, ``mm_page_free``, ``mm_page_free_batched``,
  ``mm_page_alloc_zone_locked``, ``mm_page_pcpu_drain``, ``mm_page_alloc_extfrag``)
  with pfn, order, gfp mask (parsed with :func:`memdesc.mm.gfp.parse_gfp` for ``kernel``)
  and migratetype mapped to memdesc's numbering (see :func:`migratetype_map`);
* ``tracing_mark_write`` lines as ``event == "tracing_mark_write"`` with the text in
  ``extra["text"]``;
* any other event (compaction, migrate, ...) as a pass-through record with
  ``extra["body"]`` (``mm_compaction_isolate_freepages`` also gets its range parsed).

Bad input is text that does not parse: a malformed line raises :class:`TraceParseError`
naming ``file:line`` and the text; with ``lenient=True`` such lines are skipped and
counted by kind in :class:`ParseStats`.  Corrupt or truncated compressed input is always
a :class:`TraceParseError`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import zstandard

from memdesc.mm.gfp import KERNELS, GfpError, parse_gfp
from memdesc.mm.mmzone import MIGRATE_CMA, MIGRATE_ISOLATE

__all__ = [
    "KMEM_EVENTS",
    "ParseStats",
    "TraceLines",
    "TraceParseError",
    "TraceRecord",
    "detect_format",
    "migratetype_map",
    "open_trace",
    "read_trace",
]

KMEM_EVENTS = (
    "mm_page_alloc",
    "mm_page_free",
    "mm_page_free_batched",
    "mm_page_alloc_zone_locked",
    "mm_page_pcpu_drain",
    "mm_page_alloc_extfrag",
)
MARK_EVENT = "tracing_mark_write"
MAX_TRACE_ORDER = 20  # larger orders than any kernel's MAX_PAGE_ORDER: malformed input
_MAX_EXAMPLES = 20
_GFP_CACHE_MAX = 4096
_DETECT_LINES = 200  # lines detect_format() sees


class TraceParseError(ValueError):
    """Text of a trace that cannot be parsed, or unreadable (corrupt) input.

    ``path`` names the file (``<stdin>`` for ``-``), ``lineno`` the 1-based line
    (0: not tied to a line, e.g. a corrupt compressed stream), ``text`` the line."""

    def __init__(self, path: str, lineno: int, message: str, text: str = "") -> None:
        self.path = path
        self.lineno = lineno
        self.text = text
        self.message = message
        where = f"{path}:{lineno}" if lineno else path
        shown = text if len(text) <= 300 else text[:300] + "..."
        super().__init__(f"{where}: {message}" + (f": {shown!r}" if text else ""))


@dataclass(slots=True)
class TraceRecord:
    """One parsed trace line.

    ``pfn`` / ``order`` are -1 for events without them; ``gfp`` is set for
    mm_page_alloc only; ``migratetype`` is in memdesc numbering; ``failed`` marks an
    mm_page_alloc that returned NULL (``page=0000000000000000 pfn=0x0``)."""

    event: str
    pfn: int
    order: int
    gfp: int | None
    migratetype: int | None
    cpu: int
    ts: float
    lineno: int
    comm: str
    pid: int
    extra: dict[str, Any] | None = None
    failed: bool = False


@dataclass(slots=True)
class ParseStats:
    """What the reader saw; filled while streaming (``lines`` at the end)."""

    path: str = ""
    format: str = "unknown"
    compression: str = "none"
    lines: int = 0
    last_lineno: int = 0
    records: dict[str, int] = field(default_factory=dict)  # kmem events + markers
    other: dict[str, int] = field(default_factory=dict)  # pass-through events by name
    markers: int = 0
    lost_events: int = 0  # "CPU:N [LOST M EVENTS]" notices (sum of M)
    header_lines: int = 0  # comments, blank lines, trace-cmd headers
    skipped: dict[str, int] = field(default_factory=dict)  # lenient: bad lines by kind
    skipped_examples: list[tuple[int, str, str]] = field(default_factory=list)

    def where(self) -> str:
        """``file:line`` of the last record handed out (for error messages)."""
        return f"{self.path}:{self.last_lineno}"


# --- opening (compression, stdin) -------------------------------------------------

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
)
_BINARY_MAGICS = (
    (b"\x17\x08\x44tracing", "a binary trace-cmd trace.dat file: convert it with `trace-cmd report`"),
    (b"PERFILE2", "a binary perf.data file: convert it with `perf script`"),
)
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    lzma.LZMAError,
    zlib.error,
    OSError,
    zstandard.ZstdError,
)


class _ChunkRaw(io.RawIOBase):
    """A readable raw stream over an iterator of byte chunks (with a pushed-back prefix)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _raw_chunks(prefix: bytes, src: IO[bytes]) -> Iterator[bytes]:
    if prefix:
        yield prefix
    while chunk := src.read(1 << 16):
        yield chunk


def _zstd_chunks(src: io.BufferedIOBase) -> Iterator[bytes]:
    """Decompress all zstd frames; a stream that ends inside a frame is an error
    (zstandard's stream_reader silently returns short data there)."""
    dobj = zstandard.ZstdDecompressor().decompressobj()
    in_frame = False
    while True:
        chunk = src.read(1 << 16)
        if not chunk:
            break
        while chunk:
            in_frame = True
            out = dobj.decompress(chunk)
            if out:
                yield out
            if dobj.eof:
                chunk = dobj.unused_data
                dobj = zstandard.ZstdDecompressor().decompressobj()
                in_frame = False
            else:
                chunk = b""
    if in_frame:
        raise EOFError("zstd stream ended before the end of the frame (truncated)")


class TraceLines:
    """Iterator over the text lines of a (possibly compressed) trace file or stdin."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        spath = os.fspath(path)
        self.path = spath
        self.name = "<stdin>" if spath == "-" else spath
        self.compression = "none"
        self._closers: list[Any] = []
        try:
            if spath == "-":
                src: IO[bytes] = sys.stdin.buffer
            else:
                src = open(spath, "rb")  # noqa: SIM115 - closed in close()
                self._closers.append(src)
            head = src.read(16)
        except OSError as e:
            raise TraceParseError(self.name, 0, f"cannot open trace: {e.strerror or e}") from None
        for magic, what in _BINARY_MAGICS:
            if head.startswith(magic):
                raise TraceParseError(self.name, 0, f"this is {what}")
        for magic, kind in _MAGICS:
            if head.startswith(magic):
                self.compression = kind
                break
        raw = io.BufferedReader(_ChunkRaw(_raw_chunks(head, src)), 1 << 16)
        binary: IO[bytes]
        if self.compression == "gzip":
            binary = gzip.GzipFile(fileobj=raw, mode="rb")
        elif self.compression == "xz":
            binary = lzma.LZMAFile(raw)  # type: ignore[assignment]
        elif self.compression == "bzip2":
            binary = bz2.BZ2File(raw)  # type: ignore[assignment]
        elif self.compression == "zstd":
            binary = io.BufferedReader(_ChunkRaw(_zstd_chunks(raw)), 1 << 16)
        else:
            binary = raw
        self._text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=None)
        self._closers.append(self._text)
        self._gen = self._lines()

    def _lines(self) -> Iterator[str]:
        n = 0
        try:
            for line in self._text:
                n += 1
                yield line
        except _STREAM_ERRORS as e:
            what = "compressed" if self.compression != "none" else "input"
            raise TraceParseError(
                self.name, n + 1, f"corrupt or truncated {self.compression} {what}: {e}"
            ) from None

    def __iter__(self) -> TraceLines:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        for c in reversed(self._closers):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask the real error
                pass
        self._closers.clear()

    def __enter__(self) -> TraceLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trace(path: str | os.PathLike[str]) -> TraceLines:
    """Open ``path`` (``-``: stdin) as text lines, decompressing gzip/xz/bzip2/zstd
    by magic bytes.  Lines keep their newline; undecodable bytes become U+FFFD."""
    return TraceLines(path)


# --- line grammar -----------------------------------------------------------------

# tracefs / trace-cmd: "comm-pid [(tgid)] [cpu] [flags] ts: event: body"
_DASH_PREFIX = r" *(.*?)-(\d+) +(?:\( *[-\d]+\) +)?\[(\d+)\] (?:\S{4,5} )? *(\d+\.\d+): +"
# perf script: "comm pid[/tid] [cpu] ts: sys:event: body"
_PERF_PREFIX = r" *(.*?) +(\d+)(?:/\d+)? +\[(\d+)\] +(\d+\.\d+): +(?:\d+ +)?"
_HOT_BODY = (
    r"(mm_page_alloc_zone_locked|mm_page_free_batched|mm_page_pcpu_drain|mm_page_alloc|mm_page_free):"
    r" +page=(\S+) pfn=(0x[0-9a-fA-F]+|[1-9]\d*|0) order=(\d{1,2})(?: migratetype=(-?\d+))?"
    r"(?: gfp_flags=(\S+))?(?: percpu_refill=(\d+))?\s*$"
)
_HOT = {
    "tracefs": re.compile(_DASH_PREFIX + _HOT_BODY),
    "trace-cmd": re.compile(_DASH_PREFIX + _HOT_BODY),
    "perf": re.compile(_PERF_PREFIX + "kmem:" + _HOT_BODY),
}
_DASH_GEN = re.compile(
    r" *(.*?)-(\d+) +(?:\( *[-\d]+\) +)?\[(\d+)\] +(?:\S{1,8} +)?(\d+\.\d+): +([\w:.-]+): ?(.*?)\s*$"
)
_PERF_GEN = re.compile(_PERF_PREFIX + r"([\w.-]+:[\w.-]+): ?(.*?)\s*$")
_LOST = re.compile(r"\s*CPU:? ?(\d+) \[LOST (\d+) EVENTS\]")
_TRACECMD_HEADER = re.compile(
    r"\s*(cpus=\d+|version = |CPU \d+ is empty|CPU\d+ data recorded|trace-cmd: |\[?LOST|"
    r"TRACE_MARKER|\w+ events? (enabled|recorded))"
)
_RANGE = re.compile(r"range=\(0x([0-9a-fA-F]+) ~ 0x([0-9a-fA-F]+)\)")
# Shared (do not mutate) extras for the hot path: one dict per value, not per record.
_REFILL = {"0": {"percpu_refill": 0}, "1": {"percpu_refill": 1}}


def _refill(v: str) -> dict[str, Any]:
    return _REFILL.get(v) or {"percpu_refill": int(v)}


_NULL_PAGES = frozenset({"0000000000000000", "00000000", "(nil)", "0x0", "0", "0x0000000000000000"})


def detect_format(first_lines: Iterable[str]) -> str:
    """Guess the text format from the first lines: ``tracefs``, ``trace-cmd``,
    ``perf`` or ``unknown`` (no event line recognised)."""
    for line in first_lines:
        s = line.strip()
        if not s:
            continue
        if s.startswith("# tracer:"):
            return "tracefs"
        if s.startswith("cpus=") or s.startswith("version = "):
            return "trace-cmd"
        if s.startswith("#"):
            continue
        m = _DASH_GEN.match(line)
        if m is not None:
            # tracefs always prints the irq-info flags column by default; trace-cmd
            # report only with -l.  Both parse the same, so a miss costs nothing.
            flags = re.search(r"\] +(\S+) +\d+\.\d+:", line)
            return "tracefs" if flags else "trace-cmd"
        if _PERF_GEN.match(line) is not None:
            return "perf"
    return "unknown"


def migratetype_map(config_cma: bool) -> tuple[int, ...]:
    """Trace migratetype number -> memdesc number (``MIGRATE_*`` of memdesc.mm.mmzone).

    With CONFIG_CMA the kernel numbers 4 CMA, 5 Isolate; without it 4 is Isolate."""
    if config_cma:
        return (0, 1, 2, 3, MIGRATE_CMA, MIGRATE_ISOLATE)
    return (0, 1, 2, 3, MIGRATE_ISOLATE)


def _num(v: str) -> int:
    if v[:2] in ("0x", "0X"):
        return int(v[2:], 16)
    if not v.lstrip("-").isdigit():
        raise ValueError(f"not a number: {v!r}")
    return int(v)


def _kv(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in body.split():
        k, sep, v = tok.partition("=")
        if sep and k:
            out[k] = v
    return out


class _Reader:
    """Per-file parsing state (gfp cache, migratetype map, stats)."""

    def __init__(self, name: str, kernel: str, config_cma: bool, lenient: bool, stats: ParseStats) -> None:
        self.name = name
        self.kernel = kernel
        self.mtmap = migratetype_map(config_cma)
        self.lenient = lenient
        self.stats = stats
        self.gfp_cache: dict[str, int] = {}

    def fail(self, kind: str, lineno: int, line: str, message: str) -> None:
        """Raise (strict) or count the bad line (lenient)."""
        text = line.rstrip("\r\n")
        if not self.lenient:
            raise TraceParseError(self.name, lineno, message, text)
        sk = self.stats.skipped
        sk[kind] = sk.get(kind, 0) + 1
        if len(self.stats.skipped_examples) < _MAX_EXAMPLES:
            self.stats.skipped_examples.append((lineno, kind, text[:300]))

    def gfp(self, text: str) -> int:
        mask = self.gfp_cache.get(text)
        if mask is None:
            mask = parse_gfp(text, self.kernel)
            if len(self.gfp_cache) < _GFP_CACHE_MAX:
                self.gfp_cache[text] = mask
        return mask

    def mt(self, v: int) -> int:
        if 0 <= v < len(self.mtmap):
            return self.mtmap[v]
        raise ValueError(f"migratetype {v} out of range")

    def slow(self, line: str, lineno: int) -> TraceRecord | None:
        """Everything the hot regex did not take: comments, headers, other events,
        markers, kmem variants (decimal pfn, extra fields), and bad lines."""
        s = line.strip()
        if not s or s.startswith("#"):
            self.stats.header_lines += 1
            return None
        m = _DASH_GEN.match(line) or _PERF_GEN.match(line)
        if m is None:
            lost = _LOST.match(line)
            if lost is not None:
                self.stats.lost_events += int(lost.group(2))
                return None
            if _TRACECMD_HEADER.match(line):
                self.stats.header_lines += 1
                return None
            self.fail("unparseable", lineno, line, "unrecognised trace line")
            return None
        comm, pid_s, cpu_s, ts_s, event, body = m.groups()
        body = body.lstrip()  # trace-cmd pads after "event:"
        if ":" in event:  # perf "kmem:mm_page_alloc", "ftrace:print"
            event = event.rpartition(":")[2]
        try:
            cpu, pid, ts = int(cpu_s), int(pid_s), float(ts_s)
        except ValueError:
            self.fail("malformed", lineno, line, "bad cpu/pid/timestamp")
            return None
        counts = self.stats.records
        if event in KMEM_EVENTS:
            try:
                rec = self._kmem(event, body, comm, pid, cpu, ts, lineno)
            except GfpError as e:
                self.fail("bad_gfp", lineno, line, f"{event}: {e}")
                return None
            except (ValueError, KeyError) as e:
                self.fail("malformed", lineno, line, f"malformed {event} line ({e})")
                return None
            counts[event] = counts.get(event, 0) + 1
            return rec
        if event == MARK_EVENT or (event == "print" and "tracing_mark_write: " in body):
            text = body.partition("tracing_mark_write: ")[2] if event == "print" else body
            self.stats.markers += 1
            counts[MARK_EVENT] = counts.get(MARK_EVENT, 0) + 1
            return TraceRecord(MARK_EVENT, -1, -1, None, None, cpu, ts, lineno, comm, pid, {"text": text})
        extra: dict[str, Any] = {"body": body}
        if event == "mm_compaction_isolate_freepages":
            r = _RANGE.search(body)
            kv = _kv(body)
            if r is not None:
                extra["start_pfn"] = int(r.group(1), 16)
                extra["end_pfn"] = int(r.group(2), 16)
            for k in ("nr_scanned", "nr_taken"):
                if k in kv and kv[k].isdigit():
                    extra[k] = int(kv[k])
        other = self.stats.other
        other[event] = other.get(event, 0) + 1
        return TraceRecord(event, -1, -1, None, None, cpu, ts, lineno, comm, pid, extra)

    def _kmem(
        self, event: str, body: str, comm: str, pid: int, cpu: int, ts: float, lineno: int
    ) -> TraceRecord:
        kv = _kv(body)
        page = kv["page"]
        pfn = _num(kv["pfn"])
        if pfn < 0:
            raise ValueError("negative pfn")
        extra: dict[str, Any] | None = None
        gfp: int | None = None
        mt: int | None = None
        if event == "mm_page_alloc_extfrag":
            order = _num(kv["alloc_order"])
            mt = self.mt(_num(kv["alloc_migratetype"]))
            extra = {
                "fallback_order": _num(kv["fallback_order"]),
                "pageblock_order": _num(kv["pageblock_order"]),
                "fallback_migratetype": self.mt(_num(kv["fallback_migratetype"])),
                "fragmenting": _num(kv["fragmenting"]),
                "change_ownership": _num(kv["change_ownership"]),
            }
        else:
            order = _num(kv["order"])
            if event in ("mm_page_alloc", "mm_page_alloc_zone_locked", "mm_page_pcpu_drain"):
                mt = self.mt(_num(kv["migratetype"]))
            if event == "mm_page_alloc":
                gfp = self.gfp(kv["gfp_flags"])
            elif event == "mm_page_alloc_zone_locked" and "percpu_refill" in kv:
                extra = {"percpu_refill": _num(kv["percpu_refill"])}
        if not 0 <= order <= MAX_TRACE_ORDER:
            raise ValueError(f"order {order} out of range")
        failed = pfn == 0 and page in _NULL_PAGES
        return TraceRecord(event, pfn, order, gfp, mt, cpu, ts, lineno, comm, pid, extra, failed)


def read_trace(
    path: str | os.PathLike[str],
    kernel: str = "6.1",
    lenient: bool = False,
    stats: ParseStats | None = None,
    config_cma: bool = False,
) -> Iterator[TraceRecord]:
    """Stream :class:`TraceRecord` objects from a trace file (see module doc).

    ``kernel`` selects the gfp flag names (6.1 for the shipped traces);
    ``config_cma`` says how to read migratetype 4; ``lenient`` skips and counts
    malformed lines in ``stats`` instead of raising :class:`TraceParseError`.
    Common mm_page_* lines take one precompiled regex (the hot path); everything
    else goes through :meth:`_Reader.slow`."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel version {kernel!r} (known: {', '.join(KERNELS)})")
    if stats is None:
        stats = ParseStats()
    lines = open_trace(path)
    stats.path = lines.name
    stats.compression = lines.compression
    reader = _Reader(lines.name, kernel, config_cma, lenient, stats)
    lineno = 0
    try:
        text = lines._text
        head = list(itertools.islice(text, _DETECT_LINES))
        fmt = detect_format(head)
        stats.format = fmt
        hot = _HOT.get(fmt, _HOT["tracefs"]).match
        gfp_cache = reader.gfp_cache
        mtmap = reader.mtmap
        nmt = len(mtmap)
        counts = stats.records
        for ev in KMEM_EVENTS:
            counts.setdefault(ev, 0)
        slow = reader.slow
        maxo = MAX_TRACE_ORDER
        null_pages = _NULL_PAGES
        rec_t = TraceRecord
        for lineno, line in enumerate(itertools.chain(head, text), 1):  # noqa: B007 - read in finally
            m = hot(line)
            if m is not None:
                comm, pid, cpu, ts, event, page, pfn_s, order_s, mt_s, gfp_s, refill = m.groups()
                order = int(order_s)
                if order <= maxo:
                    if gfp_s is not None:
                        if event == "mm_page_alloc" and mt_s is not None and refill is None:
                            gfp = gfp_cache.get(gfp_s)
                            mt = int(mt_s)
                            if gfp is not None and 0 <= mt < nmt:
                                pfn = int(pfn_s, 0)
                                counts[event] += 1
                                yield rec_t(
                                    event, pfn, order, gfp, mtmap[mt], int(cpu), float(ts), lineno,
                                    comm, int(pid), None, pfn == 0 and page in null_pages,
                                )
                                continue
                    elif mt_s is None:
                        if refill is None and (event == "mm_page_free" or event == "mm_page_free_batched"):
                            counts[event] += 1
                            yield rec_t(
                                event, int(pfn_s, 0), order, None, None, int(cpu), float(ts), lineno,
                                comm, int(pid),
                            )
                            continue
                    elif event == "mm_page_alloc_zone_locked" or (
                        event == "mm_page_pcpu_drain" and refill is None
                    ):
                        mt = int(mt_s)
                        if 0 <= mt < nmt:
                            counts[event] += 1
                            yield rec_t(
                                event, int(pfn_s, 0), order, None, mtmap[mt], int(cpu), float(ts), lineno,
                                comm, int(pid), None if refill is None else _refill(refill),
                            )
                            continue
            # not the hot shape (or a value the hot path does not check): full parser
            rec = slow(line, lineno)
            if rec is not None:
                yield rec
    except _STREAM_ERRORS as e:
        comp = lines.compression
        what = f"corrupt or truncated {comp} data" if comp != "none" else "read error"
        raise TraceParseError(lines.name, lineno + 1, f"{what}: {e}") from None
    finally:
        stats.lines = lineno
        lines.close()


# --- block-at-a-time fast path (used by trace_events) ------------------------------

_BLOCK_CHARS = 1 << 20  # text read per block (then completed to the end of its line)
_ORD_RE = r"(?:1?\d|20)"  # 0..MAX_TRACE_ORDER without a Python-level check
_PFN_RE = r"(?:0x[0-9a-fA-F]+|[1-9]\d*|0)"
ORDER_OF = {str(i): i for i in range(MAX_TRACE_ORDER + 1)}


# Event names of the lines the block pattern only counts, as they appear in a line
# (":" and a space after the name).  The block pattern bounds comm to 16 characters and
# every other field of its lines to non-blank text, so in a line it matches each of
# these strings can only occur as the line's own event name: counting them in a block
# (minus the lines handed to the line parser) counts those lines by event.
COUNTED_MARKS = (
    ("mm_page_free_batched", "mm_page_free_batched: "),
    ("mm_page_alloc_zone_locked", "mm_page_alloc_zone_locked: "),
    ("mm_page_pcpu_drain", "mm_page_pcpu_drain: "),
)


def _block_pattern(fmt: str, nmt: int) -> re.Pattern[str]:
    """One regex that matches *every* line of a block, so that ``findall`` returns one
    tuple per line (line ``i`` of the block is tuple ``i``).  Groups:

    ``cpu`` (every line the pattern takes), ``pfn, order, gfp`` (mm_page_alloc, hex
    pfn), ``pfn, order`` (mm_page_free, hex pfn), ``rest`` (any other line, with its
    newline: handed to the line parser, :meth:`_Reader.slow`).  A tuple with only
    ``cpu`` set is a well-formed mm_page_free_batched, mm_page_alloc_zone_locked or
    mm_page_pcpu_drain line, only counted (see ``COUNTED_MARKS``).  The alternatives
    accept a subset of what the line-at-a-time hot path of :func:`read_trace` accepts,
    with its value checks (order <= MAX_TRACE_ORDER, migratetype in range) folded into
    the regex; comm is bounded to 16 characters (TASK_COMM_LEN is 16, so the kernel
    prints at most 15) and longer ones take the line parser.  Few groups and a factored
    alternation matter: this one regex is a third of a whole trace replay's time."""
    if fmt == "perf":
        prefix = r" *.{0,16}? +\d+(?:/\d+)? +\[(\d+)\] +\d+\.\d+: +(?:\d+ +)?kmem:"
    else:
        prefix = r" *.{0,16}?-\d+ +(?:\( *[-\d]+\) +)?\[(\d+)\] (?:\S{4,5} )? *\d+\.\d+: +"
    mt = f"[0-{nmt - 1}]"
    page = r"page=\S+ pfn="
    body = (
        rf"mm_page_(?:alloc(?:: +{page}0x([0-9a-fA-F]+) order=({_ORD_RE}) migratetype={mt} gfp_flags=(\S+)"
        rf"|_zone_locked: +{page}{_PFN_RE} order={_ORD_RE} migratetype={mt}(?: percpu_refill=\d+)?)"
        rf"|free(?:: +{page}0x([0-9a-fA-F]+) order=({_ORD_RE})"
        rf"|_batched: +{page}{_PFN_RE} order={_ORD_RE})"
        rf"|pcpu_drain: +{page}{_PFN_RE} order={_ORD_RE} migratetype={mt})"
    )
    return re.compile(rf"{prefix}(?:{body})[ \t\r]*\n|(.*\n)")


class _BlockSource:
    """A trace read in blocks of whole lines (each ending with a newline) for the fast
    path of :func:`memdesc.workloads.replay.trace_events`.

    ``blocks()`` yields ``(lines_before, text)``; ``findall(text)`` gives one tuple per
    line (:func:`_block_pattern`); ``reader.slow`` parses a line the pattern left in
    ``rest`` exactly as :func:`read_trace` would.  Stream errors become
    :class:`TraceParseError` at the first line not yet handed out."""

    def __init__(self, path: str | os.PathLike[str], kernel: str, config_cma: bool, lenient: bool,
                 stats: ParseStats) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel version {kernel!r} (known: {', '.join(KERNELS)})")
        self.stats = stats
        self.lines = open_trace(path)
        stats.path = self.lines.name
        stats.compression = self.lines.compression
        self.reader = _Reader(self.lines.name, kernel, config_cma, lenient, stats)
        self.findall: Any = None
        for ev in KMEM_EVENTS:
            stats.records.setdefault(ev, 0)

    def blocks(self) -> Iterator[tuple[int, str]]:
        text = self.lines._text
        read = text.read
        readline = text.readline
        n = 0
        try:
            while True:
                try:
                    block = read(_BLOCK_CHARS)
                    if not block:
                        return
                    if block[-1] != "\n":
                        block += readline()
                    if self.findall is None:  # the format is told from 200 lines, as read_trace does
                        while block.count("\n") < _DETECT_LINES and (more := readline()):
                            block += more
                except _STREAM_ERRORS as e:
                    comp = self.lines.compression
                    what = f"corrupt or truncated {comp} data" if comp != "none" else "read error"
                    raise TraceParseError(self.lines.name, n + 1, f"{what}: {e}") from None
                if block[-1] != "\n":
                    block += "\n"  # last line without a newline
                if self.findall is None:
                    fmt = detect_format(block.split("\n", _DETECT_LINES)[:_DETECT_LINES])
                    self.stats.format = fmt
                    self.findall = _block_pattern(fmt, len(self.reader.mtmap)).findall
                yield n, block
                n += block.count("\n")
        finally:
            self.lines.close()
