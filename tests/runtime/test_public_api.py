"""The public names of the component-writing API stay put (other libraries build on them)."""

from __future__ import annotations

import fbp.codec
import fbp.component
import fbp.packet
import fbp.registry
import fbp.testing
import fbp.types


def test_public_exports():
    assert set(fbp.component.__all__) == {
        "Component", "ComponentSpec", "ERROR_PORT", "InPort", "OutPort", "REQUIRED",
        "component", "spec_of",
    }  # fmt: skip
    assert set(fbp.types.__all__) == {
        "Any", "Array", "Bool", "Bytes", "Float", "Int", "PortType", "Record", "Str", "parse_type",
    }  # fmt: skip
    assert set(fbp.testing.__all__) == {"ComponentResult", "run_component"}
    assert set(fbp.registry.__all__) == {"Registry", "search_paths"}
    for module in (fbp.component, fbp.types, fbp.testing, fbp.registry, fbp.codec):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"Packet", "PacketKind"} <= set(vars(fbp.packet))
