"""Link shaping with tc: an HTB root with one class at the link's rate on every link direction's
egress interface, its leaf the direction's finite queue (a pfifo of the link's buffer in
packets), or netem for the propagation delay when that backend is used. All interfaces are
configured by one `tc -batch` run, which is what keeps a 50-switch lab quick to start."""

from __future__ import annotations

import math
import subprocess

#: Burst of the HTB class (bytes): ten full-size frames.
BURST = "15k"


def htb_commands(intf: str, rate_mbps: float, delay_ms: float | None = None,
                 queue_pkts: int | None = None) -> list[str]:
    """HTB at the link's rate on `intf`, its leaf a drop-tail queue of `queue_pkts` packets (a
    pfifo), or netem when it also adds the delay (netem's own limit then holds the queue plus
    the frames in flight: the bandwidth-delay product in 64-byte frames). Without a limit Linux
    would queue the device's txqueuelen (1000 packets on veth: 1.2 s at 10 Mbit/s)."""
    # An explicit quantum avoids HTB's "quantum is big" warning on fast classes.
    cmds = [f"qdisc replace dev {intf} root handle 5: htb default 1",
            f"class replace dev {intf} parent 5: classid 5:1 htb rate {rate_mbps:.6f}mbit burst {BURST} quantum 1514"]
    if delay_ms is not None:
        limit = (queue_pkts or 1000) + math.ceil(rate_mbps * 1e6 * delay_ms / 1e3 / (8 * 64))
        cmds.append(f"qdisc replace dev {intf} parent 5:1 handle 10: netem delay {delay_ms:.3f}ms limit {limit}")
    elif queue_pkts is not None:
        cmds.append(f"qdisc replace dev {intf} parent 5:1 handle 10: pfifo limit {queue_pkts}")
    return cmds


def rate_commands(intf: str, rate_mbps: float) -> list[str]:
    return [f"class change dev {intf} parent 5: classid 5:1 htb rate {rate_mbps:.6f}mbit burst {BURST} quantum 1514"]


def run_batch(tool: str, commands: list[str], force: bool = False, netns: str | None = None) -> str:
    """Run `tool -batch -` (tool is 'tc' or 'ip') on the commands, in the named network namespace
    if one is given; return stderr ('' when clean)."""
    if not commands:
        return ""
    args = [tool, *(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    r = subprocess.run(args, input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=120)
    return r.stderr.strip() if r.returncode != 0 else ""
