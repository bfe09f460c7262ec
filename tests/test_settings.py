"""Settings: every field has a reason; overrides are typed and validated (--set, verify.run)."""

import dataclasses

import pytest

from verify import registry
from verify.settings import SettingsError, apply_overrides, describe, parse_assignment


@pytest.mark.parametrize("claim_id", list(registry.claims()))
def test_every_settings_field_has_a_reason(claim_id):
    claim = registry.get(claim_id)
    for quick in (True, False):
        rows = describe(claim.settings(quick))
        assert rows and all(why for _, _, _, why in rows), [name for name, _, _, why in rows if not why]


def test_overrides_are_converted_to_the_field_types():
    s = registry.get("thm4_1").settings(True)
    t = apply_overrides(s, {"d": "8", "entry_bound": "0.5", "abs_k": "true", "grid_degrees": "1,3"})
    assert (t.d, t.entry_bound, t.abs_k, t.grid_degrees) == (8, 0.5, True, (1, 3))
    assert apply_overrides(s, {"d": 6}).d == 6  # Python values too


@pytest.mark.parametrize("overrides,message", [
    ({"nope": "1"}, r"unknown setting 'nope'.*valid fields: .*d \(int\)"),
    ({"d": "x"}, r"setting d expects int, got 'x'"),
    ({"d": "1.5"}, r"setting d expects int"),
    ({"entry_bound": "nan"}, r"setting entry_bound expects float"),
    ({"abs_k": "maybe"}, r"setting abs_k expects bool"),
    ({"d": "0"}, r"invalid settings: need d >= 1"),
])
def test_bad_overrides_are_settings_errors(overrides, message):
    with pytest.raises(SettingsError, match=message):
        apply_overrides(registry.get("thm4_1").settings(True), overrides)


def test_parse_assignment():
    assert parse_assignment(" d = 8 ") == ("d", "8")
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        parse_assignment("d8")


def test_settings_are_frozen():
    s = registry.get("prop3_3").settings(True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n = 3
