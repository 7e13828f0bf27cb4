"""Independent validation of the files the nexus tests write, by PyPI `nexusformat`.

`nxvalidate` (against an application definition) and `nxcheck` (against the base classes)
exit 0 even when they report errors, so their output is parsed: errors are the lines it
prints in red, each reported with the field or group line above it.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ERROR_COLOUR = "\x1b[38;5;1m"
TOTAL = re.compile(r"Total number of errors: (\d+)")

# The NXmx application definition places NXsource directly in NXentry, while the NXentry
# base class only allows it inside NXinstrument; nxcheck flags every NXmx file for that.
# This one message is the standard contradicting itself and is the only one tolerated.
STANDARD_CONFLICTS = {"/entry/source: NXsource is an invalid class in NXentry"}


def nexus_errors(path, tool: str = "nxvalidate", application: str | None = None) -> list[str]:
    """Errors `tool` reports for the file, as "context: message" strings."""
    command = [str(BIN / tool), str(path)]
    if application:
        command += ["-a", application]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = completed.stdout + completed.stderr
    errors, context = [], ""
    for raw in output.splitlines():
        line = ANSI.sub("", raw).strip()
        if not line:
            continue
        if ERROR_COLOUR in raw:
            errors.append(f"{context}: {line}")
        else:
            context = line.split(":", 1)[-1].strip()
    total = TOTAL.search(ANSI.sub("", output))
    assert total is not None, f"{tool} printed no error total:\n{output}"
    assert int(total.group(1)) == len(errors), f"could not parse all errors:\n{output}"
    return errors


@pytest.fixture(scope="session")
def check_nexus():
    """check_nexus(path, application=None): assert nexusformat accepts the file.

    With an application definition (e.g. "NXmx") nxvalidate checks against it; nxcheck
    always checks the base classes.
    """

    def check(path, application=None):
        if application:
            validated = nexus_errors(path, "nxvalidate", application)
            assert validated == [], f"nxvalidate errors in {path}: {validated}"
        checked = [e for e in nexus_errors(path, "nxcheck") if e not in STANDARD_CONFLICTS]
        assert checked == [], f"nxcheck errors in {path}: {checked}"

    return check


@pytest.fixture(name="nexus_errors", scope="session")
def nexus_errors_fixture():
    return nexus_errors
