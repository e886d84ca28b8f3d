"""Traffic profiles (the paper's patterns) and schedules: sequences of phases (profile, load,
duration) from a YAML or JSON file or built in. Load is relative to link capacity: at load 1.0
the most shared link of the flow set is offered exactly its capacity; above 1.0 it congests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("constant", "exponential", "poisson", "uniform")
PROTOCOLS = ("TCP", "UDP")
#: A schedule's flows keep their host pairs for the whole run, or change them every phase.
PAIRS = ("run", "phase")


class ScheduleError(ValueError):
    """A schedule that cannot be run (one clear message)."""


@dataclass(frozen=True)
class Profile:
    name: str
    protocol: str
    idt: str
    size: str
    mean_size: int = 512


PROFILES = {
    "exponential": Profile("exponential", "TCP", "exponential", "exponential"),
    "poisson": Profile("poisson", "TCP", "poisson", "poisson"),
    "uniform": Profile("uniform", "TCP", "uniform", "uniform"),
    "deterministic": Profile("deterministic", "UDP", "constant", "constant"),
}


@dataclass(frozen=True)
class Phase:
    profile: Profile
    load: float
    duration_s: float


@dataclass(frozen=True)
class Schedule:
    name: str
    phases: tuple[Phase, ...]
    flows: int = 6
    seed: int = 1
    notes: tuple[str, ...] = field(default=())
    #: Whose host pairs the flows run between: "run", one flow set for every phase (the same paths
    #: under each load and profile), or "phase", each phase its own (`traffic.flowset.phase_pairs`).
    pairs: str = "run"

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def scaled_to(self, total_s: float) -> Schedule:
        """The same phases, durations scaled so the schedule lasts `total_s` seconds."""
        if not total_s > 0:
            raise ScheduleError(f"duration must be positive, got {total_s}")
        f = total_s / self.duration_s
        return replace(self, phases=tuple(replace(p, duration_s=p.duration_s * f) for p in self.phases))

    def to_dict(self) -> dict[str, Any]:
        phases = []
        for p in self.phases:
            d = {"profile": p.profile.name} if p.profile.name in PROFILES else {}
            phases.append({**d, "protocol": p.profile.protocol, "idt": p.profile.idt, "size": p.profile.size,
                           "mean_size": p.profile.mean_size, "load": p.load, "duration_s": p.duration_s})
        out = {"name": self.name, "flows": self.flows, "seed": self.seed, "phases": phases}
        return out if self.pairs == "run" else {**out, "pairs": self.pairs}  # unchanged for one flow set


BUILTIN: dict[str, dict[str, Any]] = {
    # the paper's patterns, loads and D-ITG packet sizes (bytes), but Poisson at 512 rather than
    # its 2048: with Poisson-distributed sizes near a full frame, ITGSend spins on congested paths
    "paper-drift": {"flows": 6, "phases": [
        {"profile": "exponential", "load": 0.5, "mean_size": 1024, "duration_s": 60},
        {"profile": "poisson", "load": 0.6, "mean_size": 512, "duration_s": 60},
        {"profile": "uniform", "load": 0.5, "mean_size": 512, "duration_s": 60},
        {"profile": "deterministic", "load": 1.2, "mean_size": 512, "duration_s": 60},
    ]},
    "two-phase": {"flows": 6, "phases": [
        {"profile": "deterministic", "load": 0.3, "duration_s": 30},
        {"profile": "deterministic", "load": 0.9, "duration_s": 30},
    ]},
    # `ndt demo` / `make demo`: a few minutes, two drifts (UDP to TCP traffic, then a load jump),
    # then UDP over the busiest link's capacity, where the loop's optimizer proposes a plan
    "demo-drift": {"flows": 6, "phases": [
        {"profile": "deterministic", "load": 0.3, "duration_s": 60},
        {"profile": "exponential", "load": 0.5, "duration_s": 100},
        {"profile": "exponential", "load": 0.9, "duration_s": 100},
        {"profile": "deterministic", "load": 1.4, "duration_s": 90},
    ]},
    "steady": {"flows": 6, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 60}]},
    # every pattern at four load levels: a training set that spans the space
    "dataset": {"flows": 10, "phases": [
        {"profile": prof, "load": load, "duration_s": 20}
        for load in (0.3, 0.6, 0.9, 1.2) for prof in ("exponential", "poisson", "uniform", "deterministic")
    ]},
}


def load_schedule(spec: str) -> Schedule:
    """A built-in name or a path to a .yaml/.yml/.json schedule file."""
    if spec in BUILTIN:
        return parse(BUILTIN[spec], spec)
    path = Path(spec)
    if not path.exists():
        raise ScheduleError(f"unknown schedule {spec!r}: not built in ({', '.join(BUILTIN)}) and no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ScheduleError(f"{path.name}: unknown schedule format; use .yaml, .yml or .json")
    except ScheduleError:
        raise
    except Exception as exc:  # yaml and json raise their own types
        raise ScheduleError(f"{path.name}: not valid {path.suffix[1:].upper()}: "
                            f"{str(exc).splitlines()[0]}") from None
    return parse(data, path.stem)


def check_pairs(pairs: Any) -> str:
    """`pairs` if it is one of PAIRS, else a ScheduleError saying which are."""
    if pairs not in PAIRS:
        raise ScheduleError(f"pairs must be one of {', '.join(PAIRS)}, got {pairs!r}")
    return pairs


def parse(data: Any, name: str) -> Schedule:
    if not isinstance(data, dict):
        raise ScheduleError(f"schedule {name}: must be a mapping with 'phases'")
    unknown = set(data) - {"name", "flows", "seed", "phases", "pairs"}
    if unknown:
        raise ScheduleError(f"schedule {name}: unknown key(s) {', '.join(sorted(unknown))}")
    phases = data.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ScheduleError(f"schedule {name}: the phase list is empty")
    flows = _number(data.get("flows", 6), "flows", name, integer=True)
    if not 1 <= flows <= 90:
        raise ScheduleError(f"schedule {name}: flows must be between 1 and 90, got {flows}")
    seed = _number(data.get("seed", 1), "seed", name, integer=True)
    pairs = data.get("pairs", "run")
    try:
        check_pairs(pairs)
    except ScheduleError as exc:
        raise ScheduleError(f"schedule {name}: {exc}") from None
    return Schedule(name=str(data.get("name", name)), flows=int(flows), seed=int(seed),
                    phases=tuple(parse_phase(p, i, name) for i, p in enumerate(phases)), pairs=pairs)


def parse_phase(p: Any, i: int, name: str) -> Phase:
    """One phase of a schedule (or of a corpus run: `name` says where, for the error messages)."""
    where = f"schedule {name}, phase {i + 1}"
    if not isinstance(p, dict):
        raise ScheduleError(f"{where}: must be a mapping")
    unknown = set(p) - {"profile", "protocol", "idt", "size", "mean_size", "load", "duration_s"}
    if unknown:
        raise ScheduleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    base = p.get("profile")
    if base is not None and base not in PROFILES:
        raise ScheduleError(f"{where}: unknown profile {base!r}; use one of {', '.join(PROFILES)}")
    prof = PROFILES[base] if base else Profile("custom", "UDP", "constant", "constant")
    proto = str(p.get("protocol", prof.protocol)).upper()
    if proto not in PROTOCOLS:
        raise ScheduleError(f"{where}: unknown protocol {p.get('protocol')!r}; use TCP or UDP")
    for key in ("idt", "size"):
        dist = p.get(key, getattr(prof, key))
        if dist not in DISTRIBUTIONS:
            raise ScheduleError(f"{where}: unknown distribution {dist!r} for {key}; "
                                f"use one of {', '.join(DISTRIBUTIONS)}")
    mean_size = _number(p.get("mean_size", prof.mean_size), "mean_size", where, integer=True)
    if not 64 <= mean_size <= 1400:
        raise ScheduleError(f"{where}: mean_size must be between 64 and 1400 bytes, got {mean_size}")
    if "load" not in p or "duration_s" not in p:
        raise ScheduleError(f"{where}: needs 'load' and 'duration_s'")
    load = _number(p["load"], "load", where)
    if not 0 < load <= 5:
        raise ScheduleError(f"{where}: load must be a positive rate relative to capacity (0 < load <= 5), got {load}")
    duration = _number(p["duration_s"], "duration_s", where)
    if not duration > 0:
        raise ScheduleError(f"{where}: duration_s must be positive, got {duration}")
    size = p.get("size", prof.size)
    if proto == "UDP" and size == "exponential":
        raise ScheduleError(f"{where}: UDP with exponentially distributed sizes sends datagrams over the "
                            f"1472-byte MTU payload that IP fragments (1 in {round(math.exp(1472 / mean_size))} at "
                            f"mean {mean_size}); the switches cannot match fragments to their flow, which broke "
                            "that phase's labels and the next one's TCP set-up; use size constant, uniform or poisson")
    profile = Profile(base or "custom", proto, p.get("idt", prof.idt), size, int(mean_size))
    return Phase(profile, float(load), float(duration))


#: The ports a run's flows use: phase p's flow n sends its data to DATA_PORT_BASE + 100 p + n and
#: D-ITG signals on SIGNALING_PORT_BASE + 100 p + n, so a counted flow tells which phase it is of.
DATA_PORT_BASE, SIGNALING_PORT_BASE = 10000, 30000


def data_port(phase: int, flow_no: int) -> int:
    return DATA_PORT_BASE + phase * 100 + flow_no


def signaling_port(phase: int, flow_no: int) -> int:
    return SIGNALING_PORT_BASE + phase * 100 + flow_no


def phase_of_data_port(port: int | None) -> int | None:
    """The phase whose flow sends to `port` (`data_port`), None for another port."""
    if isinstance(port, int) and DATA_PORT_BASE <= port < SIGNALING_PORT_BASE:
        return (port - DATA_PORT_BASE) // 100
    return None


def phase_process(schedule: Any, phase: int | None) -> str:
    """The inter-departure process (`idt`) of a stored schedule's phase (`Schedule.to_dict`), "" where
    it does not say. A run imported from the paper's datasets stores the one pattern it ran."""
    if not isinstance(schedule, dict):
        return ""
    phases = schedule.get("phases")
    if isinstance(phases, list):
        p = phases[phase] if isinstance(phase, int) and 0 <= phase < len(phases) else None
        idt = p.get("idt") if isinstance(p, dict) else None
        return idt if idt in DISTRIBUTIONS else ""
    prof = PROFILES.get(schedule.get("pattern"))
    return prof.idt if prof else ""


def _number(value: Any, key: str, where: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScheduleError(f"{where}: {key} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ScheduleError(f"{where}: {key} must be a whole number, got {value!r}")
    return value
