"""Which process runs on which host, and which rings cross hosts.

`fbp run FILE --hosts h1=local,h2=tcp://10.200.0.2:7000` names the hosts; a process runs on
the host its `node=NAME` metadata names, and a process without `node=` runs on the
coordinator (the `fbp run` process itself, host `local`). Every ring of a connection whose
ends run on different hosts becomes a *link*: a ring on the sending host read by a bridge
sender, ZeroMQ, a bridge receiver writing a ring on the receiving host. Rings are per
(connection, producer instance, consumer instance), so a link is too, and its id is the
same `c{connection}-{producer worker}-{consumer worker}` the ring names carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fbp.runtime.plan import port_label

__all__ = ["LOCAL", "Host", "Link", "Placement", "parse_hosts", "place"]

LOCAL = "local"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ENDPOINT = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Host:
    """One host of a run: the coordinator itself (`endpoint` None) or an agent's address."""

    name: str
    endpoint: str | None = None

    @property
    def local(self) -> bool:
        """True for the coordinator's own host."""
        return self.endpoint is None

    @property
    def address(self) -> str | None:
        """The host part of the agent's endpoint (what peers connect to), or None."""
        if self.endpoint is None:
            return None
        return _ENDPOINT.match(self.endpoint).group(1).strip("[]")


def parse_hosts(text: str) -> dict[str, Host]:
    """Read `--hosts`: `NAME=local` or `NAME=tcp://HOST:PORT`, comma-separated.

    The coordinator's own host is always there as `local`, also when not named.

    Raises:
        ValueError: a malformed entry (the message says which and how it should look).
    """
    hosts = {LOCAL: Host(LOCAL)}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _NAME.match(name):
            raise ValueError(
                f"--hosts entry {entry!r} must look like NAME=local or NAME=tcp://HOST:PORT "
                "(NAME: letters, digits, _ . -)"
            )
        if name in hosts and name != LOCAL:
            raise ValueError(f"--hosts names {name!r} twice")
        if value == LOCAL:
            hosts[name] = Host(name)
        else:
            match = _ENDPOINT.match(value)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(
                    f"--hosts {name}={value!r}: an agent's address looks like "
                    "tcp://10.0.0.2:7000 (the --listen address of `fbp agent` on that host)"
                )
            if name == LOCAL:
                raise ValueError("--hosts: 'local' is the coordinator's own host, not an agent")
            hosts[name] = Host(name, value)
    return hosts


@dataclass(frozen=True)
class Link:
    """One ring that crosses hosts: produced on `src_host`, consumed on `tgt_host`."""

    id: str  # c{connection}-{producer worker}-{consumer worker}
    src_host: str
    tgt_host: str
    label: str  # "Src.OUT -> Tgt.IN" with instance names


@dataclass
class Placement:
    """Hosts, the host of every process, and the links between hosts."""

    hosts: dict[str, Host]
    where: dict[str, str] = field(default_factory=dict)  # process name -> host name
    links: dict[str, Link] = field(default_factory=dict)

    def host_of(self, process: str) -> str:
        """The host name a process runs on (local hosts all answer LOCAL)."""
        name = self.where.get(process, LOCAL)
        return LOCAL if self.hosts[name].local else name

    @property
    def remote_hosts(self) -> list[Host]:
        """The agents this run uses, in --hosts order."""
        used = {self.host_of(p) for p in self.where}
        return [h for h in self.hosts.values() if not h.local and h.name in used]

    def to_json(self) -> dict:
        """Plain data for an agent (it rebuilds the same Placement with `from_json`)."""
        return {
            "hosts": {n: h.endpoint for n, h in self.hosts.items()},
            "where": dict(self.where),
        }

    @classmethod
    def from_json(cls, data: dict, plan) -> Placement:
        """The Placement `to_json` described, links recomputed from the same plan."""
        hosts = {name: Host(name, endpoint) for name, endpoint in data["hosts"].items()}
        placement = cls(hosts, dict(data["where"]))
        placement.links = _links(plan, placement)
        return placement

    def describe(self) -> str:
        """Which processes run where and which connections cross: for `fbp check --hosts`."""
        lines = []
        for host in self.hosts.values():
            names = [p for p in self.where if self.where[p] == host.name]
            if host.name == LOCAL and not names:
                continue
            where = "this process (coordinator)" if host.local else f"agent {host.endpoint}"
            lines.append(f"host {host.name} ({where}): {', '.join(names) or 'nothing'}")
        for link in self.links.values():
            lines.append(f"link {link.id}: {link.label}  [{link.src_host} -> {link.tgt_host}]")
        if not self.links:
            lines.append("no connection crosses hosts")
        return "\n".join(lines)


def place(plan, hosts: dict[str, Host]) -> Placement:
    """Put every process of `plan` on a host by its `node=` metadata.

    Raises:
        ExceptionGroup: of GraphError, one per process naming a host `hosts` lacks.
    """
    placement = Placement(hosts)
    problems = []
    for name in plan.processes:
        process = plan.graph.processes[name]
        node = process.metadata.get("node")
        if node is None:
            placement.where[name] = LOCAL
            continue
        node = str(node).strip()
        if node not in hosts:
            known = ", ".join(hosts)
            problems.append(
                plan.graph.error(
                    f"process '{name}' runs on node={node!r}, which --hosts does not name "
                    f"(hosts: {known})",
                    process.location,
                    hint=f"add {node}=tcp://HOST:PORT (its agent) or {node}=local to --hosts",
                )
            )
            continue
        placement.where[name] = node
    if problems:
        raise ExceptionGroup("processes on unknown hosts", problems)
    placement.links = _links(plan, placement)
    return placement


def _links(plan, placement: Placement) -> dict[str, Link]:
    links = {}
    for connection in plan.connections:
        source = plan.processes[connection.src.process]
        target = plan.processes[connection.tgt.process]
        src_host, tgt_host = placement.host_of(source.name), placement.host_of(target.name)
        if src_host == tgt_host:
            continue
        for s, s_name in enumerate(source.instances):
            for t, t_name in enumerate(target.instances):
                link_id = f"c{connection.number}-{s}-{t}"
                label = (
                    f"{port_label(connection.src, s_name)} -> {port_label(connection.tgt, t_name)}"
                )
                links[link_id] = Link(link_id, src_host, tgt_host, label)
    return links
