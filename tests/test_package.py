"""The package installs as promised: import names, compiled core, console script, CI command."""

import importlib
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_import_packages_come_from_site_packages():
    for name in ("fbp", "fbp_core", "fbp_components"):
        module = importlib.import_module(name)
        path = pathlib.Path(module.__file__).resolve()
        assert "site-packages" in path.parts, f"{name} imported from the source tree: {path}"


def test_no_global_components_package_installed():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("components")


def test_compiled_core_is_an_extension_module():
    from fbp_core import _ring

    assert pathlib.Path(_ring.__file__).suffix in (".so", ".pyd")


def test_every_subcommand_has_complete_help(run_fbp):
    from fbp.cli import _subcommand_modules

    out = run_fbp("--help", check=True).stdout
    assert "usage: fbp" in out
    for module in _subcommand_modules():
        assert module.COMMAND in out
        assert module.__doc__, f"fbp {module.COMMAND}: module needs a docstring"
        sub = run_fbp(module.COMMAND, "--help", check=True).stdout
        assert f"usage: fbp {module.COMMAND}" in sub
        assert len(sub.splitlines()) >= 3, f"fbp {module.COMMAND} --help is too thin:\n{sub}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^```(?:sh|bash|console)?\n(.+?)\n```", readme, flags=re.M | re.S)
    assert len(commands) >= 2, "README must open with two one-line commands"
    test_command = commands[1].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_command in ci.splitlines(), f".ci/run does not run {test_command!r}"
