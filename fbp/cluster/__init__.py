"""Runs across hosts: placement by `node=`, the coordinator, agents and CurveZMQ keys.

`fbp run FILE --hosts a=local,b=tcp://HOST:PORT` (fbp.cluster.coordinator) places
processes (fbp.cluster.placement), and each `fbp agent` (fbp.cluster.agent) runs its
share under a supervisor; rings that cross hosts are linked by fbp.bridge. docs/hosts.md
is the user's guide.
"""
