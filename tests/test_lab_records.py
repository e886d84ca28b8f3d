"""The lab's process records without a lab: a process whose command name is not UTF-8 (Linux
keeps whatever bytes a process sets, cut at 15, so a UTF-8 name can end mid-character), and
processes adopted for a lab by another program, ended by `ndt lab down` after their owner died."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ptwin.state import adopt, adopted_processes, is_alive, process_record, release, start_time

from .conftest import ndt

#: A child that names itself with bytes that are not UTF-8 (0xd7 then a non-continuation byte:
#: a two-byte character cut short, as a 15-byte truncation of a longer name leaves it), then waits.
ODD_NAME = ("import ctypes, sys; ctypes.CDLL(None).prctl(15, b'\\xd7x-worker', 0, 0, 0); "
            "print('named', flush=True); sys.stdin.read()")


@pytest.fixture
def odd_process():
    proc = subprocess.Popen([sys.executable, "-c", ODD_NAME], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"named\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_process_whose_name_is_not_utf8_is_still_recognized(odd_process):
    raw = Path(f"/proc/{odd_process.pid}/stat").read_bytes()
    assert b"(\xd7x-worker)" in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode()  # what reading it as text did
    rec = process_record(odd_process.pid, "odd")
    assert rec["start"] == start_time(odd_process.pid) and rec["start"] > 0
    assert is_alive(rec)
    odd_process.kill()
    odd_process.wait()
    assert not is_alive(rec) and start_time(odd_process.pid) is None


def test_adopt_needs_a_recorded_lab_and_release_forgets(tmp_path, monkeypatch, odd_process):
    monkeypatch.setenv("NDT_RUN_DIR", str(tmp_path))
    assert adopt(odd_process.pid, "ITGRecv h1:30000") is None  # no lab: nothing would take it down
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "state.json").write_text(json.dumps({"status": "ready", "processes": []}))
    path = adopt(odd_process.pid, "ITGRecv h1:30000")
    assert path is not None and [p["pid"] for p in adopted_processes()] == [odd_process.pid]
    (path.parent / "torn.json").write_text("{")  # a torn record is skipped, not fatal
    assert [p["what"] for p in adopted_processes()] == ["ITGRecv h1:30000"]
    release(path)
    release(path)  # twice is harmless
    assert adopted_processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="ndt lab down needs root")
def test_lab_down_ends_an_adopted_process_whose_owner_died(tmp_path, odd_process):
    """A dead lab's state plus an adopted process with a non-UTF-8 name: one `ndt lab down`
    ends the process and clears the state, with no traceback."""
    run = Path(os.environ["NDT_RUN_DIR"])
    lab = run / "lab"
    lab.mkdir(parents=True, exist_ok=True)
    (lab / "state.json").write_text(json.dumps({"status": "ready", "topology": "none", "bridges": [],
                                                "interfaces": [], "processes": []}))
    try:
        assert adopt(odd_process.pid, "training worker") is not None
        out = json.loads(ndt("lab", "down", "--json").stdout)
        assert any(f"process {odd_process.pid} (training worker)" == r for r in out["removed_leftovers"]), out
        odd_process.wait(timeout=10)
        assert not (lab / "state.json").exists() and not (lab / "adopted").exists()
    finally:
        (lab / "state.json").unlink(missing_ok=True)
