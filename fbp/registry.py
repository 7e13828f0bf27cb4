"""Finding components by name: `library/Name`.

Libraries come from three places, searched in this order:
1. built-in libraries, the subpackages of `fbp_components` (the `components/` folder);
2. the `fbp.components` entry-point group: third-party packages declare
   `[project.entry-points."fbp.components"] mylib = "mypackage.components"`;
3. folders on `FBP_PATH` (`:`-separated) and `--path`: each `DIR/NAME.py` file or
   `DIR/NAME/` package is the library `NAME` (a user's own components). DIR is added to
   the end of `sys.path`, so a library may import its sibling modules by name.

A library's components are the functions decorated with `@component` and the `Component`
subclasses defined in its module (or package). The first library of a name wins.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from fbp.component import ComponentSpec
from fbp.errors import ComponentError

__all__ = ["Registry", "search_paths"]

ENTRY_POINT_GROUP = "fbp.components"


def search_paths(extra: Iterable[str] = ()) -> list[str]:
    """Folders from `--path` (first) and then `FBP_PATH`."""
    env = [p for p in os.environ.get("FBP_PATH", "").split(os.pathsep) if p]
    return [*map(str, extra), *env]


class Registry:
    """The components visible from one set of search paths.

    Args:
        paths: extra folders (from `--path`); `FBP_PATH` is added after them.
    """

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self.paths = search_paths(paths)
        self._sources: dict[str, tuple[str, str]] | None = None
        self._loaded: dict[str, dict[str, ComponentSpec]] = {}

    # -- where libraries come from ----------------------------------------------------------

    def _discover(self) -> dict[str, tuple[str, str]]:
        """library name -> (how, where): ("module", dotted name) or ("file", path)."""
        if self._sources is not None:
            return self._sources
        sources: dict[str, tuple[str, str]] = {}
        import fbp_components

        for info in pkgutil.iter_modules(fbp_components.__path__):
            sources.setdefault(info.name, ("module", f"fbp_components.{info.name}"))
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            sources.setdefault(entry.name, ("module", entry.value.split(":")[0]))
        for folder in self.paths:
            directory = Path(folder)
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.suffix == ".py" and path.stem.isidentifier():
                    sources.setdefault(path.stem, ("file", str(path)))
                elif (path / "__init__.py").is_file() and path.name.isidentifier():
                    sources.setdefault(path.name, ("file", str(path / "__init__.py")))
        self._sources = sources
        return sources

    def libraries(self) -> list[str]:
        """Names of every library found."""
        return sorted(self._discover())

    def _load_module(self, library: str, how: str, where: str) -> ModuleType:
        try:
            if how == "module":
                return importlib.import_module(where)
            module_name = f"fbp_user_components.{library}"
            if module_name in sys.modules:
                return sys.modules[module_name]
            spec = importlib.util.spec_from_file_location(
                module_name,
                where,
                submodule_search_locations=[str(Path(where).parent)]
                if where.endswith("__init__.py")
                else None,
            )
            assert spec is not None and spec.loader is not None
            # A user's library imports its siblings as plain modules (`import helpers`,
            # `from mylib.helpers import f`), as it would when run as a script: make its
            # folder importable, after the installed packages so it never shadows them.
            folder = str(
                Path(where).parent.parent if where.endswith("__init__.py") else Path(where).parent
            )
            if folder not in sys.path:
                sys.path.append(folder)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
            return module
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            raise ComponentError(
                f"component library '{library}' ({where}) failed to load: {detail}"
            ) from exc

    def library(self, library: str) -> dict[str, ComponentSpec]:
        """The components of one library by name.

        Raises:
            ComponentError: no such library, or it fails to import.
        """
        if library in self._loaded:
            return self._loaded[library]
        sources = self._discover()
        if library not in sources:
            close = difflib.get_close_matches(library, list(sources), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ComponentError(
                f"no component library '{library}'{hint}; libraries found: "
                f"{', '.join(sorted(sources))}. A folder of your own .py files is added with "
                "--path DIR or FBP_PATH"
            )
        how, where = sources[library]
        module = self._load_module(library, how, where)
        found: dict[str, ComponentSpec] = {}
        for value in list(vars(module).values()):
            spec = getattr(value, "__fbp_component__", None)
            if not isinstance(spec, ComponentSpec):
                continue
            origin_module = spec.origin.rsplit(".", 1)[0]
            if not (
                origin_module == module.__name__ or origin_module.startswith(module.__name__ + ".")
            ):
                continue  # imported from elsewhere, belongs to its own library
            if spec.library is None:
                spec.library = library
            found.setdefault(spec.name, spec)
        self._loaded[library] = found
        return found

    def get(self, name: str) -> ComponentSpec:
        """The component `library/Name`.

        Raises:
            ComponentError: malformed name, unknown library or component (with suggestions).
        """
        if not isinstance(name, str) or name.count("/") != 1:
            raise ComponentError(f"component name {name!r} must be library/Name, e.g. core/Repeat")
        library, component = name.split("/")
        specs = self.library(library)
        if component not in specs:
            close = difflib.get_close_matches(component, list(specs), n=1)
            hint = f" Did you mean '{library}/{close[0]}'?" if close else ""
            raise ComponentError(
                f"library '{library}' has no component '{component}'.{hint} It has: "
                f"{', '.join(sorted(specs)) or 'nothing'} (see `fbp components`)"
            )
        return specs[component]

    def all(self) -> tuple[list[ComponentSpec], list[ComponentError]]:
        """Every component of every library, and the libraries that failed to load."""
        specs: list[ComponentSpec] = []
        errors: list[ComponentError] = []
        for library in self.libraries():
            try:
                specs.extend(self.library(library)[name] for name in sorted(self.library(library)))
            except ComponentError as exc:
                errors.append(exc)
        return specs, errors
