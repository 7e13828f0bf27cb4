"""Stateful property test: the ring against a `collections.deque` model of its layout.

The model keeps the FIFO of published records in a deque, plus the byte positions the
layout rules of docs/ring.md predict (16-byte headers, 16-byte alignment, PAD records at
the wrap, early wrap of large records, tail moving over the released prefix only). Every
step checks contents, kinds, order, RingFull/RingEmpty exactly when the model predicts
them, that held views never change, and that the header's head/tail match the model.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fbp.errors import ClosedPort, EndOfStream, RecordTooLarge, RingEmpty, RingFull
from fbp.ring import RecordKind, Ring

CAPACITY = 8192
HOT_REUSE_MIN = 2048
MAX_PAYLOAD = CAPACITY - 16


def record_bytes(payload: int) -> int:
    return (payload + 16 + 15) & ~15


@dataclass
class Entry:
    end: int  # byte position after the record
    pad: bool
    payload: bytes = b""
    kind: int = 0
    taken: bool = False
    released: bool = False


@dataclass
class Model:
    head: int = 0
    tail: int = 0
    published: collections.deque = field(default_factory=collections.deque)  # not yet taken
    window: collections.deque = field(default_factory=collections.deque)  # [tail, read)

    def free(self) -> int:
        return CAPACITY - (self.head - self.tail)

    def publish(self, entry: Entry, size: int) -> None:
        self.head += size
        entry.end = self.head
        self.published.append(entry)

    def advance(self) -> None:
        while self.window and self.window[0].released:
            self.tail = self.window.popleft().end

    def reserve(self, size: int) -> str:
        """Apply a reserve with timeout=0 (PAD included); return "ok", "full", "too-large"."""
        if size > MAX_PAYLOAD:
            return "too-large"
        need = record_bytes(size)
        offset = self.head % CAPACITY
        room = CAPACITY - offset
        wrap = offset != 0 and (
            need > room or (need >= HOT_REUSE_MIN and self.free() >= room + need)
        )
        if wrap:
            if self.free() < room:
                return "full"
            self.publish(Entry(0, pad=True), room)
        return "ok" if self.free() >= need else "full"

    def send(self, payload: bytes, kind: int) -> str:
        outcome = self.reserve(len(payload))
        if outcome == "ok":
            self.publish(
                Entry(0, pad=False, payload=payload, kind=kind), record_bytes(len(payload))
            )
        return outcome

    def take(self) -> Entry | None:
        while self.published:
            entry = self.published.popleft()
            entry.taken = True
            self.window.append(entry)
            if entry.pad:
                entry.released = True
                self.advance()
                continue
            return entry
        return None


class RingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.owner = Ring.create(CAPACITY, hot_reuse_min=HOT_REUSE_MIN)
        self.producer = Ring.attach(self.owner.name, "producer")
        self.consumer = Ring.attach(self.owner.name, "consumer")
        self.model = Model()
        self.held: list[tuple[object, Entry]] = []
        self.counter = 0
        self.producer_closed = False
        self.steps = 0

    def teardown(self):
        self.held.clear()
        self.owner.close()
        self.owner.unlink()

    def payload(self, size: int) -> bytes:
        self.counter += 1
        return (self.counter.to_bytes(4, "little") * (size // 4 + 1))[:size]

    @rule(
        size=st.one_of(
            st.integers(0, 64),
            st.integers(0, MAX_PAYLOAD),
            st.integers(HOT_REUSE_MIN - 64, CAPACITY // 2),  # early-wrap candidates
            st.integers(MAX_PAYLOAD - 64, MAX_PAYLOAD + 64),
        ),
        kind=st.sampled_from(list(RecordKind)),
        how=st.sampled_from(["send", "reserve", "send_many"]),
    )
    def send(self, size, kind, how):
        self.steps += 1
        payload = self.payload(size)
        if self.producer_closed:
            with pytest.raises(ClosedPort):
                self.producer.send(payload, timeout=0)
            return
        expected = self.model.send(payload, int(kind))
        try:
            if how == "send":
                self.producer.send(payload, timeout=0, kind=kind)
            elif how == "send_many":
                assert self.producer.send_many([payload], timeout=0, kind=kind) == 1
            else:
                with self.producer.reserve(size, timeout=0, kind=kind) as buf:
                    buf[:] = payload
            outcome = "ok"
        except RingFull:
            outcome = "full"
        except RecordTooLarge:
            outcome = "too-large"
        assert outcome == expected

    @rule(size=st.integers(0, MAX_PAYLOAD + 16))
    def abandon_reservation(self, size):
        if self.producer_closed:
            return
        expected = self.model.reserve(size)
        try:
            reservation = self.producer.reserve(size, timeout=0)
            outcome = "ok"
        except RingFull:
            outcome = "full"
        except RecordTooLarge:
            outcome = "too-large"
        assert outcome == expected
        if outcome == "ok":
            with pytest.raises(KeyError), reservation as buf:
                buf[:] = b"\xff" * size
                raise KeyError("abandon")

    @rule(data=st.data())
    def recv(self, data):
        entry = self.model.take()
        if entry is None:
            expected_error = EndOfStream if self.producer_closed else RingEmpty
            with pytest.raises(expected_error):
                self.consumer.recv(timeout=0)
            return
        rec = self.consumer.recv(timeout=0)
        assert bytes(rec) == entry.payload
        assert rec.kind == entry.kind
        if data.draw(st.booleans(), label="hold"):
            self.held.append((rec, entry))
        else:
            entry.released = True
            rec.release()
            self.model.advance()

    @rule(count=st.integers(1, 8))
    def recv_many(self, count):
        expected = []
        while len(expected) < count:
            entry = self.model.take()
            if entry is None:
                break
            expected.append(entry)
        if not expected:
            with pytest.raises(EndOfStream if self.producer_closed else RingEmpty):
                self.consumer.recv_many(count, timeout=0)
            return
        records = self.consumer.recv_many(count, timeout=0)
        assert [bytes(r) for r in records] == [e.payload for e in expected]
        for rec, entry in zip(records, expected, strict=False):
            self.held.append((rec, entry))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release_held(self, data):
        index = data.draw(st.integers(0, len(self.held) - 1), label="which")
        rec, entry = self.held.pop(index)
        if data.draw(st.booleans(), label="by_gc"):
            del rec  # the last reference going frees the slot
        else:
            rec.release()
        entry.released = True
        self.model.advance()

    # Closing ends the interesting part of a run, so only after some traffic.
    @precondition(lambda self: not self.producer_closed and self.steps > 15)
    @rule()
    def close_producer(self):
        self.producer.close()
        self.producer_closed = True

    @invariant()
    def held_views_never_change(self):
        for rec, entry in self.held:
            assert bytes(rec) == entry.payload

    @invariant()
    def header_matches_model(self):
        stats = self.owner.stats()
        assert (stats["head"], stats["tail"]) == (self.model.head, self.model.tail)
        assert stats["fill_bytes"] == self.model.head - self.model.tail


RingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ring_matches_deque_model = RingMachine.TestCase
