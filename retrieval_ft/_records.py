"""Records read from JSON objects (a result's model and dataset, an artifact stamp): small frozen
dataclasses whose field types are checked on load. A key the file did not have stays absent when the
record is written again; a key this version does not know is kept as read.

This module knows nothing of what the records describe: each family names the error class its
messages raise and the fix they suggest (`class ModelInfo(Record, error=DataError, fix="...")`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")

_EXPECTED = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a list"}


def recorded_as(key: str | None = None, *, only_when_set: bool = False) -> Any:
    """A record field, None by default. `key`: its JSON key, when not the field's name;
    `only_when_set`: a new record writes it only once it has a value (a fact known late)."""
    return field(default=None, metadata={"key": key, "only_when_set": only_when_set})


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON object with known keys, one field each. `recorded` holds the keys the file had (None:
    a new record, which writes every key); `extra` keeps the keys this version does not know."""

    error: ClassVar[type[Exception]] = ValueError  # raised for a malformed object
    fix: ClassVar[str] = "restore the file"  # how to get a sound one, said at the end of each message

    recorded: frozenset[str] | None = field(default=None, compare=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __init_subclass__(cls, error: type[Exception] | None = None, fix: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if error is not None:
            cls.error = error
        if fix is not None:
            cls.fix = fix

    @classmethod
    def json_keys(cls) -> dict[str, str]:
        """Field name -> JSON key, for every field the JSON object holds."""
        return {f.name: f.metadata.get("key") or f.name for f in dataclasses.fields(cls)
                if f.name not in ("recorded", "extra")}

    @classmethod
    def from_dict(cls: type[R], raw: Any, source: str = "<dict>", prefix: str = "") -> R:
        """The record of `raw`; a value of the wrong type raises `cls.error` naming `source` and the
        field (`prefix` + key: a nested record's fields are named `outer.inner`)."""
        if not isinstance(raw, Mapping):
            cls.refuse(source, prefix.rstrip(".") or "(top level)", "a mapping", raw)
        hints = typing.get_type_hints(cls)
        keys = cls.json_keys()
        values = {attr: cls._read(raw[key], hints[attr], source, prefix + key)
                  for attr, key in keys.items() if key in raw}
        known = set(keys.values())
        return cls(**{k: v for k, v in values.items() if v is not None}, recorded=frozenset(raw),
                   extra={k: copy.deepcopy(v) for k, v in raw.items() if k not in known})

    @classmethod
    def _read(cls, value: Any, hint: Any, source: str, name: str) -> Any:
        """`value` checked against the field type `hint` (`str | None`, a nested Record, an enum)."""
        kinds = [a for a in typing.get_args(hint) if a is not type(None)] if _optional(hint) else [hint]
        kind = typing.get_origin(kinds[0]) or kinds[0]
        if value is None:
            if not _optional(hint):
                cls.refuse(source, name, _describe(kind), value)
            return None
        if issubclass(kind, Record):
            return kind.from_dict(value, source, name + ".")
        if issubclass(kind, enum.Enum):
            try:
                return kind(value)
            except (ValueError, TypeError):
                cls.refuse(source, name, _describe(kind), value)
        if not _fits(value, kind):
            cls.refuse(source, name, _describe(kind), value)
        return value

    @classmethod
    def refuse(cls, source: str, name: str, expected: str, value: Any) -> typing.NoReturn:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise cls.error(f"{source}: field {name!r} should be {expected}, not {type(value).__name__} {shown}; "
                        f"{cls.fix}.")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the keys recorded (every key for a new record, but those written only
        when set), then the unknown ones as read."""
        out = copy.deepcopy(self.extra)
        for f in dataclasses.fields(self):
            key = f.metadata.get("key") or f.name
            if f.name in ("recorded", "extra"):
                continue
            value = getattr(self, f.name)
            written = key in self.recorded if self.recorded is not None else not f.metadata.get("only_when_set")
            if value is not None or written:
                out[key] = value.to_dict() if isinstance(value, Record) else _plain(copy.deepcopy(value))
        return out

    def __getitem__(self, key: str) -> Any:
        """Deprecated: records were dicts (`result.dataset["split"]`); read the attribute instead
        (`result.dataset.split`). Kept, with a warning, so scripts written against the dicts still run."""
        attribute = next((a for a, k in self.json_keys().items() if k == key), key)
        warnings.warn(f"{type(self).__name__}[{key!r}] is deprecated; read the attribute instead "
                      f"(.{attribute}).", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _fits(value: Any, kind: type) -> bool:
    """Whether a JSON value is of `kind`: a boolean is no number, an integer is a float, and a float
    must be finite (a NaN compares false with everything)."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    if kind is float:
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def _describe(kind: type) -> str:
    if issubclass(kind, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in kind)
    return "a mapping" if issubclass(kind, Record) else _EXPECTED.get(kind, kind.__name__)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
