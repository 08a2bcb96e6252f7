"""Radix-tree deques (designs/radix_tree.py), in the spirit of the kernel's userspace
radix-tree test suite (tools/testing/radix-tree): every operation checked against a
model, and ``nr_allocated`` back to 0 once the trees are empty."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memdesc.designs.radix_tree import EMPTY, RadixDeques, dense_nodes_bound


def sound(t: RadixDeques) -> None:
    for lid in range(len(t.root)):
        assert t.verify(lid) == []


def test_fanout_must_be_power_of_two():
    with pytest.raises(ValueError):
        RadixDeques(1, fanout=48)
    with pytest.raises(ValueError):
        RadixDeques(1, fanout=1)


def test_push_both_ends_pop_head_is_list_first_entry():
    """list_add = push head, list_add_tail = push tail, list_first_entry = head."""
    t = RadixDeques(1, fanout=4)
    ref: deque[int] = deque()
    for v in range(50):
        if v % 3:
            t.insert(0, t.push_tail_key(0), v)
            ref.append(v)
        else:
            t.insert(0, t.push_head_key(0), v)
            ref.appendleft(v)
        assert t.first(0) == ref[0]
    assert list(t.values(0)) == list(ref)
    sound(t)
    while ref:
        assert t.pop_head(0) == ref.popleft()
        sound(t)
    assert t.first(0) == EMPTY and t.pop_head(0) == EMPTY
    assert t.nr_allocated == 0


def test_remove_by_index_from_the_middle():
    t = RadixDeques(2, fanout=8)
    keys = {}
    for v in range(200):
        k = t.push_tail_key(1)
        t.insert(1, k, 1000 + v)
        keys[1000 + v] = k
    for v in range(1000, 1200, 3):
        assert t.remove(1, keys.pop(v)) == v
    assert list(t.values(1)) == sorted(keys)
    assert t.first(1) == 1001
    assert t.lookup(1, keys[1001]) == 1001
    assert t.lookup(1, 10**9) == EMPTY
    with pytest.raises(KeyError):
        t.remove(1, keys[1001] - 1)  # removed already
    sound(t)
    assert t.count[0] == 0 and t.root[0] == EMPTY


def test_height_grows_and_shrinks_and_nodes_are_freed():
    """Consecutive keys: height = ceil(log_F(n)) (+1 for alignment); draining from
    either end collapses the root and frees every node (nr_allocated -> 0)."""
    F = 4
    t = RadixDeques(1, fanout=F)
    heights = []
    for v in range(F ** 4):
        t.insert(0, t.push_tail_key(0), v)
        heights.append(t.height[0])
    assert heights == sorted(heights)  # never shrinks while growing
    assert 4 <= t.height[0] <= 5
    peak = t.nr_allocated
    assert peak >= F ** 3  # at least one leaf per F entries
    # head pushes below the first key grow the tree leftwards (bias)
    for v in range(F ** 3):
        t.insert(0, t.push_head_key(0), 10**6 + v)  # values are >= 0 (pfns)
    assert t.first(0) == 10**6 + F ** 3 - 1 and t.head[0] == -(F ** 3)
    sound(t)
    # drain from the tail end: the tree shrinks as the right subtrees empty
    while t.count[0] > F:
        t.remove(0, t.tail[0] - 1)
    sound(t)
    assert t.height[0] <= 2
    while t.count[0]:
        t.pop_head(0)
    assert (t.nr_allocated, t.height[0], t.root[0]) == (0, 0, EMPTY)
    assert t.nr_allocated_peak >= peak


def test_nodes_needed_predicts_insert():
    rng = random.Random(5)
    t = RadixDeques(1, fanout=4)
    live = {}
    for step in range(3000):
        if live and rng.random() < 0.4:
            k = rng.choice(list(live))
            t.remove(0, k)
            del live[k]
        else:
            k = t.push_head_key(0) if rng.random() < 0.5 else t.push_tail_key(0)
            if rng.random() < 0.1:
                k += rng.choice([-40, 40])  # sparse keys: growth by several levels
                if k in live:
                    continue
            need = t.nodes_needed(0, k)
            before = t.nr_allocated
            t.insert(0, k, step)
            live[k] = step
            assert t.nr_allocated - before == need
    sound(t)


def test_allocation_callbacks_and_failure():
    """Nodes come from the caller (the page allocator packs them into pages)."""
    pool = list(range(5))
    freed = []
    t = RadixDeques(1, fanout=4, alloc_node=lambda: pool.pop() if pool else -1, free_node=freed.append)
    t.reserve_ids(5)
    t.insert(0, 0, 7)
    assert t.nodes_needed(0, 1) == 0
    t.insert(0, 1, 8)
    need = t.nodes_needed(0, 100)
    assert need > len(pool)
    with pytest.raises(MemoryError):
        t.insert(0, 100, 9)  # callers must check nodes_needed first


def test_move_node_rewrites_the_parent_slot():
    t = RadixDeques(1, fanout=4)
    for v in range(100):
        t.insert(0, t.push_tail_key(0), v)
    for node in t.nodes(0):
        new = t._default_alloc()
        t.move_node(node, new)
        t._default_free(node)
        sound(t)
    assert list(t.values(0)) == list(range(100))
    for _ in range(100):
        t.pop_head(0)
    assert t.nr_allocated == 0


def test_clear_returns_items_and_frees_nodes():
    t = RadixDeques(3, fanout=8)
    for v in range(70):
        t.insert(2, t.push_head_key(2), v)
    items = t.clear(2)
    assert [v for _, v in items] == list(range(69, -1, -1))
    assert t.nr_allocated == 0 and t.first(2) == EMPTY
    assert dense_nodes_bound(70, 8) >= 70 // 8 + 2


def test_random_long_run_against_dict_model():
    """The suite's `-l` long run, shortened: random ops on many deques."""
    rng = random.Random(1)
    for F in (2, 8, 64):
        t = RadixDeques(4, fanout=F)
        models: list[dict[int, int]] = [{} for _ in range(4)]
        for step in range(6000):
            lid = rng.randrange(4)
            m = models[lid]
            r = rng.random()
            if r < 0.3:
                k = t.push_tail_key(lid)
            elif r < 0.55:
                k = t.push_head_key(lid)
            else:
                k = None
            if k is not None:
                t.insert(lid, k, step)
                m[k] = step
            elif m and r < 0.8:
                k = rng.choice(list(m))
                assert t.remove(lid, k) == m.pop(k)
            elif m:
                assert t.pop_head(lid) == m.pop(min(m))
            assert t.first(lid) == (m[min(m)] if m else EMPTY)
            if step % 1000 == 0:
                sound(t)
        for lid, m in enumerate(models):
            assert list(t.items(lid)) == sorted(m.items())
            for k in list(m):
                t.remove(lid, k)
        assert t.nr_allocated == 0


ops = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 10**6)), max_size=300)


@settings(max_examples=60, deadline=None)
@given(ops=ops, fanout=st.sampled_from([2, 4, 64]))
def test_differential_against_collections_deque(ops, fanout):
    """push head / push tail / pop head / remove-by-index agree with collections.deque."""
    t = RadixDeques(2, fanout=fanout)
    refs: list[deque[tuple[int, int]]] = [deque(), deque()]
    for op, lid2, x in ops:
        lid = lid2 & 1
        ref = refs[lid]
        if op == 0:
            k = t.push_head_key(lid)
            t.insert(lid, k, x)
            ref.appendleft((k, x))
        elif op == 1:
            k = t.push_tail_key(lid)
            t.insert(lid, k, x)
            ref.append((k, x))
        elif op == 2:
            assert t.pop_head(lid) == (ref.popleft()[1] if ref else EMPTY)
        elif ref:
            i = x % len(ref)
            k, v = ref[i]
            del ref[i]
            assert t.remove(lid, k) == v
        assert list(t.items(lid)) == list(ref)
        assert t.first(lid) == (ref[0][1] if ref else EMPTY)
    sound(t)
    for lid in range(2):
        while t.count[lid]:
            t.pop_head(lid)
    assert t.nr_allocated == 0
