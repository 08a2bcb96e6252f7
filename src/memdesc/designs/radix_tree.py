"""Radix-tree deques: the free-list structure of the `radix-deque` design.

Kent Overstreet (linux-mm, Oct 2021) proposed replacing the buddy allocator's
doubly linked free lists with one deque per free list, implemented as a radix
tree keyed by a running index; a free page stores its index so it can be
removed from the middle (buddy merge) without prev/next pointers. This module
is that structure, independent of the page allocator (lib/radix-tree.c is the
kernel counterpart; the unit tests mirror tools/testing/radix-tree).

Representation (flat, no per-operation Python objects):

* a node is an integer id; its ``fanout`` slots live in one ``array('q')`` at
  ``slots[id * fanout : (id + 1) * fanout]`` (-1 = empty). Leaf slots hold the
  value (a pfn), interior slots a child node id;
* ``occ[id]`` is the node's occupancy bitmap (a Python int), so "next/previous
  occupied slot" is a couple of bit operations per level;
* per node header: the deque it belongs to, its level (1 = leaf) and the key of
  its first slot -- what the kernel's radix_tree_node keeps as shift/offset/parent,
  and what relocating a node needs to find the slot that points to it.

Keys are signed running indices. Deque ``lid`` maps key ``k`` to the tree
position ``u = k + bias[lid]``; a tree of height ``h`` covers ``0 <= u < F**h``.
Pushing at the tail uses key ``tail`` (one past the last), pushing at the head
``head - 1``. A key beyond the right edge grows the tree with the old root in
slot 0; a key left of 0 grows it with the old root in slot ``F/2`` and adds
``F/2 * F**h`` to the bias, so keys stored in pages never change when the tree
grows or shrinks. Removal frees empty nodes bottom-up and collapses a root with a
single child (any slot, via the bias). ``first`` is O(1) (the head value is
cached and re-found in O(height) with the bitmaps when the head is removed).

Nodes come from ``alloc_node()`` / go to ``free_node(id)`` callbacks, so the
page allocator design can pack them into metadata pages; by default the tree
numbers nodes itself (unit tests) and ``nr_allocated`` counts live nodes like
the kernel test suite's counter.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

EMPTY = -1


class RadixDeques:
    """``nlists`` deques sharing one node store."""

    def __init__(self, nlists: int, fanout: int = 64, alloc_node: Callable[[], int] | None = None,
                 free_node: Callable[[int], None] | None = None) -> None:
        if fanout < 2 or fanout & (fanout - 1):
            raise ValueError(f"fanout must be a power of two >= 2, not {fanout}")
        self.F = fanout
        self.S = fanout.bit_length() - 1
        self.M = fanout - 1
        self.HALF = fanout >> 1
        self.slots = array("q")
        self.occ: list[int] = []
        self.nlid: list[int] = []
        self.nlevel: list[int] = []
        self.nk0: list[int] = []
        self.root = [EMPTY] * nlists
        self.height = [0] * nlists
        self.bias = [0] * nlists
        self.head = [0] * nlists
        self.tail = [0] * nlists
        self.count = [0] * nlists
        self.headval = [EMPTY] * nlists
        self.nnodes = [0] * nlists
        self.nr_allocated = 0
        self.nr_allocated_peak = 0
        self._free_ids: list[int] = []
        self._next_id = 0
        self.alloc_node = alloc_node if alloc_node is not None else self._default_alloc
        self.free_node = free_node if free_node is not None else self._default_free

    # -- node store -------------------------------------------------------------------
    def reserve_ids(self, n: int) -> None:
        """Make node ids ``0 .. n-1`` addressable."""
        have = len(self.occ)
        if n <= have:
            return
        add = max(n - have, have, 64)
        self.occ.extend([0] * add)
        self.nlid.extend([EMPTY] * add)
        self.nlevel.extend([0] * add)
        self.nk0.extend([0] * add)
        self.slots.extend(array("q", [EMPTY]) * (add * self.F))

    def _default_alloc(self) -> int:
        if self._free_ids:
            return self._free_ids.pop()
        i = self._next_id
        self._next_id += 1
        self.reserve_ids(i + 1)
        return i

    def _default_free(self, node: int) -> None:
        self._free_ids.append(node)

    def _new(self, lid: int, level: int, k0: int) -> int:
        node = self.alloc_node()
        if node < 0:
            raise MemoryError("radix tree: no node available (caller must check nodes_needed)")
        self.occ[node] = 0
        self.nlid[node] = lid
        self.nlevel[node] = level
        self.nk0[node] = k0
        self.nnodes[lid] += 1
        self.nr_allocated += 1
        if self.nr_allocated > self.nr_allocated_peak:
            self.nr_allocated_peak = self.nr_allocated
        return node

    def _free(self, node: int) -> None:
        self.nnodes[self.nlid[node]] -= 1
        self.nlid[node] = EMPTY
        self.nr_allocated -= 1
        self.free_node(node)

    # -- queries ------------------------------------------------------------------------
    def fingerprint_state(self) -> list:
        """Every array and counter of the trees (for bad-call tests)."""
        return [self.slots, self.occ, self.nlid, self.nlevel, self.nk0, self.root, self.height, self.bias,
                self.head, self.tail, self.count, self.headval, self.nnodes, self.nr_allocated, self._free_ids,
                self._next_id]

    def __len__(self) -> int:
        return sum(self.count)

    def first(self, lid: int) -> int:
        """Value at the head, or -1."""
        return self.headval[lid]

    def key_range_ok(self, lid: int) -> bool:
        return self.count[lid] == 0 or self.head[lid] < self.tail[lid]

    def nodes_needed(self, lid: int, k: int) -> int:
        """How many new nodes inserting key ``k`` takes (0 if the path exists)."""
        r = self.root[lid]
        if r < 0:
            return 1
        S = self.S
        h = self.height[lid]
        u = k + self.bias[lid]
        hh = h
        while u < 0 or u >= 1 << (S * hh):
            if u < 0:
                u += self.HALF << (S * hh)
            hh += 1
        if hh > h:
            return (hh - h) + (hh - 1)
        slots = self.slots
        F = self.F
        M = self.M
        node = r
        level = h
        while level > 1:
            child = slots[node * F + ((u >> (S * (level - 1))) & M)]
            if child < 0:
                return level - 1
            node = child
            level -= 1
        return 0

    def lookup(self, lid: int, k: int) -> int:
        """Value stored at key ``k`` or -1."""
        r = self.root[lid]
        if r < 0:
            return EMPTY
        S = self.S
        h = self.height[lid]
        u = k + self.bias[lid]
        if u < 0 or u >= 1 << (S * h):
            return EMPTY
        slots = self.slots
        F = self.F
        M = self.M
        node = r
        level = h
        while level > 1:
            node = slots[node * F + ((u >> (S * (level - 1))) & M)]
            if node < 0:
                return EMPTY
            level -= 1
        return slots[node * F + (u & M)]

    # -- updates --------------------------------------------------------------------------
    def insert(self, lid: int, k: int, value: int) -> None:
        """Store ``value`` (>= 0) at the free key ``k``; nodes come from alloc_node."""
        F = self.F
        S = self.S
        M = self.M
        slots = self.slots
        occ = self.occ
        r = self.root[lid]
        if r < 0:
            self.bias[lid] = self.HALF - k
            r = self._new(lid, 1, k - self.HALF)
            self.root[lid] = r
            self.height[lid] = 1
        h = self.height[lid]
        bias = self.bias[lid]
        u = k + bias
        while u < 0 or u >= 1 << (S * h):
            if u < 0:
                shift = self.HALF << (S * h)
                bias += shift
                u += shift
                j = self.HALF
            else:
                j = 0
            h += 1
            n = self._new(lid, h, -bias)
            slots[n * F + j] = r
            occ[n] = 1 << j
            r = n
        self.root[lid] = r
        self.height[lid] = h
        self.bias[lid] = bias
        node = r
        level = h
        while level > 1:
            sh = S * (level - 1)
            s = (u >> sh) & M
            child = slots[node * F + s]
            if child < 0:
                child = self._new(lid, level - 1, ((u >> sh) << sh) - bias)
                slots[node * F + s] = child
                occ[node] |= 1 << s
            node = child
            level -= 1
        s = u & M
        i = node * F + s
        if slots[i] >= 0:
            raise KeyError(f"deque {lid}: key {k} is occupied")
        slots[i] = value
        occ[node] |= 1 << s
        c = self.count[lid]
        self.count[lid] = c + 1
        if c == 0:
            self.head[lid] = k
            self.tail[lid] = k + 1
            self.headval[lid] = value
        else:
            if k < self.head[lid]:
                self.head[lid] = k
                self.headval[lid] = value
            if k >= self.tail[lid]:
                self.tail[lid] = k + 1

    def push_head_key(self, lid: int) -> int:
        """Key a head push uses (list_add)."""
        return self.head[lid] - 1 if self.count[lid] else 0

    def push_tail_key(self, lid: int) -> int:
        """Key a tail push uses (list_add_tail)."""
        return self.tail[lid] if self.count[lid] else 0

    def remove(self, lid: int, k: int) -> int:
        """Remove and return the value at key ``k``; frees emptied nodes, shrinks."""
        F = self.F
        S = self.S
        M = self.M
        slots = self.slots
        occ = self.occ
        r = self.root[lid]
        h = self.height[lid]
        u = k + self.bias[lid]
        if r < 0 or u < 0 or u >= 1 << (S * h):
            raise KeyError(f"deque {lid}: key {k} not present")
        path = []
        node = r
        level = h
        while level > 1:
            s = (u >> (S * (level - 1))) & M
            path.append(node * F + s)
            node = slots[node * F + s]
            if node < 0:
                raise KeyError(f"deque {lid}: key {k} not present")
            level -= 1
        i = node * F + (u & M)
        value = slots[i]
        if value < 0:
            raise KeyError(f"deque {lid}: key {k} not present")
        slots[i] = EMPTY
        occ[node] &= ~(1 << (u & M))
        while not occ[node]:
            self._free(node)
            if not path:
                self.root[lid] = EMPTY
                self.height[lid] = 0
                break
            pi = path.pop()
            slots[pi] = EMPTY
            node = pi // F
            occ[node] &= ~(1 << (pi & M))
        c = self.count[lid] - 1
        self.count[lid] = c
        if c == 0:
            self.head[lid] = self.tail[lid] = 0
            self.headval[lid] = EMPTY
            return value
        if k == self.head[lid]:
            self.head[lid], self.headval[lid] = self._next(lid, k + 1)
        elif k == self.tail[lid] - 1:
            self.tail[lid] = self._prev(lid, k - 1)[0] + 1
        # collapse a root with a single child (the kernel's radix_tree_shrink, any slot)
        r = self.root[lid]
        h = self.height[lid]
        while h > 1:
            b = occ[r]
            if b & (b - 1):
                break
            j = b.bit_length() - 1
            child = slots[r * F + j]
            slots[r * F + j] = EMPTY
            occ[r] = 0
            self._free(r)
            self.bias[lid] -= j << (S * (h - 1))
            r = child
            h -= 1
        self.root[lid] = r
        self.height[lid] = h
        return value

    def pop_head(self, lid: int) -> int:
        """Remove and return the head value (or -1 if empty)."""
        if not self.count[lid]:
            return EMPTY
        return self.remove(lid, self.head[lid])

    def _next(self, lid: int, k: int) -> tuple[int, int]:
        """(key, value) of the first entry with key >= k, or (0, -1)."""
        F = self.F
        S = self.S
        M = self.M
        slots = self.slots
        occ = self.occ
        bias = self.bias[lid]
        node = self.root[lid]
        level = self.height[lid]
        if node < 0:
            return 0, EMPTY
        u = max(k + bias, 0)
        if u >= 1 << (S * level):
            return 0, EMPTY
        stack = []
        while True:
            sh = S * (level - 1)
            s = (u >> sh) & M
            bits = occ[node] >> s
            if bits:
                j = s + (bits & -bits).bit_length() - 1
                if j != s:
                    u = (((u >> sh) - s + j) << sh)
                if level == 1:
                    return u - bias, slots[node * F + j]
                stack.append(node)
                node = slots[node * F + j]
                level -= 1
                continue
            while True:
                if not stack:
                    return 0, EMPTY
                node = stack.pop()
                level += 1
                sh = S * (level - 1)
                if (u >> sh) & M < M:
                    u = ((u >> sh) + 1) << sh
                    break

    def _prev(self, lid: int, k: int) -> tuple[int, int]:
        """(key, value) of the last entry with key <= k, or (0, -1)."""
        F = self.F
        S = self.S
        M = self.M
        slots = self.slots
        occ = self.occ
        bias = self.bias[lid]
        node = self.root[lid]
        level = self.height[lid]
        if node < 0:
            return 0, EMPTY
        u = min(k + bias, (1 << (S * level)) - 1)
        if u < 0:
            return 0, EMPTY
        stack = []
        while True:
            sh = S * (level - 1)
            s = (u >> sh) & M
            bits = occ[node] & ((2 << s) - 1)
            if bits:
                j = bits.bit_length() - 1
                if j != s:
                    u = (((u >> sh) - s + j + 1) << sh) - 1
                if level == 1:
                    return u - bias, slots[node * F + j]
                stack.append(node)
                node = slots[node * F + j]
                level -= 1
                continue
            while True:
                if not stack:
                    return 0, EMPTY
                node = stack.pop()
                level += 1
                sh = S * (level - 1)
                if (u >> sh) & M > 0:
                    u = ((u >> sh) << sh) - 1
                    break

    # -- walks ------------------------------------------------------------------------------
    def items(self, lid: int) -> Iterator[tuple[int, int]]:
        """(key, value) pairs head to tail."""
        r = self.root[lid]
        if r < 0:
            return
        yield from self._walk(r, self.height[lid], -self.bias[lid])

    def _walk(self, node: int, level: int, base: int) -> Iterator[tuple[int, int]]:
        F = self.F
        slots = self.slots
        b = self.occ[node]
        span = 1 << (self.S * (level - 1))
        while b:
            j = (b & -b).bit_length() - 1
            b &= b - 1
            v = slots[node * F + j]
            if level == 1:
                yield base + j, v
            else:
                yield from self._walk(v, level - 1, base + j * span)

    def values(self, lid: int) -> Iterator[int]:
        for _, v in self.items(lid):
            yield v

    def nodes(self, lid: int) -> list[int]:
        """Every node of deque ``lid`` (pre-order)."""
        out: list[int] = []
        r = self.root[lid]
        if r < 0:
            return out
        stack = [(r, self.height[lid])]
        F = self.F
        while stack:
            node, level = stack.pop()
            out.append(node)
            if level > 1:
                b = self.occ[node]
                while b:
                    j = (b & -b).bit_length() - 1
                    b &= b - 1
                    stack.append((self.slots[node * F + j], level - 1))
        return out

    def clear(self, lid: int) -> list[tuple[int, int]]:
        """Empty deque ``lid`` (freeing its nodes); returns its (key, value) pairs."""
        items = list(self.items(lid))
        F = self.F
        for node in self.nodes(lid):
            base = node * F
            b = self.occ[node]
            while b:
                j = (b & -b).bit_length() - 1
                b &= b - 1
                self.slots[base + j] = EMPTY
            self.occ[node] = 0
            self._free(node)
        self.root[lid] = EMPTY
        self.height[lid] = 0
        self.count[lid] = 0
        self.head[lid] = self.tail[lid] = 0
        self.headval[lid] = EMPTY
        return items

    def move_node(self, old: int, new: int) -> None:
        """Copy node ``old`` into the unused id ``new`` and rewrite the one slot
        (or root) that points at it: relocating a node page."""
        F = self.F
        S = self.S
        lid = self.nlid[old]
        self.slots[new * F:(new + 1) * F] = self.slots[old * F:(old + 1) * F]
        self.occ[new] = self.occ[old]
        self.nlid[new] = lid
        self.nlevel[new] = self.nlevel[old]
        self.nk0[new] = self.nk0[old]
        if self.root[lid] == old:
            self.root[lid] = new
        else:
            u = self.nk0[old] + self.bias[lid]
            node = self.root[lid]
            level = self.height[lid]
            target = self.nlevel[old] + 1
            while level > target:
                node = self.slots[node * F + ((u >> (S * (level - 1))) & self.M)]
                level -= 1
            i = node * F + ((u >> (S * (level - 1))) & self.M)
            if self.slots[i] != old:
                raise RuntimeError(f"move_node: parent slot of node {old} not found")
            self.slots[i] = new
        self.slots[old * F:(old + 1) * F] = array("q", [EMPTY]) * F
        self.occ[old] = 0
        self.nlid[old] = EMPTY

    # -- self-check ---------------------------------------------------------------------------
    def verify(self, lid: int) -> list[str]:
        """Structural invariants of one deque (empty list when sound)."""
        errs: list[str] = []
        r = self.root[lid]
        if r < 0:
            if self.count[lid] or self.headval[lid] != EMPTY or self.nnodes[lid]:
                errs.append(f"deque {lid}: empty tree but count {self.count[lid]}, nodes {self.nnodes[lid]}")
            return errs
        F = self.F
        nodes = self.nodes(lid)
        if len(nodes) != self.nnodes[lid]:
            errs.append(f"deque {lid}: {len(nodes)} nodes reachable, {self.nnodes[lid]} counted")
        for node in nodes:
            b = 0
            for j in range(F):
                if self.slots[node * F + j] >= 0:
                    b |= 1 << j
            if b != self.occ[node]:
                errs.append(f"deque {lid}: node {node} occupancy bitmap {self.occ[node]:#x} != slots {b:#x}")
            if not b:
                errs.append(f"deque {lid}: empty node {node} not freed")
            if self.nlid[node] != lid:
                errs.append(f"deque {lid}: node {node} belongs to deque {self.nlid[node]}")
        if self.height[lid] > 1 and not self.occ[r] & (self.occ[r] - 1):
            errs.append(f"deque {lid}: root with a single child was not collapsed")
        items = list(self.items(lid))
        if len(items) != self.count[lid]:
            errs.append(f"deque {lid}: {len(items)} entries, count {self.count[lid]}")
        elif items:
            if items[0][0] != self.head[lid] or items[0][1] != self.headval[lid]:
                errs.append(f"deque {lid}: head {self.head[lid]}/{self.headval[lid]} != first {items[0]}")
            if items[-1][0] + 1 != self.tail[lid]:
                errs.append(f"deque {lid}: tail {self.tail[lid]} != last key {items[-1][0]} + 1")
        return errs


def dense_nodes_bound(n: int, fanout: int) -> int:
    """Upper bound on the nodes ``n`` consecutive keys need (renumbering): at each
    level at most ceil(width / F) + 1 nodes (one extra for alignment)."""
    shift = fanout.bit_length() - 1
    levels = max(n, 1).bit_length() // shift + 2
    return sum(-(-n // (1 << (shift * lv))) + 1 for lv in range(1, levels + 1))


__all__ = ["RadixDeques", "EMPTY", "dense_nodes_bound"]
