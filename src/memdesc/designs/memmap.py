"""The memmap: struct page words for every pfn in one compact buffer.

Like the kernel's vmemmap, entries are laid out array-of-structs: the words of
pfn ``p`` are ``buf[p * W : p * W + W]``. ``buf`` is an ``array('Q')`` (fast
single-word access from Python) and ``np`` is a numpy view of the *same memory*
(bulk initialisation and vectorised checks). A design may append ``extra``
entries after the last pfn to hold list heads that live in struct zone in the
kernel (free_area[].free_list[]); they are not counted as memmap.
"""

from __future__ import annotations

from array import array

import numpy as np


class Memmap:
    """``nr_pfns`` entries of ``words`` 64-bit words (+ ``extra`` non-memmap entries)."""

    def __init__(self, nr_pfns: int, words: int, extra: int = 0) -> None:
        self.nr_pfns = nr_pfns
        self.words = words
        self.extra = extra
        n = (nr_pfns + extra) * words
        # array repetition allocates and zero-fills without a transient copy.
        self.buf = array("Q", [0]) * n
        self.np = np.frombuffer(self.buf, dtype=np.uint64)

    def field(self, word: int) -> np.ndarray:
        """Strided numpy view of one word of every real pfn."""
        return self.np[word: self.nr_pfns * self.words: self.words]

    def set_every(self, start: int, end: int, step: int, word: int, value: int) -> None:
        """Set ``word`` of pfns ``start, start + step, ...`` below ``end`` to ``value``."""
        w = self.words
        self.np[start * w + word:end * w:step * w] = value

    @property
    def nbytes_stored(self) -> int:
        return self.buf.itemsize * len(self.buf)
