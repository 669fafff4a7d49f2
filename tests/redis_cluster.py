"""A throw-away Redis Cluster for the tests (issue 15): three masters, no replicas, no persistence,
each a `redis-server` process on a free local port, joined with `redis-cli --cluster create`.

`start()` returns a `LocalCluster` whose `url` names one node (as MALLPOINTS_REDIS_URL does in
cluster mode); `kill(port)` ends one master the hard way (SIGKILL), as a crashed machine would."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MASTERS = 3


def _free_ports(n: int) -> list[int]:
    """n free ports whose cluster bus port (port + 10000) is free too."""
    found: list[int] = []
    holders = []
    while len(found) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        holders.append(s)
        if port + 10000 > 65535 or port in found:
            continue
        bus = socket.socket()
        try:
            bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        finally:
            bus.close()
        found.append(port)
    for s in holders:
        s.close()
    return found


@dataclass
class LocalCluster:
    ports: list[int]
    workdir: Path
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def kill(self, port: int) -> None:
        proc = self.processes.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self.processes):
            proc = self.processes.pop(port)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def available() -> str | None:
    """None when redis-server and redis-cli are installed, else what is missing."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    return ", ".join(missing) or None


def _cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True,
                          text=True, timeout=30).stdout


def start() -> LocalCluster:
    ports = _free_ports(MASTERS)
    cluster = LocalCluster(ports, Path(tempfile.mkdtemp(prefix="mallpoints-cluster-")))
    try:
        for port in ports:
            cluster.processes[port] = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                 "--save", "", "--appendonly", "no", "--dir", str(cluster.workdir),
                 "--cluster-require-full-coverage", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                try:
                    if _cli(port, "ping").strip() == "PONG":
                        break
                except subprocess.CalledProcessError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start")
                time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, text=True, timeout=60)
        while "cluster_state:ok" not in _cli(ports[0], "cluster", "info"):
            if time.monotonic() > deadline + 20:
                raise RuntimeError("the cluster did not reach state ok")
            time.sleep(0.1)
    except Exception:
        cluster.stop()
        raise
    return cluster
