"""Restoring order by seq."""

from __future__ import annotations

import heapq
import itertools

from fbp.component import Component, InPort, OutPort
from fbp.packet import Packet
from fbp.types import Any, Int


class OrderedMerge(Component):
    """Merge streams (e.g. from `workers=N`) back into `seq` order, dropping duplicates.

    Packets wait until every smaller seq has gone out (starting at START). A packet whose
    seq was already sent, or is already waiting, is a duplicate (e.g. replayed after a
    restart) and is dropped and counted. If more than WINDOW packets wait for a missing
    seq, that seq is given up for lost and the merge moves on. Packets without a seq pass
    through at once.
    """

    inports = [
        InPort("IN", Any, "packets with seq, from any number of connections", array=True),
        InPort("START", Int, "the first seq expected", default=0),
        InPort("WINDOW", Int, "most packets held while waiting for a missing seq", default=100000),
    ]
    outports = [OutPort("OUT", Any, "the packets in seq order, each seq once")]

    def setup(self, *, start, window) -> None:
        self.expected = start
        self.window = max(1, window)
        self.waiting: list = []
        self.waiting_seqs: set[int] = set()
        self.tiebreak = itertools.count()
        self.duplicates = 0
        self.skipped = 0

    def process(self, packet: Packet) -> None:
        seq = packet.seq
        if seq is None:
            self.out.OUT.send_packet(packet)
            return
        if seq < self.expected or seq in self.waiting_seqs:
            self.duplicates += 1
            return
        if seq == self.expected:
            self.out.OUT.send_packet(packet)
            self.expected += 1
        else:
            # detach: a held packet must not keep its producer's ring slot
            heapq.heappush(self.waiting, (seq, next(self.tiebreak), packet.detach()))
            self.waiting_seqs.add(seq)
        self._release()
        while len(self.waiting) > self.window:
            self.skipped += self.waiting[0][0] - self.expected
            self.expected = self.waiting[0][0]
            self._release()

    def _release(self) -> None:
        while self.waiting and self.waiting[0][0] == self.expected:
            _, _, packet = heapq.heappop(self.waiting)
            self.waiting_seqs.discard(packet.seq)
            self.out.OUT.send_packet(packet)
            self.expected += 1

    def finish(self) -> None:
        while self.waiting:
            seq, _, packet = heapq.heappop(self.waiting)
            self.skipped += seq - self.expected
            self.out.OUT.send_packet(packet)
            self.expected = seq + 1
        if self.duplicates or self.skipped:
            self.log.warning(
                "dropped %d duplicate seq(s); %d seq(s) never arrived",
                self.duplicates,
                self.skipped,
            )
