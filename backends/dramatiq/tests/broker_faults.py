"""Broker faults aimed at one worker: find its TCP connections to the broker and cut them.

The Redis and RabbitMQ servers are shared (other test runs use them at the same time), so the
tests never restart or flush them and never close connections they did not make: a connection
is the worker's when a process of the worker's process group owns its socket (read from
``/proc``). Redis drops it with ``CLIENT KILL ADDR``, RabbitMQ with ``rabbitmqctl
close_connection <pid>`` (the management plugin is not needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["broker_port", "close_connections", "worker_connections"]

_ESTABLISHED = "01"


def broker_port(url: str) -> int:
    """The TCP port of a ``redis://`` or ``amqp://`` URL."""
    parts = urlsplit(url)
    return parts.port or (6379 if parts.scheme.startswith("redis") else 5672)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    if len(host) != 8:
        return "::", int(port, 16)  # IPv6: only the port matters to the callers
    ip = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))  # little-endian IPv4
    return ip, int(port, 16)


def worker_connections(pgid: int, port: int) -> list[str]:
    """``ip:port`` (client side) of every established connection to ``port`` of the group."""
    found: set[str] = set()
    for pid in _group_pids(pgid):
        inodes = _socket_inodes(pid)
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == _ESTABLISHED and inode in inodes and _address(remote)[1] == port:
                    ip, local_port = _address(local)
                    found.add(f"{ip}:{local_port}")
    return sorted(found)


def close_connections(broker_kind: str, broker_url: str, addresses: list[str]) -> int:
    """Close the broker-side ends of ``addresses``; returns how many the broker closed."""
    if broker_kind == "redis":
        import redis

        client = redis.Redis.from_url(broker_url)
        try:
            return sum(int(client.client_kill_filter(addr=a)) for a in addresses)
        finally:
            client.close()
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise FileNotFoundError("rabbitmqctl is needed to close RabbitMQ connections")
    # close_connection takes the connection's Erlang pid: find it by the client's port.
    ports = {address.rsplit(":", 1)[1] for address in addresses}
    listed = _rabbitmqctl(ctl, "-q", "list_connections", "pid", "peer_port").splitlines()
    pids = [f[0] for f in map(str.split, listed) if len(f) == 2 and f[1] in ports]
    for pid in pids:
        # A connection gone meanwhile is fine: the count below says what was closed.
        _rabbitmqctl(ctl, "close_connection", pid, "plushify reliability test", check=False)
    still_open = set(_rabbitmqctl(ctl, "-q", "list_connections", "pid").split())
    return sum(pid not in still_open for pid in pids)


def _rabbitmqctl(ctl: str, *args: str, check: bool = True) -> str:
    result = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=check)
    return result.stdout
