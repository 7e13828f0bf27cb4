"""A hit-finding graph run by `fbp run`: real processes, rings, workers and files."""

from __future__ import annotations

import textwrap

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

SOURCE_LIBRARY = textwrap.dedent(
    '''
    """Test frames: every third frame is a hit with 30 bright spots."""
    import numpy as np
    from fbp.component import InPort, OutPort, component
    from fbp.types import Array, Int


    @component(inports=[InPort("COUNT", Int, "frames", default=6)],
               outports=[OutPort("OUT", Array("uint16", ndim=2), "frames"),
                         OutPort("MASK", Array("uint32", ndim=2), "rows 0-99 are bad")])
    def Frames(*, count, ports):
        """Poisson background with Gaussian spots on hits (seq % 3 == 0)."""
        mask = np.zeros((400, 400), np.uint32)
        mask[:100] = 2
        ports.MASK.send(mask)
        y, x = np.mgrid[:400, :400]
        for seq in range(count):
            rng = np.random.default_rng(seq)
            expected = np.full((400, 400), 1.0)
            if seq % 3 == 0:
                for cx, cy in rng.uniform(20, 380, (30, 2)):
                    spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.8**2))
                    expected += 300 * spot / (2 * np.pi * 0.64)
            ports.OUT.send(rng.poisson(expected).astype(np.uint16), seq=seq,
                           meta={"is_hit": seq % 3 == 0})
            yield None
    '''
)

GRAPH = """
'12' -> COUNT Src(frames/Frames)
'200' -> BEAM_X Find
'200' -> BEAM_Y Find
Src OUT -> IN Find(xray/PeakFinder:workers={workers})
Src MASK -> MASK Find
Find OUT -> IN Hits(xray/HitFilter) OUT -> IN Images(nexus/WriteNXmx)
Find PEAKS -> PEAKS Results(nexus/WriteNXdata)
'{out}/images.nxs' -> PATH Images
'{out}/results.nxs' -> PATH Results
Images FILES -> IN ShowFiles(core/Output)
Results SUMMARY -> IN ShowSummary(core/Output)
"""


def run_hit_finding(tmp_path, run_fbp, check_nexus, workers):
    """Run the graph; return the smallest peak row found (rows 0-99 are masked)."""
    library = tmp_path / "lib"
    library.mkdir()
    (library / "frames.py").write_text(SOURCE_LIBRARY)
    out = tmp_path / "out"
    graph = tmp_path / "hits.fbp"
    graph.write_text(GRAPH.format(out=out, workers=workers))
    result = run_fbp("run", graph, "--path", library, "--quiet", timeout=100)
    assert result.returncode == 0, result.stderr
    assert str(out / "images.nxs") in result.stdout
    assert "'hit_rate'" in result.stdout or "hit_rate" in result.stdout
    check_nexus(out / "images.nxs", application="NXmx")
    check_nexus(out / "results.nxs")
    with h5py.File(out / "images.nxs", "r") as f:
        seqs = sorted(f["/entry/instrument/detector/frame_metadata/seq"][:])
        assert seqs == [0, 3, 6, 9]  # the hits, whichever worker found them
        assert f["/entry/data/data"].shape == (4, 400, 400)
    with h5py.File(out / "results.nxs", "r") as f:
        order = np.argsort(f["/entry/hits/seq"][:])
        assert list(f["/entry/hits/is_hit"][:][order]) == [1, 0, 0] * 4
        assert (f["/entry/peaks/n_peaks"][:][order][::3] >= 15).all()
        return np.nanmin(f["/entry/peaks/y"][:])


@pytest.mark.timeout(120)
def test_hit_finding_graph_writes_hits_and_results(tmp_path, run_fbp, check_nexus):
    lowest_peak_row = run_hit_finding(tmp_path, run_fbp, check_nexus, workers=1)
    assert lowest_peak_row >= 99.5  # the mask arrived on the MASK connection


@pytest.mark.timeout(120)
def test_hit_finding_graph_with_two_peak_finder_workers(tmp_path, run_fbp, check_nexus):
    run_hit_finding(tmp_path, run_fbp, check_nexus, workers=2)


@pytest.mark.timeout(120)
def test_every_worker_gets_the_mask(tmp_path, run_fbp, check_nexus):
    assert run_hit_finding(tmp_path, run_fbp, check_nexus, workers=2) >= 99.5


@pytest.mark.timeout(120)
def test_results_file_carries_the_runs_loss_ledger(tmp_path, run_fbp, check_nexus):
    # A viewer on policy=latest drops frames; the results file says so.
    graph = tmp_path / "ledger.fbp"
    out = tmp_path / "results.nxs"
    graph.write_text(
        f"""
'60' -> FRAMES Sim(detector/Simulate)
'eiger2-1m' -> MODEL Sim
Sim OUT -> IN Find(xray/PeakFinder) PEAKS -> PEAKS Results(nexus/WriteNXdata)
'{out}' -> PATH Results
Sim OUT -> IN Slow(core/Throttle:policy=latest) OUT -> IN Drop(core/Drop)
'2' -> RATE Slow
Results SUMMARY -> IN Show(core/Output)
"""
    )
    result = run_fbp("run", graph, "--quiet", timeout=100)
    assert result.returncode == 0, result.stderr
    check_nexus(out)
    with h5py.File(out, "r") as f:
        ledger = f["/entry/loss_ledger"]
        kinds = [k.decode() if isinstance(k, bytes) else k for k in ledger["kind"][:]]
        wheres = [w.decode() if isinstance(w, bytes) else w for w in ledger["where"][:]]
        rows = dict(zip(wheres, zip(kinds, ledger["count"][:], strict=True), strict=True))
    kind, count = rows["Sim.OUT -> Slow.IN"]
    assert kind == "dropped" and count >= 1
