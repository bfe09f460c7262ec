"""Settings of a check: every knob a field of a frozen dataclass, with the reason its value was chosen.

``knob(default, why)`` declares a field; :func:`describe` lists the fields with their values and reasons
(``--show-settings``); :func:`apply_overrides` replaces fields from ``NAME=VALUE`` strings or Python values, typed and
validated against the field's annotation (``--set``, ``verify.run(..., d=8)``). A bad name or value is a
:class:`SettingsError` that lists the valid fields.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

__all__ = ["knob", "describe", "apply_overrides", "parse_assignment", "SettingsError", "as_dict"]


class SettingsError(ValueError):
    """An unknown field or a value that does not fit the field's type (a usage error on the command line)."""


def knob(default: Any, why: str) -> Any:
    """A settings field with its default and the reason for it (shown by ``--show-settings``)."""
    return dataclasses.field(default=default, metadata={"why": why})


def _hints(settings_cls) -> dict:
    return typing.get_type_hints(settings_cls)


def describe(settings) -> list[tuple[str, Any, str, str]]:
    """(name, value, type, why) for every field of a settings instance."""
    hints = _hints(type(settings))
    rows = []
    for f in dataclasses.fields(settings):
        rows.append((f.name, getattr(settings, f.name), _type_name(hints[f.name]), f.metadata.get("why", "")))
    return rows


def as_dict(settings) -> dict:
    """The settings as a plain dict (recorded in every result)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        return f"tuple[{_type_name(args[0])}, ...]"
    if origin is typing.Union:
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert_scalar(tp, value, name: str):
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no"):
            return False
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)
        if not math.isfinite(out):
            raise ValueError
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise ValueError


def _convert(tp, value, name: str):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        for arg in typing.get_args(tp):
            try:
                return _convert(arg, value, name)
            except (ValueError, TypeError):
                continue
        raise ValueError
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            parts = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
        else:
            parts = list(value)
        if not parts:
            raise ValueError
        return tuple(_convert_scalar(elem, p, name) for p in parts)
    return _convert_scalar(tp, value, name)


def apply_overrides(settings, overrides: dict[str, Any]):
    """settings with the fields in ``overrides`` replaced, each value converted to the field's type.

    Values may be strings (from the command line: ``"8"``, ``"1e-3"``, ``"true"``, ``"1,2,4"``) or Python values.
    The settings class may validate the combination in ``__post_init__`` (raising ValueError); that is reported as
    a :class:`SettingsError` too.
    """
    if not overrides:
        return settings
    hints = _hints(type(settings))
    fields = {f.name for f in dataclasses.fields(settings)}
    converted = {}
    for name, value in overrides.items():
        if name not in fields:
            raise SettingsError(
                f"unknown setting {name!r} for {type(settings).__module__.rsplit('.', 1)[-1]}; valid fields: "
                + ", ".join(f"{n} ({_type_name(hints[n])})" for n in sorted(fields))
            )
        try:
            converted[name] = _convert(hints[name], value, name)
        except (ValueError, TypeError):
            raise SettingsError(
                f"setting {name} expects {_type_name(hints[name])}, got {value!r}; valid fields: "
                + ", ".join(f"{n} ({_type_name(hints[n])})" for n in sorted(fields))
            ) from None
    try:
        return dataclasses.replace(settings, **converted)
    except (ValueError, TypeError) as error:
        raise SettingsError(f"invalid settings: {error}") from None


def parse_assignment(text: str) -> tuple[str, str]:
    """'NAME=VALUE' -> (NAME, VALUE); SettingsError otherwise."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise SettingsError(f"--set expects NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()
