"""What the coordinator and the agents say to each other (msgpack maps, never pickle).

Every message is a map with `t` (its kind) and `run` (the run id). Coordinator -> agent:

    hello    {version}                       are you there, and which fbp do you run?
    run      {host, graph, file, placement, paths, hang_timeout, link_timeout, host_timeout}
    connect  {link, endpoint}                start the bridge sender of `link` towards it
    end_links {host, reason}                 `host` is gone: end the links with it
    stop     {grace}                         stop the sources (kill after `grace` s if set)
    kill     {}                              kill every process now
    watch    {connection}                    someone previews it: answer with `preview`
    beat     {}                              the coordinator is alive

Agent -> coordinator:

    welcome  {version, node, pid}            answer to hello
    refused  {error}                         this run cannot run here (says why)
    bound    {link, port}                    a bridge receiver listens on `port`
    exit     {instance, returncode, restarting}
    sample   {processes, connections}        the host's snapshot() lists, twice a second
    log      {text}                          a runtime message of the host's supervisor
    err      {text}                          process output and reports (stderr)
    preview  {connection, preview}           newest preview of a watched connection
    finished {status, failures, packet_errors, ledger}
    beat     {}
"""

from __future__ import annotations

import msgpack

__all__ = ["pack", "unpack"]


def pack(kind: str, run: str, **fields) -> bytes:
    """One message as bytes."""
    return msgpack.packb({"t": kind, "run": run, **fields}, use_bin_type=True)


def unpack(data) -> dict:
    """A message from bytes; {} for anything that is not a message map."""
    try:
        message = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return {}
    return message if isinstance(message, dict) and "t" in message else {}
