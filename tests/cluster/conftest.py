"""Fixtures of the multi-host tests: real agents, on loopback or in network namespaces.

Hosts are network namespaces the tests make (`ip netns add`), joined by veth pairs to a
Linux bridge in a switch namespace, with addresses 10.200.0.1-3/24 that exist only inside
them. The coordinator (`fbp run --hosts`) runs in the first, agents in the others.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import uuid

import pytest

FBP_EXE = str(pathlib.Path(sys.executable).parent / "fbp")


class Agent:
    """One `fbp agent` process; `endpoint` is where it listens."""

    def __init__(self, listen: str, namespace: str | None = None, keys=None) -> None:
        command = [FBP_EXE, "agent", "--listen", listen]
        if keys:
            command += ["--keys", str(keys)]
        if namespace:
            command = ["ip", "netns", "exec", namespace, *command]
        self.popen = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.popen.stdout.readline()
        match = re.search(r"listening on (tcp://\S+)", line)
        if not match:
            self.popen.kill()
            raise RuntimeError(f"agent did not start: {line}{self.popen.stderr.read()}")
        self.endpoint = match.group(1)
        self.pid = self.popen.pid

    def stop(self) -> str:
        """Stop it (SIGTERM) and return what it wrote on stderr."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            _, err = self.popen.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            _, err = self.popen.communicate()
        return err


@pytest.fixture
def agents():
    """Start agents (`start(listen, namespace=None, keys=None)`); all stopped at the end."""
    started: list[Agent] = []

    def start(listen="tcp://127.0.0.1:0", namespace=None, keys=None) -> Agent:
        agent = Agent(listen, namespace, keys)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def hosts():
    """Three hosts (network namespaces) on one switch: 10.200.0.1, .2 and .3."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces (hosts)")
    tag = uuid.uuid4().hex[:6]
    switch = f"fbpsw{tag}"
    names = [f"fbph{i}{tag}" for i in (1, 2, 3)]
    commands = [["ip", "netns", "add", switch]]
    commands += [["ip", "-n", switch, "link", "add", "br0", "type", "bridge"]]
    commands += [["ip", "-n", switch, "link", "set", "br0", "up"]]
    for number, name in enumerate(names, 1):
        veth, peer = f"h{number}{tag}", f"s{number}{tag}"
        commands += [
            ["ip", "netns", "add", name],
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer],
            ["ip", "link", "set", veth, "netns", name],
            ["ip", "link", "set", peer, "netns", switch],
            ["ip", "-n", switch, "link", "set", peer, "master", "br0"],
            ["ip", "-n", switch, "link", "set", peer, "up"],
            ["ip", "-n", name, "addr", "add", f"10.200.0.{number}/24", "dev", veth],
            ["ip", "-n", name, "link", "set", veth, "up"],
            ["ip", "-n", name, "link", "set", "lo", "up"],
        ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        for name in [switch, *names]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode().strip()}")
    yield {
        "names": names,
        "veths": [f"h{n}{tag}" for n in (1, 2, 3)],
        "addresses": [f"10.200.0.{n}" for n in (1, 2, 3)],
    }
    for name in [*names, switch]:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
