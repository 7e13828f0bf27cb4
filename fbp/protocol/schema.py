"""Checking messages against the JSON schemas of the npm package `fbp-protocol`.

The package ships every message's schema, resolved, in `schema/schemas.js`
(`module.exports = {...}`): `schemas[protocol]["output"][command]` for what a runtime
sends, `["input"]` for what a client sends. The runtime's tests validate every message it
sends with these (draft 4, through `jsonschema`, a test dependency), since `fbp-test`
itself looks messages up under names that do not exist and so checks nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MessageSchemas", "load_schemas"]


def load_schemas(package_dir: str | Path) -> dict:
    """Read `schema/schemas.js` of an installed fbp-protocol package.

    Raises:
        FileNotFoundError: the folder is not an fbp-protocol package.
        ValueError: the file does not hold the expected JSON object.
    """
    text = (Path(package_dir) / "schema" / "schemas.js").read_text()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError(f"{package_dir}/schema/schemas.js holds no JSON object")
    return json.loads(text[start : end + 1])


class MessageSchemas:
    """Validators for the messages of one fbp-protocol schema set.

    Args:
        schemas: what `load_schemas` returns.
    """

    def __init__(self, schemas: dict) -> None:
        self.schemas = schemas

    def errors(self, message: dict, direction: str = "output") -> list[str]:
        """Everything wrong with one message (an empty list when it is valid).

        A message whose protocol or command has no schema is an error too: a runtime must
        not invent commands.
        """
        import jsonschema

        protocol, command = message.get("protocol"), message.get("command")
        schema = self.schemas.get(protocol, {}).get(direction, {}).get(command)
        if schema is None:
            return [f"no {direction} schema for {protocol}:{command}"]
        validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
        return [
            f"{protocol}:{command} at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(message)
        ]
