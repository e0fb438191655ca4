"""The machinery every config shares: mappings and YAML onto frozen dataclasses, checked values.

A key that is not a field is an error with a "did you mean"; a value of the wrong type or out of
range is an error that echoes it. This package imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigError


def _enum(obj: object, name: str, kind: type[enum.Enum]) -> None:
    """Accept an enum member or its string value (Python callers pass strings too)."""
    value = getattr(obj, name)
    if value is None or isinstance(value, kind):
        return
    try:
        object.__setattr__(obj, name, kind(value))
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)
        raise ConfigError(f"{name}: {value!r} is not one of {choices}.") from None


def _positive(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")


T = TypeVar("T")


def did_you_mean(given: object, choices: Iterable[str], otherwise: str = "") -> str:
    """" Did you mean 'x'?" naming the choice nearest to `given` (never `given` itself), else `otherwise`."""
    others = sorted({str(c) for c in choices} - {str(given)})
    close = difflib.get_close_matches(str(given), others, n=1)
    return f" Did you mean {close[0]!r}?" if close else otherwise


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:  # noqa: A002 - argparse's word
    """A dataclass field carrying its help text: `--help` and `help(TheConfig)` both show it.
    A mutable default is given as `default_factory=`."""
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (built from its factory), or MISSING for a required field."""
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


def show_default(value: Any) -> str:
    """A default as a user writes it: enums by value, lists comma-separated."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ",".join(show_default(v) for v in value)
    return str(value)


def documented(cls: type[T]) -> type[T]:
    """Append each field's help (and its default) to the dataclass docstring, so `help(cls)` says
    what the YAML keys and flags mean, from the same text as `--help`."""
    lines = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        text = f.metadata.get("help")
        if not text:
            continue
        default = field_default(f)
        if default is dataclasses.MISSING:
            shown = " (required)"
        elif default is None or default == () or dataclasses.is_dataclass(default):
            shown = ""
        else:
            shown = f" (default {show_default(default)})"
        lines.append(f"    {f.name}: {text}{shown}")
    if lines:
        cls.__doc__ = inspect.cleandoc(cls.__doc__ or cls.__name__) + "\n\nFields:\n" + "\n".join(lines) + "\n"
    return cls


def resolver(config_path: str) -> typing.Callable[[Any], Any]:
    """The one rule for paths in a config file: a relative path is relative to the file's folder;
    absolute paths and non-strings pass through."""
    base = os.path.dirname(os.path.abspath(config_path))

    def rel(p: Any) -> Any:
        return p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    return rel


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build a config dataclass from a mapping: unknown keys suggest the nearest field, values are
    checked against the field types (enums from their string values, nested dataclasses from
    mappings, lists to tuples)."""
    data = {} if data is None else data
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            hint = did_you_mean(key, fields, f" Valid keys: {', '.join(sorted(fields))}.")
            raise ConfigError(f"unknown key '{prefix}{key}'.{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where + ': ' if where else ''}{exc}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {tp}.")
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, key)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}.") from None
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}.")
        (inner, *_rest) = typing.get_args(tp)
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}.")
    return value


def to_dict(cfg: Any) -> Any:
    """A JSON-ready dict of a config (enums as their values)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, enum.Enum):
        return cfg.value
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping read with the safe loader; errors name the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}.")
    return data
