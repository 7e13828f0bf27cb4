"""Fixtures for the FBP network protocol tests: the npm package `fbp-protocol` (its test
suite and JSON schemas), a running `fbp runtime`, and a client that validates every
message the runtime sends against those schemas."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

FBP_PROTOCOL = "fbp-protocol@0.9.8"
FBP_EXE = str(pathlib.Path(sys.executable).parent / "fbp")


@pytest.fixture(scope="session")
def fbp_protocol_dir(tmp_path_factory) -> pathlib.Path:
    """A temp folder with `fbp-protocol@0.9.8` installed by npm (node_modules inside)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the fbp-protocol test suite and schemas")
    folder = tmp_path_factory.mktemp("fbp-protocol")
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", FBP_PROTOCOL],
        cwd=folder,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"npm install {FBP_PROTOCOL} failed:\n{result.stderr}"
    return folder


@pytest.fixture(scope="session")
def schemas(fbp_protocol_dir):
    """MessageSchemas loaded from the installed package."""
    from fbp.protocol.schema import MessageSchemas, load_schemas

    return MessageSchemas(load_schemas(fbp_protocol_dir / "node_modules" / "fbp-protocol"))


class RuntimeProcess:
    """`fbp runtime --port 0` in a subprocess; `url` once it printed its line."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [FBP_EXE, "runtime", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.popen.stdout.readline()
        match = re.search(r"ws://[\d.]+:(\d+)/", line)
        assert match, f"fbp runtime printed {line!r} instead of its address"
        self.line = line
        self.port = int(match.group(1))
        self.url = f"ws://127.0.0.1:{self.port}/"

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(20)
        finally:
            self.popen.stdout.close()


@pytest.fixture(scope="module")
def runtime():
    """A runtime shared by the tests of one module."""
    process = RuntimeProcess()
    yield process
    assert process.stop() == 0


class Client:
    """A synchronous protocol client that checks every received message on arrival."""

    def __init__(self, url: str, schemas, secret: str | None = None) -> None:
        from websockets.sync.client import connect

        # Entered by hand: the connection lives across calls, closed in `close`.
        self._context = connect(url, subprotocols=["noflo"], open_timeout=10)
        self.connection = self._context.__enter__()
        self.schemas = schemas
        self.secret = secret
        self.received: list[dict] = []

    def send(self, protocol: str, command: str, payload: dict | None = None) -> None:
        request = {"protocol": protocol, "command": command, "payload": payload or {}}
        if self.secret is not None:
            request["secret"] = self.secret
        self.connection.send(json.dumps(request))

    def receive(self, timeout: float = 10.0) -> dict:
        message = json.loads(self.connection.recv(timeout))
        problems = self.schemas.errors(message)
        assert not problems, f"runtime sent a message its schema rejects: {problems}\n{message}"
        self.received.append(message)
        return message

    def wait_for(self, protocol: str, command: str, timeout: float = 15.0, where=None) -> dict:
        """The next message with this protocol and command (and `where(payload)`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [f"{m['protocol']}:{m['command']}" for m in self.received[-20:]]
                raise AssertionError(f"no {protocol}:{command} within {timeout} s; last: {seen}")
            message = self.receive(left)
            matches = message["protocol"] == protocol and message["command"] == command
            if matches and (where is None or where(message["payload"])):
                return message

    def request(
        self, protocol: str, command: str, payload: dict | None = None, reply: str | None = None
    ) -> dict:
        """Send; return the answer (`reply`, default the same command) or an error."""
        answers = {"getruntime": "runtime", "getstatus": "status", "stop": "stopped"}
        wanted = reply or answers.get(command, command)
        self.send(protocol, command, payload)
        return self._answer(protocol, wanted)

    def _answer(self, protocol: str, wanted: str) -> dict:
        while True:
            message = self.receive()
            if message["protocol"] == protocol and message["command"] in (wanted, "error"):
                return message

    def close(self) -> None:
        self._context.__exit__(None, None, None)


@pytest.fixture
def client(runtime, schemas):
    connection = Client(runtime.url, schemas)
    yield connection
    connection.close()


def build(client: Client, graph: str, fbp_text: str) -> None:
    """Build a graph over the protocol from simple `.fbp` statements.

    Each line is `A(lib/Comp) PORT -> PORT B(lib/Comp)`, `'iip' -> PORT A` or a node
    `A(lib/Comp)`; only what the tests need.
    """
    client.request("graph", "clear", {"id": graph, "main": True})
    from fbp.graph import parse

    parsed = parse(fbp_text)
    for process in parsed.processes.values():
        reply = client.request(
            "graph",
            "addnode",
            {
                "id": process.name,
                "component": process.component,
                "metadata": dict(process.metadata),
                "graph": graph,
            },
        )
        assert reply["command"] == "addnode", reply
    for edge in parsed.connections:
        tgt = {"node": edge.tgt.process, "port": edge.tgt.port}
        if edge.src is None:
            reply = client.request(
                "graph", "addinitial", {"src": {"data": edge.data}, "tgt": tgt, "graph": graph}
            )
        else:
            src = {"node": edge.src.process, "port": edge.src.port}
            reply = client.request("graph", "addedge", {"src": src, "tgt": tgt, "graph": graph})
        assert reply["command"] in ("addinitial", "addedge"), reply


@pytest.fixture
def graph_builder():
    """`build(client, graph_id, fbp_text)`: build a graph over the protocol."""
    return build


@pytest.fixture
def make_client(schemas):
    """`make_client(url, secret=None)`: more clients; closed after the test."""
    made = []

    def make(url: str, secret: str | None = None) -> Client:
        made.append(Client(url, schemas, secret))
        return made[-1]

    yield make
    for connection in made:
        connection.close()


@pytest.fixture
def make_runtime():
    """`make_runtime(*args)`: another `fbp runtime` with options; stopped after the test."""
    made = []

    def make(*args: str) -> RuntimeProcess:
        made.append(RuntimeProcess(*args))
        return made[-1]

    yield make
    for process in made:
        assert process.stop() == 0
