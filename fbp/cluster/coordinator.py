"""The coordinator's view of the other hosts: `fbp run FILE --hosts ...`.

`RemoteHosts` talks to one `fbp agent` per remote host (a DEALER socket each) and plugs
into the local `Supervisor` as its `remote`: the watch loop steps it, waits until every
host has finished, and passes stops and kills on. It

- checks every agent answers (and accepts our key) before anything starts;
- sends each agent its share when the local rings exist (the "built" event);
- wires links: a receiver that bound (here or on an agent) is announced to the host of
  its sender, which then starts it;
- merges every host's numbers into the local status board (so the terminal table, the
  dashboard and /metrics show all hosts), prints their output prefixed with the host;
- notices a host that goes silent for `host_timeout` seconds: reported as a failure, its
  links end on every other host (what came from it drains downstream); then the run stops,
  or, with `on_host_loss="continue"`, goes on without it (what its links held, and what
  is sent towards it afterwards, is counted as lost).
"""

from __future__ import annotations

import queue
import secrets
import socket
import time

import zmq

import fbp
from fbp.cluster.keys import handshake_failures, load_keys, watch_handshakes
from fbp.cluster.messages import pack, unpack
from fbp.cluster.placement import LOCAL, Placement
from fbp.errors import FBPError

__all__ = ["ClusterError", "RemoteHosts"]

BEAT = 0.5


class ClusterError(FBPError):
    """An agent cannot be reached, refuses our key, or refuses the run."""


class _Agent:
    def __init__(self, host, context, keys) -> None:
        self.host = host
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        for option, value in (keys.client() if keys else {}).items():
            self.socket.setsockopt(option, value)
        self.monitor = watch_handshakes(self.socket)
        self.socket.connect(host.endpoint)
        self.last_heard = time.monotonic()
        self.state = "connecting"  # connecting, ready, running, finished, lost
        self.node = ""

    @property
    def done(self) -> bool:
        return self.state in ("finished", "lost")

    def close(self) -> None:
        self.monitor.close(0)
        self.socket.close(0)


class RemoteHosts:
    """The agents of a run (see the module docstring).

    Args:
        placement: where every process runs.
        graph_json: the checked graph (`graph_to_json`, with --set applied).
        file: the graph's file name, for the agents' messages.
        paths: component folders (absolute: the agents resolve them on their host).
        keys: CurveZMQ key folder, or None.
        host_timeout: seconds of silence after which a host counts as lost.
        hang_timeout, link_timeout: passed on to every host's supervisor.
        on_host_loss: "stop" or "continue" (see the module docstring), on every host.
        log: callable(str) for runtime messages; err: callable(str) for output lines.
    """

    def __init__(
        self,
        placement: Placement,
        *,
        graph_json: dict,
        file: str,
        paths=(),
        keys: str | None = None,
        host_timeout: float = 10.0,
        hang_timeout: float = 10.0,
        link_timeout: float = 5.0,
        on_host_loss: str = "stop",
        log=None,
        err=None,
    ) -> None:
        self.placement = placement
        self.run_id = secrets.token_hex(8)
        self.graph_json = graph_json
        self.file = file
        self.paths = list(paths)
        self.keys = load_keys(keys)
        self.host_timeout = host_timeout
        self.hang_timeout = hang_timeout
        self.link_timeout = link_timeout
        self.on_host_loss = on_host_loss
        self.log = log or (lambda text: None)
        self.err = err or (lambda text: None)
        self.context = zmq.Context()
        self.agents = {
            host.name: _Agent(host, self.context, self.keys) for host in placement.remote_hosts
        }
        self.supervisor = None
        self._next_beat = 0.0
        # connection number -> newest preview from the host producing it (dashboard)
        self.previews: dict[int, dict] = {}
        self._watching: queue.SimpleQueue = queue.SimpleQueue()

    # -- before the run ------------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> None:
        """Check every agent answers and runs our fbp version.

        Raises:
            ClusterError: naming each agent that did not answer or refused us, and why.
        """
        for agent in self.agents.values():
            agent.socket.send(pack("hello", self.run_id, version=fbp.__version__))
        deadline = time.monotonic() + timeout
        problems: dict[str, str] = {}
        while time.monotonic() < deadline:
            waiting = [a for a in self.agents.values() if a.state == "connecting"]
            waiting = [a for a in waiting if a.host.name not in problems]
            if not waiting:
                break
            for agent in waiting:
                for reason in handshake_failures(agent.monitor):
                    problems[agent.host.name] = (
                        f"agent {agent.host.name} at {agent.host.endpoint} refused us: {reason}; "
                        "give every host the same key folder (`fbp keys generate DIR`, then "
                        "--keys DIR on the agents and on `fbp run`)"
                    )
                if agent.socket.poll(20):
                    message = unpack(agent.socket.recv())
                    if message.get("t") == "welcome":
                        agent.state = "ready"
                        agent.node = str(message.get("node", ""))
                        agent.last_heard = time.monotonic()
                        if message.get("version") != fbp.__version__:
                            problems[agent.host.name] = (
                                f"agent {agent.host.name} runs fbp {message.get('version')}, "
                                f"this host {fbp.__version__}: install the same version"
                            )
        for agent in self.agents.values():
            if agent.state == "connecting" and agent.host.name not in problems:
                problems[agent.host.name] = (
                    f"no answer from agent {agent.host.name} at {agent.host.endpoint} within "
                    f"{timeout:g} s: start `fbp agent --listen tcp://0.0.0.0:PORT` on that host "
                    "(with --keys if this run uses them) and check the address is reachable"
                )
        if problems:
            self.close()
            raise ClusterError("\n".join(problems.values()))
        for agent in self.agents.values():
            self.log(f"fbp: host {agent.host.name}: agent on {agent.node} ({agent.host.endpoint})")

    def attach(self, supervisor) -> None:
        """Become `supervisor`'s remote (pass it as `remote=`, then call this)."""
        self.supervisor = supervisor
        supervisor.subscribe(self._on_event)

    def bind_address(self, peer: str) -> str:
        """Where a link receiver here binds for a sender on host `peer`: the local address
        that routes towards that host (so only that network sees the port)."""
        return _route_address(self._address_of(peer))

    def watch(self, connection: int) -> dict | None:
        """The newest preview of a connection produced on another host (from any thread):
        asks that host for a fresh one and returns what came last, or None."""
        self._watching.put(connection)
        return self.previews.get(connection)

    # -- the supervisor's remote protocol --------------------------------------------

    @property
    def done(self) -> bool:
        """True when every host has finished or is lost."""
        return all(agent.done for agent in self.agents.values())

    def step(self) -> None:
        """Handle what the agents said, beat, notice silent hosts (watch loop thread)."""
        now = time.monotonic()
        for agent in self.agents.values():
            if agent.done:
                continue
            while agent.socket.poll(0):
                self._message(agent, unpack(agent.socket.recv()))
                if agent.done:
                    break
            for reason in handshake_failures(agent.monitor):
                self.err(f"fbp: host {agent.host.name}: {reason}\n")
            if not agent.done and now - agent.last_heard > self.host_timeout:
                self._lost(agent, f"no word from its agent for {self.host_timeout:g} s")
        while not self._watching.empty():
            self._ask_preview(self._watching.get())
        if now >= self._next_beat:
            self._next_beat = now + BEAT
            self._broadcast("beat")

    def stop(self, grace: float | None) -> None:
        """Stop every host's sources (Ctrl-C, --timeout, a failure)."""
        self._broadcast("stop", grace=grace)

    def kill(self) -> None:
        """Kill every host's processes."""
        self._broadcast("kill")

    def close(self) -> None:
        """Close the sockets (the run is over)."""
        for agent in self.agents.values():
            agent.close()
        self.context.term()

    # -- inside ------------------------------------------------------------------------

    def _send(self, agent: _Agent, kind: str, **fields) -> None:
        try:
            agent.socket.send(pack(kind, self.run_id, **fields), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected now; heartbeats tell whether it comes back

    def _broadcast(self, kind: str, **fields) -> None:
        for agent in self.agents.values():
            if not agent.done:
                self._send(agent, kind, **fields)

    def _on_event(self, event: str, **fields) -> None:
        if event == "built":
            for agent in self.agents.values():
                agent.state = "running"
                agent.last_heard = time.monotonic()
                self._send(
                    agent,
                    "run",
                    version=fbp.__version__,
                    host=agent.host.name,
                    graph=self.graph_json,
                    file=self.file,
                    placement=self.placement.to_json(),
                    paths=self.paths,
                    hang_timeout=self.hang_timeout,
                    link_timeout=self.link_timeout,
                    host_timeout=self.host_timeout,
                    on_host_loss=self.on_host_loss,
                )
        elif event == "message" and fields["message"].get("t") == "bound":
            message = fields["message"]
            port = int(str(message["endpoint"]).rsplit(":", 1)[1])
            self._receiver_bound(message["link"], LOCAL, port)

    def _receiver_bound(self, link_id: str, receiving_host: str, port: int) -> None:
        """Tell the sending host of `link_id` where its receiver listens."""
        link = self.placement.links[link_id]
        address = self._address_of(receiving_host, seen_from=link.src_host)
        endpoint = f"tcp://{_bracket(address)}:{port}"
        if link.src_host == LOCAL:
            self.supervisor.connect_link(link_id, endpoint)
        else:
            self._send(self.agents[link.src_host], "connect", link=link_id, endpoint=endpoint)

    def _address_of(self, host: str, seen_from: str = LOCAL) -> str:
        """The address of `host` as `seen_from` reaches it."""
        if host != LOCAL:
            return self.placement.hosts[host].address
        # this host, as the agent on `seen_from` reaches it: the address our traffic to
        # that agent leaves from
        return _route_address(self.placement.hosts[seen_from].address)

    def _message(self, agent: _Agent, message: dict) -> None:
        if message.get("run") != self.run_id:
            return
        agent.last_heard = time.monotonic()
        kind = message["t"]
        supervisor = self.supervisor
        host = agent.host.name
        if kind == "sample":
            supervisor.merge_remote(host, message["processes"], message["connections"])
        elif kind == "bound":
            self._receiver_bound(message["link"], host, int(message["port"]))
        elif kind == "err":
            self.err(_prefixed(host, message["text"]))
        elif kind == "log":
            self.log(f"[{host}] {message['text']}")
        elif kind == "preview":
            self.previews[int(message["connection"])] = {**message["preview"], "host": host}
        elif kind == "exit":
            expected = message.get("link_ended") and self.on_host_loss == "continue"
            if message["returncode"] != 0 and not message["restarting"] and not expected:
                supervisor.stop_after_failure(f"{message['instance']} on host {host} failed")
        elif kind == "refused":
            supervisor.failures.append(f"host {host} refused the run: {message['error']}")
            self.err(f"fbp: host {host} refused the run: {message['error']}\n")
            agent.state = "finished"
            self._end_links(host, "it refused the run")
            supervisor.stop_after_failure(f"host {host} refused the run")
        elif kind == "finished":
            agent.state = "finished"
            for failure in message.get("failures", []):
                supervisor.failures.append(f"[{host}] {failure}")
            supervisor.packet_errors += int(message.get("packet_errors", 0))
            for entry in message.get("ledger", []):
                supervisor.ledger.add(
                    entry["where"],
                    entry["kind"],
                    f"{entry['reason']} (host {host})",
                    entry["count"],
                )
            self.log(f"fbp: host {host} finished (exit status {message.get('status')})")

    def _ask_preview(self, connection: int) -> None:
        plan = self.supervisor.plan
        for planned in plan.connections:
            if planned.number == connection:
                host = self.placement.host_of(planned.src.process)
                if host in self.agents and not self.agents[host].done:
                    self._send(self.agents[host], "watch", connection=connection)
                return

    def _lost(self, agent: _Agent, reason: str) -> None:
        agent.state = "lost"
        host = agent.host.name
        text = f"host {host} ({agent.host.endpoint}) lost: {reason}"
        self.err(f"fbp: {text}\n")
        self.supervisor.failures.append(text)
        for status in self.supervisor.board.processes.values():
            if status.host == host and status.state not in ("finished", "failed", "killed"):
                status.state = "lost"
        self._end_links(host, reason)
        if self.on_host_loss == "continue":
            self.log(f"fbp: the run goes on without host {host} (--on-host-loss continue)")
        else:
            self.supervisor.stop_after_failure(f"host {host} was lost")

    def _end_links(self, host: str, reason: str) -> None:
        self.supervisor.end_links(host, reason)
        self._broadcast("end_links", host=host, reason=reason)


def _prefixed(host: str, text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(f"[{host}] {line}" for line in lines)


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _route_address(destination: str) -> str:
    """The local address packets to `destination` leave from (no packet is sent)."""
    try:
        family = socket.AF_INET6 if ":" in destination else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((destination, 9))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1" if ":" not in destination else "::1"
