"""TCP and UDP transfers between lab hosts: small Python receivers and senders started inside the
hosts' namespaces with `mnexec -a`. Receivers announce readiness on stdout (no sleeps)."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time

from ptwin.hostexec import host_command

TCP_RECEIVER = """
import json, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(30); n = 0; t0 = time.monotonic()
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d)
print(json.dumps({"bytes": n, "seconds": time.monotonic() - t0}), flush=True)
"""

TCP_SENDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(b"x" * int(sys.argv[3])); s.close()
"""

UDP_RECEIVER = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(3); print("ready", flush=True); n = got = 0
try:
    while True:
        d = s.recv(65536)
        if d.startswith(b"END"): break
        got += 1; n += len(d)
except socket.timeout:
    pass
print(json.dumps({"datagrams": got, "bytes": n}), flush=True)
"""

UDP_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
count, size, gap = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t = time.monotonic()
for i in range(count):
    s.sendto(b"d" * size, (sys.argv[1], int(sys.argv[2])))
    t += gap
    time.sleep(max(0.0, t - time.monotonic()))
for _ in range(3):
    s.sendto(b"END", (sys.argv[1], int(sys.argv[2]))); time.sleep(0.05)
"""


def _start_receiver(pid: int, script: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(host_command(pid, [sys.executable, "-c", script, str(port)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    if not ready or proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise AssertionError(f"receiver did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
    return proc


def _finish(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("receiver did not finish in time") from None
    if proc.returncode != 0:
        raise AssertionError(f"receiver failed: {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def tcp_transfer(src_pid: int, dst_pid: int, dst_ip: str, nbytes: int, port: int = 5001) -> dict:
    """Send nbytes over TCP; return the receiver's byte count, duration and the sender's time."""
    rx = _start_receiver(dst_pid, TCP_RECEIVER, port)
    t0 = time.monotonic()
    tx = subprocess.run(host_command(src_pid, [sys.executable, "-c", TCP_SENDER, dst_ip, str(port), str(nbytes)]),
                        capture_output=True, text=True, timeout=120)
    result = _finish(rx, 60)
    result["sender_rc"] = tx.returncode
    result["wall_seconds"] = time.monotonic() - t0
    result["mbps"] = 8 * result["bytes"] / max(result["seconds"], 1e-9) / 1e6
    return result


def udp_transfer(src_pid: int, dst_pid: int, dst_ip: str, count: int, size: int = 1000,
                 gap: float = 0.004, port: int = 5002) -> dict:
    """Send `count` datagrams of `size` bytes every `gap` seconds; return what arrived."""
    rx = _start_receiver(dst_pid, UDP_RECEIVER, port)
    tx = subprocess.run(host_command(src_pid, [sys.executable, "-c", UDP_SENDER, dst_ip, str(port),
                                               str(count), str(size), str(gap)]),
                        capture_output=True, text=True, timeout=120)
    result = _finish(rx, 30)
    result["sender_rc"] = tx.returncode
    return result


def ping_rtts(src_pid: int, dst_ip: str, count: int = 5) -> list[float]:
    r = subprocess.run(host_command(src_pid, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip]),
                       capture_output=True, text=True, timeout=60)
    return [float(x.split("time=")[1].split()[0]) for x in r.stdout.splitlines() if "time=" in x]
