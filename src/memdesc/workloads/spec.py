"""TOML workload specs: compose and parameterise synthetic profiles without code.

A spec has a ``[workload]`` table (name, seed, ops) and one or more ``[[phase]]``
tables run one after another. A phase names one ``profile`` (with ``params``) or a
``mix`` of profiles interleaved by weight; its op count is ``ops``, or a ``weight``
share of the ops no phase claimed explicitly. See docs/workloads-synthetic.md.

Handles stay unique across phases and mix members: every member stream gets its own
handle range. A ``Mark("phase <i>: <name>")`` starts every phase.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memdesc.workloads.events import Alloc, Event, Free, Mark
from memdesc.workloads.synthetic import PROFILES, SyntheticError, check_params, synthetic_events

__all__ = [
    "MixMember",
    "Phase",
    "SpecError",
    "WorkloadSpec",
    "load_workload_spec",
    "parse_workload_spec",
    "phase_ops",
    "spec_events",
]


class SpecError(ValueError):
    """A workload spec that cannot be read or is invalid; the message names the file
    and the offending key."""


@dataclass(frozen=True, slots=True)
class MixMember:
    """One profile of a phase, with its interleaving weight and merged parameters."""

    profile: str
    weight: float = 1.0
    params: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Phase:
    """A sequential phase: ``ops`` (None: a ``weight`` share of the unclaimed ops)."""

    name: str
    members: tuple[MixMember, ...]
    ops: int | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A parsed, validated workload spec."""

    name: str
    seed: int
    ops: int | None
    phases: tuple[Phase, ...]
    source: str = "<spec>"

    @property
    def total_ops(self) -> int:
        """Ops of the whole workload: ``ops``, or the sum of explicit phase ops."""
        if self.ops is not None:
            return self.ops
        return sum(p.ops or 0 for p in self.phases)


def load_workload_spec(path: str | Path) -> WorkloadSpec:
    """Read and validate a TOML workload spec file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise SpecError(f"{path}: cannot read workload spec: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: invalid TOML: {e}") from None
    return parse_workload_spec(data, str(path))


def _type_name(value: object) -> str:
    return type(value).__name__


def _get(table: dict, key: str, kinds: tuple[type, ...], where: str, default: object = None) -> object:
    """table[key] checked against ``kinds`` (bool never passes as a number)."""
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise SpecError(f"{where}.{key}: expected {want}, got {_type_name(value)} {value!r}")
    return value


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _member(table: object, where: str, src: str) -> MixMember:
    if not isinstance(table, dict):
        raise SpecError(f"{src}: {where}: expected a table, got {_type_name(table)}")
    _check_keys(table, {"profile", "weight", "params"}, f"{src}: {where}")
    profile = _get(table, "profile", (str,), f"{src}: {where}")
    if profile is None:
        raise SpecError(f"{src}: {where}.profile: missing")
    if profile not in PROFILES:
        raise SpecError(f"{src}: {where}.profile: unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    weight = float(_get(table, "weight", (int, float), f"{src}: {where}", 1.0))
    if weight <= 0:
        raise SpecError(f"{src}: {where}.weight: must be > 0, got {weight}")
    params = _get(table, "params", (dict,), f"{src}: {where}", {})
    try:
        check_params(profile, params, f"{where}.params")
    except SyntheticError as e:
        raise SpecError(f"{src}: {e}") from None
    return MixMember(profile, weight, dict(params))


def parse_workload_spec(data: dict, source: str = "<spec>") -> WorkloadSpec:
    """Validate a spec already parsed from TOML (``source`` names it in errors)."""
    _check_keys(data, {"workload", "phase"}, source)
    wl = _get(data, "workload", (dict,), source, {})
    _check_keys(wl, {"name", "seed", "ops"}, f"{source}: workload")
    name = _get(wl, "name", (str,), f"{source}: workload", Path(source).stem)
    seed = _get(wl, "seed", (int,), f"{source}: workload", 0)
    ops = _get(wl, "ops", (int,), f"{source}: workload")
    if ops is not None and ops < 0:
        raise SpecError(f"{source}: workload.ops: must be >= 0, got {ops}")
    raw_phases = _get(data, "phase", (list,), source)
    if not raw_phases:
        raise SpecError(f"{source}: phase: at least one [[phase]] table is required")
    phases: list[Phase] = []
    for i, ph in enumerate(raw_phases):
        where = f"phase[{i}]"
        if not isinstance(ph, dict):
            raise SpecError(f"{source}: {where}: expected a table, got {_type_name(ph)}")
        _check_keys(ph, {"name", "profile", "params", "mix", "ops", "weight"}, f"{source}: {where}")
        if ("profile" in ph) == ("mix" in ph):
            raise SpecError(f"{source}: {where}: give exactly one of 'profile' or 'mix'")
        if "mix" in ph:
            if "params" in ph:
                raise SpecError(f"{source}: {where}.params: put params inside each mix entry")
            mix = _get(ph, "mix", (list,), f"{source}: {where}")
            if not mix:
                raise SpecError(f"{source}: {where}.mix: must list at least one profile")
            members = tuple(_member(m, f"{where}.mix[{j}]", source) for j, m in enumerate(mix))
        else:
            m = {k: ph[k] for k in ("profile", "params") if k in ph}
            members = (_member(m, where, source),)
        p_ops = _get(ph, "ops", (int,), f"{source}: {where}")
        if p_ops is not None and p_ops < 0:
            raise SpecError(f"{source}: {where}.ops: must be >= 0, got {p_ops}")
        weight = float(_get(ph, "weight", (int, float), f"{source}: {where}", 1.0))
        if weight <= 0:
            raise SpecError(f"{source}: {where}.weight: must be > 0, got {weight}")
        pname = _get(ph, "name", (str,), f"{source}: {where}", "+".join(m.profile for m in members))
        phases.append(Phase(pname, members, p_ops, weight))
    explicit = sum(p.ops or 0 for p in phases)
    if ops is None and any(p.ops is None for p in phases):
        raise SpecError(f"{source}: workload.ops: required when a phase has no 'ops'")
    if ops is not None and explicit > ops:
        raise SpecError(f"{source}: workload.ops: {ops} is less than the phases' explicit ops ({explicit})")
    return WorkloadSpec(name, seed, ops, tuple(phases), source)


def _split(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` into integer shares proportional to ``weights`` (largest
    remainder, ties to the earlier entry), summing exactly to ``total``."""
    wsum = sum(weights)
    if total <= 0 or wsum <= 0:
        return [0] * len(weights)
    raw = [total * w / wsum for w in weights]
    out = [int(r) for r in raw]
    rest = total - sum(out)
    for i in sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))[:rest]:
        out[i] += 1
    return out


def phase_ops(spec: WorkloadSpec, ops_override: int | None = None) -> list[int]:
    """Ops of every phase: explicit ``ops`` first, the rest of ``workload.ops`` shared
    by weight among phases without; ``ops_override`` rescales the whole plan."""
    total = spec.total_ops
    free = [i for i, p in enumerate(spec.phases) if p.ops is None]
    counts = [p.ops or 0 for p in spec.phases]
    shares = _split(total - sum(counts), [spec.phases[i].weight for i in free])
    for i, n in zip(free, shares, strict=True):
        counts[i] = n
    if ops_override is not None:
        if ops_override < 0:
            raise SpecError(f"{spec.source}: ops override must be >= 0, got {ops_override}")
        if sum(counts):
            counts = _split(ops_override, [float(c) for c in counts])
        else:
            counts = _split(ops_override, [p.weight for p in spec.phases])
    return counts


def _member_seed(seed: int, phase: int, member: int) -> int:
    """A stable per-stream seed (string seeding hashes with SHA-512: platform-independent)."""
    return random.Random(f"memdesc:{seed}:{phase}:{member}").getrandbits(63)


def spec_events(
    spec: WorkloadSpec,
    total_pages: int,
    ops_override: int | None = None,
    seed_override: int | None = None,
) -> Iterator[Event]:
    """Lazily yield the spec's events: phase by phase, a Mark at each phase start;
    within a phase the members' streams interleave op by op at random, each member
    contributing a weight share of the phase's ops."""
    seed = spec.seed if seed_override is None else seed_override
    counts = phase_ops(spec, ops_override)
    next_handle = 0
    for i, (phase, n) in enumerate(zip(spec.phases, counts, strict=True)):
        yield Mark(f"phase {i}: {phase.name}", src=spec.source)
        shares = _split(n, [m.weight for m in phase.members])
        streams = []
        for j, (m, k) in enumerate(zip(phase.members, shares, strict=True)):
            streams.append(
                synthetic_events(
                    m.profile, k, _member_seed(seed, i, j), total_pages, m.params, first_handle=next_handle
                )
            )
            next_handle += 2 * k + 2  # synthetic_events' handle range bound
        if len(streams) == 1:
            yield from streams[0]
            continue
        yield from _interleave(streams, shares, random.Random(_member_seed(seed, i, -1)))


def _interleave(streams: list[Iterator[Event]], left: list[int], rng: random.Random) -> Iterator[Event]:
    """Merge member streams: each step picks a member with probability proportional
    to its remaining ops and passes its events through up to and including one op.
    A member's trailing non-op events follow its last op."""
    left = list(left)
    remaining = sum(left)
    rand = rng.random
    idx = list(range(len(streams)))
    for j in idx:
        if not left[j]:
            yield from streams[j]
    while remaining:
        r = int(rand() * remaining)
        j = 0
        while r >= left[j]:
            r -= left[j]
            j += 1
        for ev in streams[j]:
            yield ev
            if type(ev) is Alloc or type(ev) is Free:
                break
        left[j] -= 1
        remaining -= 1
        if not left[j]:
            yield from streams[j]
