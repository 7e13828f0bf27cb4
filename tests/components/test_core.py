"""The core library, each component through the in-process test harness."""

from __future__ import annotations

import time

import numpy
import pytest
from fbp_components.core import (
    Batch,
    Counter,
    Drop,
    Filter,
    Kick,
    Merge,
    OrderedMerge,
    Output,
    Repeat,
    Sequence,
    Split,
    Tee,
    Throttle,
)

from fbp.packet import Packet, PacketKind
from fbp.testing import run_component


def packets(values, start=0):
    return [Packet(v, seq=start + i) for i, v in enumerate(values)]


def test_sequence_counts_with_seq():
    result = run_component(Sequence, config={"COUNT": "4"})
    assert result.values() == [0, 1, 2, 3] and result.seqs() == [0, 1, 2, 3]


def test_sequence_is_endless_by_default():
    result = run_component(Sequence, limit=50)
    assert result.values() == list(range(50))


def test_repeat_keeps_value_seq_and_meta():
    sent = [Packet({"x": 1}, seq=5, meta={"run": 2}), Packet(None, seq=6)]
    out = run_component(Repeat, inputs={"IN": sent}).outputs["OUT"]
    assert [(p.value, p.seq, p.meta) for p in out] == [({"x": 1}, 5, {"run": 2}), (None, 6, None)]


def test_repeat_forwards_brackets():
    sent = [Packet("run", kind=PacketKind.OPEN), Packet(1), Packet("run", kind=PacketKind.CLOSE)]
    out = run_component(Repeat, inputs={"IN": sent}).outputs["OUT"]
    assert [p.kind for p in out] == [PacketKind.OPEN, PacketKind.DATA, PacketKind.CLOSE]


def test_drop_sends_nothing():
    result = run_component(Drop, inputs={"IN": range(10)})
    assert result.outputs["ERROR"] == [] and list(result.outputs) == ["ERROR"]


def test_output_prints_one_value_per_line(capsys):
    run_component(Output, inputs={"IN": [1, "two", [3]]})
    assert capsys.readouterr().out == "1\ntwo\n[3]\n"


def test_kick_sends_data_per_trigger():
    result = run_component(Kick, inputs={"IN": packets(["x", "y"], 3)}, config={"DATA": "go"})
    assert result.values() == ["go", "go"] and result.seqs() == [3, 4]


def test_split_deals_round_robin_over_indices():
    result = run_component(Split, inputs={"IN": packets(range(7))}, array_width={"OUT": 3})
    assert [result.values("OUT", i) for i in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]


def test_merge_takes_all_indices():
    result = run_component(Merge, inputs={"IN": {0: [1, 2], 1: [3]}})
    assert sorted(result.values()) == [1, 2, 3]


def test_tee_sends_every_packet_to_every_index():
    result = run_component(Tee, inputs={"IN": [1, 2]}, array_width={"OUT": 2})
    assert result.values("OUT", 0) == [1, 2] and result.values("OUT", 1) == [1, 2]


def test_filter_on_value_seq_and_meta():
    sent = [Packet(v, seq=v, meta={"hit": v > 2}) for v in range(5)]
    result = run_component(
        Filter, inputs={"IN": sent}, config={"EXPRESSION": "value % 2 == 0 or meta['hit']"}
    )
    assert result.values() == [0, 2, 3, 4] and result.values("REJECTED") == [1]


def test_filter_reports_a_bad_expression():
    with pytest.raises(ValueError, match="is not a Python expression"):
        run_component(Filter, inputs={"IN": [1]}, config={"EXPRESSION": "value >"})


def test_filter_has_no_builtins_beyond_the_listed_ones():
    result = run_component(Filter, inputs={"IN": [1]}, config={"EXPRESSION": "open('x')"})
    assert result.errors == 1 and "NameError" in result.values("ERROR")[0]["error"]


def test_counter_sends_the_count_at_the_end():
    assert run_component(Counter, inputs={"IN": range(1234)}).values("COUNT") == [1234]
    assert run_component(Counter, inputs={"IN": []}).values("COUNT") == [0]


def test_batch_groups_values_and_stacks_arrays():
    result = run_component(Batch, inputs={"IN": packets(range(5))}, config={"SIZE": 2})
    assert result.values() == [[0, 1], [2, 3], [4]] and result.seqs() == [0, 2, 4]
    frames = [numpy.full((2, 2), i) for i in range(3)]
    stacked = run_component(Batch, inputs={"IN": frames}, config={"SIZE": 3}).values()
    assert stacked[0].shape == (3, 2, 2) and stacked[0][2, 0, 0] == 2
    with pytest.raises(ValueError, match="SIZE must be >= 1"):
        run_component(Batch, inputs={"IN": [1]}, config={"SIZE": 0})


def test_throttle_paces_packets():
    started = time.monotonic()
    result = run_component(Throttle, inputs={"IN": range(11)}, config={"RATE": "50"})
    elapsed = time.monotonic() - started
    assert result.values() == list(range(11))
    assert elapsed >= 0.19  # 10 intervals of 20 ms at least (never asserts an upper bound)


def test_ordered_merge_restores_order_and_drops_duplicates():
    order = [3, 0, 2, 2, 1, 0, 5, 4, 6]
    result = run_component(OrderedMerge, inputs={"IN": [Packet(f"v{s}", seq=s) for s in order]})
    assert result.seqs() == [0, 1, 2, 3, 4, 5, 6]
    assert result.values()[:2] == ["v0", "v1"]


def test_ordered_merge_gives_up_on_a_missing_seq_after_window():
    sent = [Packet(s, seq=s) for s in [0, 2, 3, 4, 5]]
    result = run_component(OrderedMerge, inputs={"IN": sent}, config={"WINDOW": "2"})
    assert result.seqs() == [0, 2, 3, 4, 5]


def test_ordered_merge_flushes_the_rest_in_order_at_the_end():
    sent = [Packet(s, seq=s) for s in [5, 3, 1]]
    assert run_component(OrderedMerge, inputs={"IN": sent}).seqs() == [1, 3, 5]
