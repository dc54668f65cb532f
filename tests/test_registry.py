"""``Registry``: register, look up, refuse duplicates and unknown names clearly."""

from __future__ import annotations

import pytest

from fairmetric.registry import Registry


def test_register_get_and_order():
    reg: Registry[type] = Registry("widget")

    @reg.register("b")
    class B:
        pass

    class A:
        pass

    assert reg.register("a", A) is A
    assert reg.get("b") is B and reg.get("a") is A
    assert reg.names() == ["b", "a"] and list(reg) == ["b", "a"] and len(reg) == 2
    assert "a" in reg and "c" not in reg
    assert reg.items() == [("b", B), ("a", A)]
    assert "widget" in repr(reg)
    reg.register("b", B)  # the same object again is harmless
    assert reg.unregister("a") is A and reg.names() == ["b"]


def test_duplicates_unknown_and_bad_names():
    reg: Registry[int] = Registry("fairness term")
    reg.register("x", 1)
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        reg.register("x", 2)
    reg.register("x", 2, replace=True)
    assert reg.get("x") == 2
    with pytest.raises(ValueError, match="unknown fairness term 'y'; valid names: x"):
        reg.get("y")
    with pytest.raises(ValueError, match="valid names: x"):
        reg.get(["unhashable"])  # type: ignore[arg-type]
    for bad in ["", "a b", "a-b", 3]:
        with pytest.raises(ValueError, match="letters, digits"):
            reg.register(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Registry("")
    with pytest.raises(ValueError, match="none registered"):
        Registry("thing").get("z")
