"""Across hosts: lossless ZeroMQ links between rings (see link.py).

`python -m fbp.bridge send RING ENDPOINT` / `receive RING ENDPOINT` run one end of a link
until the stream has crossed (the node agents of a multi-host run will start these).
"""
