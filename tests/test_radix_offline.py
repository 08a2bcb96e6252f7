"""The thread's question, end to end: can ZONE_MOVABLE still be offlined when the
free lists are radix trees? Under `self` the freed page hosts tree nodes and
offline fails on them; under `movable-nodes` the allocator relocates its own nodes
and offline succeeds; the default `reserve` never puts nodes there."""

import pytest

from memdesc.driver.boot import new_allocator
from memdesc.driver.mmops import MmOps
from memdesc.driver.runner import Runner
from memdesc.machine import parse_machine
from memdesc.mm.mmzone import ZoneType
from memdesc.mm.page_alloc import PageAllocator
from memdesc.workloads.synthetic import synthetic_events


def _run(policy: str) -> tuple[PageAllocator, list[int], dict]:
    a = new_allocator(parse_machine("x86_64:512M,movablecore=25%"), design="radix-deque", kernel="6.19",
                      design_options={"policy": policy})
    Runner(a).run(synthetic_events("mixed", 40000, 3, a.machine.present_pages))
    in_movable = [p for p in a.design.node_page_pfns() if a.zone_of(p).ztype == ZoneType.MOVABLE]
    return a, in_movable, MmOps(a).offline_all_movable()


def test_self_policy_blocks_offline_with_radix_nodes():
    a, in_movable, r = _run("self")
    assert in_movable, "self must have consumed freed ZONE_MOVABLE pages as tree nodes"
    assert r["offlined"] < r["blocks"]
    assert r["failures"][0]["kind"] == "metadata:radix-node"
    assert a.check(raise_on_error=False).counts["unmovable_meta_in_movable"] > 0


@pytest.mark.parametrize("policy", ["movable-nodes", "reserve"])
def test_offline_succeeds_when_nodes_are_movable_or_elsewhere(policy):
    a, in_movable, r = _run(policy)
    if policy == "reserve":
        assert not in_movable
    else:
        assert in_movable  # node pages did sit in ZONE_MOVABLE and were relocated
    assert r["blocks"] and r["offlined"] == r["blocks"], r["failures"]
    assert a.check(raise_on_error=False).ok
