"""Shared test fixtures: a private run directory and ports for every lab a test starts, and a
`lab` factory that brings a real lab up with the `ndt` command and always takes it down."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT.parent / "shared" / "topologyzoo"
PAPER_TOPOLOGIES = ROOT.parent / "shared" / "robust-ndt" / "topologies"
TEST_OF_PORT = 16653
TEST_REST_PORT = 18080


def lab_missing() -> str | None:
    """Why real labs cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (Mininet and Open vSwitch)"
    for prog in ("mnexec", "ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ethtool", "tc"):
        if shutil.which(prog) is None:
            return f"needs {prog} (run make install)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "needs Debian's mininet Python module (run make install)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `lab` starts real labs: skipped, with the reason, where they cannot run."""
    why = lab_missing()
    if why is not None:
        for item in items:
            if item.get_closest_marker("lab") is not None:
                item.add_marker(pytest.mark.skip(reason=why))


def ndt(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `ndt` command line."""
    r = subprocess.run([sys.executable, "-m", "apps", *args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"ndt {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def query_db(path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of a store another process writes (none while the table is not created yet)."""
    import sqlite3

    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def interruptible() -> None:
    """`preexec_fn` of a child a test interrupts with SIGINT (Ctrl-C): SIGINT back to its default.
    A shell's background job (`make test &`, nohup) starts with SIGINT ignored, its children
    inherit that, and Python then installs no KeyboardInterrupt handler: the child would never see
    the test's Ctrl-C (a `dataset build` ran to its end, exit 0; an `ndt run` ran on)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(topo: str, schedule: Path, data: Path, *extra: str) -> subprocess.Popen:
    """`ndt run` as our own process on the test ports (stop it with `stop_run`)."""
    return subprocess.Popen([sys.executable, "-m", "apps", "run", topo, "--schedule", str(schedule), "--data",
                             str(data), "--json", "--of-port", str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT),
                             *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_run(proc: subprocess.Popen, grace_s: float = 60) -> None:
    """Our own process (`ndt run`, `ndt serve`), if still running: SIGTERM (a run takes its lab
    down), then KILL after `grace_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(cond: Callable[[], object], timeout: float = 20.0, interval: float = 0.2, what: str = "") -> object:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        time.sleep(interval)


@pytest.fixture(scope="session", autouse=True)
def private_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Labs started by tests keep their state apart from a user's lab (own dir, own ports)."""
    d = tmp_path_factory.mktemp("run")
    saved = {k: os.environ.get(k) for k in ("NDT_RUN_DIR", "NDT_CONTROLLER", "NDT_TOPOLOGY_PATH")}
    os.environ.update({"NDT_RUN_DIR": str(d), "NDT_CONTROLLER": f"http://127.0.0.1:{TEST_REST_PORT}",
                       "NDT_TOPOLOGY_PATH": f"{ZOO}:{PAPER_TOPOLOGIES}"})
    yield d
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def lab_recorded() -> bool:
    """True when the suite's private run directory records a lab (up, starting or dead)."""
    return (Path(os.environ["NDT_RUN_DIR"]) / "lab" / "state.json").exists()


def take_lab_down() -> None:
    """`ndt lab down` on the suite's private run directory if it records a lab; one failed test's
    lab must not make the next test's `lab up` fail."""
    if lab_recorded():
        ndt("lab", "down", check=False, timeout=180)


#: Labs a module fixture keeps up across its tests (see `held_lab`); the per-test finalizer spares them.
_HELD: list[str] = []


@contextmanager
def held_lab(topo: str, *extra: str) -> Iterator[RunningLab]:
    """A lab kept up across several tests (a module fixture's). It is taken down when the holder
    ends, also when `lab up` itself fails half-way."""
    _HELD.append(topo)
    try:
        yield lab_up(topo, *extra)
    finally:
        _HELD.remove(topo)
        take_lab_down()


@pytest.fixture(autouse=True)
def no_lab_left_behind(private_run_dir: Path) -> Iterator[None]:
    """Whatever a test leaves recorded in the private run directory (a lab whose `ndt run` was
    killed, a lab whose test failed before its own finalizer) is taken down after it, unless a
    module fixture holds that lab for its next tests."""
    yield
    if not _HELD:
        take_lab_down()


class RunningLab:
    def __init__(self, info: dict, state_path: Path) -> None:
        self.info = info
        self.state_path = state_path
        self.rest = info["controller"]["rest"]

    def host_pid(self, name: str) -> int:
        return self.info["hosts"][name]["pid"]

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())


def lab_up(topo: str, *extra: str) -> RunningLab:
    r = ndt("lab", "up", topo, "--json", "--of-port", str(TEST_OF_PORT),
            "--rest-port", str(TEST_REST_PORT), *extra)
    return RunningLab(json.loads(r.stdout), Path(os.environ["NDT_RUN_DIR"]) / "lab" / "state.json")


@pytest.fixture
def lab() -> Iterator[Callable[..., RunningLab]]:
    """Factory: lab(TOPO, *extra_args) brings a lab up; it is taken down after the test."""
    started = []

    def up(topo: str, *extra: str) -> RunningLab:
        started.append(topo)
        return lab_up(topo, *extra)

    yield up
    if started:
        take_lab_down()


TRAFFIC_SCHEDULE = {"flows": 6, "seed": 2, "phases": [
    {"profile": "deterministic", "load": 0.3, "duration_s": 8},
    {"profile": "deterministic", "load": 1.5, "duration_s": 8},
]}


@pytest.fixture(scope="session")
def traffic_run(tmp_path_factory, private_run_dir):
    """A real two-phase D-ITG run on the diamond lab with its collector killed mid-run; shared
    by the traffic tests and the virtual twin's training tests."""
    if lab_missing():
        pytest.skip(lab_missing())
    d = tmp_path_factory.mktemp("traffic")
    sched = d / "two.json"
    sched.write_text(json.dumps(TRAFFIC_SCHEDULE))
    data = d / "data"
    killed: dict = {}

    def kill_collector() -> None:
        """Kill the collector with SIGKILL once it has written a few windows."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            try:
                con = sqlite3.connect(data / "traffic.db", timeout=5)
                row = con.execute("SELECT detail FROM events WHERE kind = 'collector_pid' "
                                  "ORDER BY id LIMIT 1").fetchone()
                windows = con.execute("SELECT count(*) FROM snapshots").fetchone()[0]
                con.close()
            except sqlite3.Error:
                row, windows = None, 0
            if row and windows >= 5:
                pid = int(row[0])
                killed["pid"], killed["windows"] = pid, windows
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_collector)
    try:
        lab_up("diamond")
        killer.start()
        r = subprocess.run([sys.executable, "-m", "apps", "traffic", "run", str(sched), "--data", str(data), "--json"],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    finally:
        killed.setdefault("stop", True)
        if killer.is_alive():
            killer.join()
        take_lab_down()  # the data stays; other tests need the bridge names
    assert r.returncode == 0, r.stderr
    return {"result": json.loads(r.stdout), "data": data, "killed": killed,
            "t": sqlite3.connect(data / "traffic.db", check_same_thread=False),
            "l": sqlite3.connect(data / "labels.db", check_same_thread=False)}


#: The SLA margin of the two-phase loop (ms over the path's propagation): with the relay's delays
#: exact, its UDP phase measures 0.2-0.4 ms above propagation (10th-95th percentile) and its TCP
#: phase 2.0-5.0 ms (median 3.8), so at the default 5 ms the TCP phase violated in 6 % of its
#: flow-windows, at 3 ms in 67 %, the UDP phase in none at either.
LOOP_SLA_MARGIN_MS = 3.0
TWO_PHASE = {"flows": 6, "seed": 3, "phases": [
    {"profile": "deterministic", "load": 0.3, "duration_s": 50},
    {"profile": "exponential", "load": 0.5, "duration_s": 110},
]}


def run_loop(data: Path, schedule: dict, *extra: str) -> dict:
    """`ndt run` on the diamond with `schedule` from no model (bootstrap, not the base model); its
    --json summary."""
    sched = data.parent / f"{data.name}-schedule.json"
    sched.write_text(json.dumps(schedule))
    try:
        r = ndt("run", "diamond", "--schedule", str(sched), "--data", str(data), "--json", "--of-port",
                str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT), "--train-budget", "20", "--no-base-model",
                *extra, timeout=600)
    finally:
        take_lab_down()  # a run that failed or timed out (and was killed) may have left its lab up
    return json.loads(r.stdout)


@pytest.fixture(scope="session")
def two_phase_loop(tmp_path_factory, private_run_dir) -> dict:
    """One real closed-loop run (UDP at load 0.3, then TCP at 0.5) shared by the loop, SLA and console tests."""
    if lab_missing():
        pytest.skip(lab_missing())
    data = tmp_path_factory.mktemp("loop") / "data"
    config = data.parent / "ndt.yaml"
    config.write_text(f"sla: {{margin_ms: {LOOP_SLA_MARGIN_MS}}}\n")
    out = run_loop(data, TWO_PHASE, "--config", str(config))
    return {"out": out, "data": data, "t": sqlite3.connect(data / "traffic.db", check_same_thread=False),
            "l": sqlite3.connect(data / "labels.db", check_same_thread=False)}


@pytest.fixture(scope="session")
def seeded_loop(tmp_path_factory) -> dict:
    """A seeded closed-loop run of the two-phase schedule on the diamond (`tests/seeded.py`: real
    models trained on formula labels, no lab), for the report, SLA and console tests (one file:
    pytest-xdist builds a session fixture once per worker)."""
    from .seeded import seed_loop_run

    data = tmp_path_factory.mktemp("seeded-loop") / "data"
    return {"out": seed_loop_run(data, "diamond", TWO_PHASE), "data": data}
