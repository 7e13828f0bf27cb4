"""Fixtures of the detector tests: the real DECTRIS Stream V2 messages in shared/."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def stream_v2_data() -> pathlib.Path:
    """`<repo>/../shared/dectris-stream-v2`: beside the checkout, in CI and in worktrees."""
    return REPO.parent / "shared" / "dectris-stream-v2"


@pytest.fixture(scope="session")
def real_v2() -> pathlib.Path:
    folder = stream_v2_data()
    if not (folder / "README.md").is_file():
        pytest.fail(f"real Stream V2 test data missing: expected {folder}/README.md")
    return folder
