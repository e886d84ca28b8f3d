"""A corpus spec: the YAML file that says which labeled runs a training corpus is made of
(`ndt dataset build SPEC`), parsed and checked before anything starts.

    name: base
    seed: 1
    phase_s: 12                       # seconds per phase
    loads: [0.3, 0.6, 0.9, 1.2]       # offered load of each phase, x the most shared link's capacity
    profiles: [exponential, poisson, uniform, deterministic, {profile: deterministic, protocol: TCP}]
    flows: 10                         # default flows per run
    pairs: run                        # one flow set a run (default), or `phase`: one a phase
    runs:
      - topology: Abilene             # anything `ndt lab up` takes
        queue: 16                     # buffer of links without one of their own (packets)
        max_mbps: 10                  # the fastest link emulated at this rate (default auto: see below)
        fail: 1                       # links taken out (never one whose loss cuts the network)
        flows: 12

Every run is one lab and one traffic run: its phases are every profile at every load (loads
ascending). Any top-level key but `name`, `seed` and `runs` may be overridden per run.

`max_mbps: auto` (the default) emulates the fastest link at the rate that keeps the run's busiest
phase within `FRAME_BUDGET` frames per second through the switches (every flow's packets times
the switches on its path, TCP's acknowledgements counted as half as many frames again), at most
the lab's own 20 Mbit/s: above that budget two cores' userspace switches fall behind, UDP phases
then lose their flows' counters and labels, and the labels describe the machine, not the network.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx

from topologies import Topology, TopologyError, load

from .schedule import Phase, Schedule, ScheduleError, check_pairs, parse_phase

BUILTIN_DIR = Path(__file__).resolve().parent / "corpora"
#: Keys a run may set; the same keys at the top level are every run's defaults.
RUN_KEYS = ("topology", "flows", "queue", "max_mbps", "fail", "seed", "phase_s", "loads", "profiles", "pairs")
TOP_KEYS = ("name", "seed", "runs", "phase_s", "loads", "profiles", "flows", "queue", "max_mbps", "fail", "pairs")
#: Frames per second through the switch daemons that two cores carry with room to spare (README,
#: "What runs out on PASSION": about 2,800 at 200 us of ovs-vswitchd CPU each).
FRAME_BUDGET = 2500.0
#: Frames per data frame of a TCP flow: its acknowledgements, one per two segments.
TCP_FRAMES = 1.5
DEFAULTS: dict[str, Any] = {"phase_s": 12.0, "loads": [0.3, 0.6, 0.9, 1.2], "flows": 10, "queue": None,
                            "max_mbps": "auto", "fail": 0,
                            "profiles": ["exponential", "poisson", "uniform", "deterministic"], "pairs": "run"}


class CorpusError(ValueError):
    """A corpus spec that cannot be built (one clear message)."""


@dataclass(frozen=True)
class CorpusRun:
    """One run of the campaign: its lab (topology, buffers, capacity, failed links) and schedule."""

    key: str  # "03-Abilene": position and topology, unique in the spec
    topology: Topology  # with the failed links taken out
    failed: tuple[str, ...]
    queue: int | None
    max_mbps: float | None
    schedule: Schedule
    fingerprint: str  # hash of what the run is made of: a resumed campaign checks it did not change

    def capacity_scale(self) -> str | float:
        """The lab's capacity scale: the fastest link at `max_mbps`, else the lab's own choice."""
        if self.max_mbps is None:
            return "auto"
        return self.max_mbps / max(lk.capacity_mbps for lk in self.topology.links)

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "topology": self.topology.name, "nodes": len(self.topology.nodes),
                "links": len(self.topology.links), "failed": list(self.failed), "queue": self.queue,
                "max_mbps": self.max_mbps, "flows": self.schedule.flows, "phases": len(self.schedule.phases),
                "seconds": self.schedule.duration_s}


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    source: str
    runs: tuple[CorpusRun, ...]

    @property
    def duration_s(self) -> float:
        return sum(r.schedule.duration_s for r in self.runs)


def builtin_specs() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_spec(spec: str) -> CorpusSpec:
    """A built-in corpus name (`traffic/corpora/NAME.yaml`) or a path to a YAML spec."""
    path = Path(spec)
    if not path.exists() and (BUILTIN_DIR / f"{spec}.yaml").exists():
        path = BUILTIN_DIR / f"{spec}.yaml"
    if not path.exists():
        raise CorpusError(f"unknown corpus spec {spec!r}: no such file and not built in "
                          f"({', '.join(builtin_specs()) or 'none'})")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        raise CorpusError(f"{path.name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, path)


def parse_spec(data: Any, path: Path) -> CorpusSpec:
    where = path.name
    if not isinstance(data, dict):
        raise CorpusError(f"{where}: must be a mapping with 'runs'")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"a spec has {', '.join(TOP_KEYS)}")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise CorpusError(f"{where}: 'runs' must be a non-empty list of runs")
    defaults = {**DEFAULTS, **{k: v for k, v in data.items() if k in DEFAULTS}}
    seed = _integer(data.get("seed", 1), "seed", where)
    out = [_run(r, i, defaults, seed, path) for i, r in enumerate(runs)]
    return CorpusSpec(name=str(data.get("name", path.stem)), source=str(path), runs=tuple(out))


def _run(entry: Any, i: int, defaults: dict[str, Any], seed: int, path: Path) -> CorpusRun:
    where = f"{path.name}, run {i + 1}"
    if isinstance(entry, str):
        entry = {"topology": entry}
    if not isinstance(entry, dict):
        raise CorpusError(f"{where}: must be a topology name or a mapping with 'topology'")
    unknown = sorted(set(entry) - set(RUN_KEYS))
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; a run has {', '.join(RUN_KEYS)}")
    if not entry.get("topology"):
        raise CorpusError(f"{where}: needs 'topology'")
    c = {**defaults, **entry}
    topo = _topology(str(c["topology"]), path, where)
    base_name = topo.name
    where = f"{path.name}, run {i + 1} ({topo.name})"
    flows = _integer(c["flows"], "flows", where)
    if not 1 <= flows <= 90:
        raise CorpusError(f"{where}: flows must be between 1 and 90, got {flows}")
    queue = None if c["queue"] is None else _integer(c["queue"], "queue", where)
    if queue is not None and queue < 1:
        raise CorpusError(f"{where}: queue must be at least 1 packet, got {queue}")
    auto = c["max_mbps"] in (None, "auto")
    max_mbps = None if auto else _number(c["max_mbps"], "max_mbps", where)
    if max_mbps is not None and not 0 < max_mbps <= 100:
        raise CorpusError(f"{where}: max_mbps must be 'auto' or in (0, 100], got {max_mbps}")
    run_seed = _integer(c.get("seed", seed + i), "seed", where)
    topo, failed = fail_links(topo, _integer(c["fail"], "fail", where), run_seed, where)
    phase_s = _number(c["phase_s"], "phase_s", where)
    if not phase_s >= 3:
        raise CorpusError(f"{where}: phase_s must be at least 3 seconds, got {phase_s}")
    loads, profiles = c["loads"], c["profiles"]
    if not isinstance(loads, list) or not loads:
        raise CorpusError(f"{where}: 'loads' must be a non-empty list")
    if not isinstance(profiles, list) or not profiles:
        raise CorpusError(f"{where}: 'profiles' must be a non-empty list")
    phases: list[Phase] = []
    for load_ in sorted(loads, key=lambda x: x if isinstance(x, int | float) else 0):
        for prof in profiles:
            p = {"profile": prof} if isinstance(prof, str) else prof
            if not isinstance(p, dict):
                raise CorpusError(f"{where}: a profile is a name or a mapping like a schedule's phase, got {prof!r}")
            try:
                phases.append(parse_phase({**p, "load": load_, "duration_s": phase_s}, len(phases), where))
            except ScheduleError as exc:
                raise CorpusError(str(exc).replace(f"schedule {where}", where)) from None
    try:
        check_pairs(c["pairs"])
    except ScheduleError as exc:
        raise CorpusError(f"{where}: {exc}") from None
    schedule = Schedule(name=f"corpus-{topo.name}", phases=tuple(phases), flows=flows, seed=run_seed,
                        pairs=c["pairs"])
    try:
        from .flowset import check_flow_count

        check_flow_count(topo, flows)
    except (ValueError, TopologyError) as exc:
        raise CorpusError(f"{where}: {exc}") from None
    if auto:
        max_mbps = auto_max_mbps(topo, schedule)
    key = f"{i + 1:02d}-{base_name}"
    body = {"topology": topo.to_dict(), "queue": queue, "max_mbps": max_mbps, "schedule": schedule.to_dict()}
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return CorpusRun(key, topo, failed, queue, max_mbps, schedule, fingerprint)


def busiest_frames(topo: Topology, schedule: Schedule, scale: float = 1.0) -> float:
    """Frames per second the switches receive in the schedule's busiest phase, the topology's
    capacities times `scale`: each flow's packets once per switch on its path."""
    from .flowset import flow_sets, per_flow_bps

    return max(scale * per_flow_bps(topo, pairs, p.load) / (8 * p.profile.mean_size)
               * sum(len(pair.links) + 1 for pair in pairs) * (TCP_FRAMES if p.profile.protocol == "TCP" else 1.0)
               for p, pairs in zip(schedule.phases, flow_sets(topo, schedule), strict=True))


def auto_max_mbps(topo: Topology, schedule: Schedule) -> float:
    """The fastest link's emulated rate that keeps the busiest phase within FRAME_BUDGET frames/s
    (at most the lab's automatic 20 Mbit/s)."""
    from ptwin.lab import AUTO_MAX_MBPS

    biggest = max(lk.capacity_mbps for lk in topo.links)
    scale = min(AUTO_MAX_MBPS / biggest, FRAME_BUDGET / busiest_frames(topo, schedule))
    return round(scale * biggest, 3)


def _topology(name: str, path: Path, where: str) -> Topology:
    beside = path.parent / name  # a file named relative to the spec
    try:
        return load(str(beside) if beside.suffix and beside.exists() else name)
    except TopologyError as exc:
        raise CorpusError(f"{where}: {exc}") from None


def fail_links(topo: Topology, n: int, seed: int, where: str = "") -> tuple[Topology, tuple[str, ...]]:
    """The topology without `n` links chosen by `seed` among those whose loss keeps it connected."""
    if n < 0:
        raise CorpusError(f"{where}: fail must be a count of links, got {n}")
    if n == 0:
        return topo, ()
    rng = random.Random(seed)
    links = list(topo.links)
    failed: list[str] = []
    for _ in range(n):
        bridges = {frozenset(e) for e in nx.bridges(replace(topo, links=tuple(links)).graph())}
        spare = [lk for lk in links if frozenset((lk.a, lk.b)) not in bridges]
        if not spare:
            raise CorpusError(f"{where}: cannot fail {n} link(s) of {topo.name} without cutting it")
        gone = rng.choice(spare)
        failed.append(gone.id)
        links.remove(gone)
    name = f"{topo.name}-without-{'-'.join(failed)}"
    notes = (*topo.notes, f"links {', '.join(failed)} failed for the corpus")
    return replace(topo, name=name, links=tuple(links), notes=notes), tuple(failed)


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorpusError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _integer(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorpusError(f"{where}: {key} must be a whole number, got {value!r}")
    return value
