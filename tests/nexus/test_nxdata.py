"""NXdataWriter: results and the loss ledger in a file nexusformat accepts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from fbp_components.nexus.nxdata import NXdataWriter


def peak_table(n, offset=0.0):
    return {
        "x": list(np.arange(n) + offset),
        "y": list(np.arange(n) * 2.0),
        "intensity": [100.0] * n,
        "snr": [7.5] * n,
        "npix": [4] * n,
    }


def test_results_and_ledger_round_trip(tmp_path, check_nexus):
    path = tmp_path / "results.nxs"
    radial = np.linspace(0.1, 5.0, 50)
    with NXdataWriter(path, max_peaks=8, title="run 7") as writer:
        for seq in range(5):
            writer.add_peaks(seq, peak_table(3 + 3 * seq, offset=seq))
            writer.add_hit(seq, seq % 2 == 0)
            writer.add_profile(seq, radial, np.full(50, seq, np.float32))
            writer.add_metadata(seq, {"n_peaks": 3 + seq, "label": "ignored", "seq": seq})
        writer.add_metadata(5, {"n_peaks": 1, "late_key": 2.5})
        writer.record_loss("Find.IN", "dropped", "latest: kept the newest 4", count=3)
        writer.record_loss("Find", "failed", "ValueError: frame shape", seq=17)
        writer.record_loss("Find", "failed", "ValueError: frame shape", seq=19)
    check_nexus(path)
    with h5py.File(path, "r") as f:
        peaks = f["/entry/peaks"]
        assert list(peaks["n_peaks"][:]) == [3, 6, 9, 12, 15]
        assert list(peaks["peaks_truncated"][:]) == [0, 0, 1, 4, 7]
        np.testing.assert_array_equal(peaks["x"][1, :6], np.arange(6) + 1.0)
        assert np.isnan(peaks["x"][0, 3:]).all() and (peaks["npix"][0, 3:] == 0).all()
        assert list(f["/entry/hits/is_hit"][:]) == [1, 0, 1, 0, 1]
        np.testing.assert_allclose(f["/entry/radial_profile/radial"][:], radial)
        assert f["/entry/radial_profile/intensity"][3, 10] == 3.0
        meta = f["/entry/frame_metadata"]
        assert list(meta["seq"][:]) == [0, 1, 2, 3, 4, 5]
        assert list(meta["n_peaks"][:]) == [3, 4, 5, 6, 7, 1]
        assert np.isnan(meta["late_key"][:5]).all() and meta["late_key"][5] == 2.5
        assert "label" not in meta
        ledger = f["/entry/loss_ledger"]
        rows = list(
            zip(
                ledger["where"].asstr()[:],
                ledger["kind"].asstr()[:],
                ledger["count"][:],
                strict=False,
            )
        )
        assert rows == [("Find", "failed", 2), ("Find.IN", "dropped", 3)]
        assert list(ledger["seq"][:]) == [17, 19] and ledger["total"][()] == 5
        assert f["/entry"].attrs["default"] == "hits"


def test_an_empty_run_still_says_it_lost_nothing(tmp_path, check_nexus):
    path = tmp_path / "empty.nxs"
    NXdataWriter(path).close()
    check_nexus(path)
    with h5py.File(path, "r") as f:
        assert f["/entry/loss_ledger/total"][()] == 0


def test_bad_inputs_are_clear_errors(tmp_path):
    with NXdataWriter(tmp_path / "r.nxs") as writer:
        with pytest.raises(
            ValueError, match="loss kind must be one of failed, replayed, dropped, lost"
        ):
            writer.record_loss("A", "vanished", "why")
        writer.add_profile(0, [1.0, 2.0], [1.0, 1.0])
        with pytest.raises(ValueError, match="profile has 3 bins, earlier ones 2"):
            writer.add_profile(1, [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    with pytest.raises(FileExistsError):
        NXdataWriter(tmp_path / "r.nxs")
