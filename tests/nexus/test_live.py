"""A viewer follows an NXmx file while `fbp run` writes it; a stop leaves a valid file."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

FBP = pathlib.Path(sys.executable).parent / "fbp"

ENDLESS = textwrap.dedent(
    '''
    """An endless source of small frames, about 50 per second."""
    import time
    import numpy as np
    from fbp.component import OutPort, component
    from fbp.types import Array


    @component(outports=[OutPort("OUT", Array("uint16", ndim=2), "frame n is filled with n")])
    def Endless(*, ports):
        """Frames until stopped."""
        seq = 0
        while True:
            ports.OUT.send(np.full((128, 256), seq % 60000, np.uint16), seq=seq)
            seq += 1
            time.sleep(0.02)
            yield None
    '''
)


def open_when_ready(path, deadline):
    while True:
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except (OSError, FileNotFoundError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.timeout(90)
def test_viewer_reads_while_the_graph_writes_and_stop_closes_cleanly(tmp_path, check_nexus):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "live.py").write_text(ENDLESS)
    path = tmp_path / "live.nxs"
    graph = tmp_path / "live.fbp"
    graph.write_text(
        f"Src(live/Endless) OUT -> IN Images(nexus/WriteNXmx)\n'{path}' -> PATH Images\n"
        "Images FILES -> IN Show(core/Output)\n"
    )
    run = subprocess.Popen(
        [FBP, "run", str(graph), "--path", str(library), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        with open_when_ready(path, deadline) as viewer:
            data = viewer["/entry/data/data"]
            while data.shape[0] < 10:
                assert time.monotonic() < deadline, "the viewer never saw 10 frames"
                assert run.poll() is None, run.communicate()
                time.sleep(0.05)
                data.refresh()
            seen = data.shape[0]
            # Complete frames, in order, while the writer is still appending.
            assert [int(data[i][0, 0]) for i in range(seen)] == list(range(seen))
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=40)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 130, stderr
    assert str(path) in stdout  # the writer announced the file it closed
    check_nexus(path, application="NXmx")
    with h5py.File(path, "r") as f:
        frames = f["/entry/data/data"]
        assert frames.shape[0] >= seen
        expected = np.arange(frames.shape[0], dtype=np.uint16)[:, None, None]
        assert (frames[:] == expected).all()
        assert f["/entry/end_time"][()] > f["/entry/start_time"][()]
