"""Command-line options made from config fields: type, choices, help and default come from the
dataclass, so each option is declared once. Flags default to None, and a config is built from the
flags that were given, so the dataclass default wins. Imports nothing heavy (`--help` stays fast)."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from typing import Any

from ..config import EncodeConfig, from_dict
from ..config.base import field_default, show_default


def choices(kind: type[enum.Enum]) -> list[str]:
    """An enum's values, as argparse choices."""
    return [m.value for m in kind]


def _plain_type(tp: Any) -> Any:
    """`int | None` -> int; `tuple[str, ...]` -> tuple; a union of several kinds (`str | float`) is
    given as text and read by the config."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = kinds[0] if len(kinds) == 1 else str
    return typing.get_origin(tp) or tp


# (config class, dest) of every option made by add_field: config_values reads only those, so a
# command's own flag that happens to share a field's name is never taken for the field
_DECLARED: set[tuple[type, str]] = set()


def add_field(group: Any, cls: type, name: str, flag: str | None = None, *, prefix: str = "",
              help: str | None = None, **kwargs: Any) -> None:  # noqa: A002 - argparse's word
    """Add the option for config field `cls.name` (flag `--name-with-dashes` unless given; stored
    as `prefix + name`). A bool field is a switch to the opposite of its default (a `--no-...`
    flag: to False)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    tp = _plain_type(typing.get_type_hints(cls)[name])
    default = field_default(f)
    text = help or f.metadata["help"]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        kwargs.setdefault("choices", choices(tp))
    elif tp is bool:
        # a --no-X switch turns X off, also where X's default is None ("decide from the context")
        off = (flag or "").startswith("--no-")
        kwargs.update(action="store_const", const=False if off else not default)
    elif tp in (int, float):
        kwargs.setdefault("type", tp)
    if tp is not bool and "choices" not in kwargs:
        kwargs.setdefault("metavar", name.upper())
    if default is not None and tp is not bool and not help and default is not dataclasses.MISSING:
        text += f" (default: {show_default(default)})"
    group.add_argument(flag or "--" + name.replace("_", "-"), dest=prefix + name, default=None, help=text, **kwargs)
    _DECLARED.add((cls, prefix + name))


def config_values(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of `cls` given on the command line (options added with `add_field`)."""
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, prefix + f.name, None)
        if value is not None and (cls, prefix + f.name) in _DECLARED:
            values[f.name] = value
    return values


ENCODE_FLAGS = {"document_prompt": "--doc-prompt"}  # fields whose flag is not the field's name
CACHE_FIELDS = ("cache", "cache_dir")


def add_encode_args(p: argparse.ArgumentParser, *, exclude: tuple[str, ...] = (), prefix: str = "") -> None:
    """The encoding flags (EncodeConfig fields) of `evaluate`, `encode` and `train`, less `exclude`."""
    g = p.add_argument_group("encoding")
    switches = {"cache": ("--no-cache", "always re-encode the corpus"), "progress": ("--no-progress", "hide progress bars")}
    for f in dataclasses.fields(EncodeConfig):
        if f.name in exclude:
            continue
        flag, text = switches.get(f.name, (ENCODE_FLAGS.get(f.name), None))
        add_field(g, EncodeConfig, f.name, flag, prefix=prefix, help=text)


def encode_config(args: argparse.Namespace, prefix: str = "", **given: Any) -> EncodeConfig:
    """The EncodeConfig of the flags given (and `given`, where not None)."""
    values = {**config_values(args, EncodeConfig, prefix), **{k: v for k, v in given.items() if v is not None}}
    return from_dict(EncodeConfig, values)
