"""Settings of `retrieval-ft serve`: the base model, its corpus or saved index, the adapters, the HTTP limits."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .base import _positive, documented, from_dict, load_yaml, option, resolver
from .evaluation import EncodeConfig, IndexConfig

_HOST = re.compile(r"^[A-Za-z0-9.:_\-\[\]]+$")


@documented
@dataclass(frozen=True)
class ServeConfig:
    """`retrieval-ft serve`: one base model and its index, with adapters searched over HTTP.

    `index` is either a saved index folder (`retrieval-ft evaluate --save-index`, `retrieval-ft
    index`), served instead of encoding a corpus, or a mapping of index settings (IndexConfig
    fields: kind, target_recall, ...) for the index built from `data`. Give `data` or an index
    folder, not both.
    """

    model: str = option(help="base model folder, hub id or all-MiniLM-L6-v2 (bundled); every adapter is checked "
                             "against it")
    data: str | None = option(None, "corpus to encode with the base model and index (a dataset folder or corpus "
                                    ".jsonl, relative to the config file)")
    index: str | IndexConfig | None = option(None, "a saved index folder built by the base model (instead of data), "
                                                   "or index settings {kind, ...} for the index built from data")
    adapters: dict[str, str] = option(default_factory=dict, help="adapter name -> artifact folder written by "
                                                                 "`retrieval-ft train` on the base model")
    encode: EncodeConfig = option(default_factory=EncodeConfig, help="encoding settings")
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = option(8000, "port to listen on (0: any free port, printed when ready)")
    max_k: int = option(1000, "the most results a query may ask for")
    max_queries: int = option(256, "the most queries one request may carry")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model: expected a model folder or hub id, got {self.model!r}.")
        folder = self.index_folder
        if (self.data is None) == (folder is None):
            given = "both" if self.data is not None else "neither"
            raise ConfigError(f"give data (a corpus to encode and index) or index (a saved index folder), "
                              f"not {given}.")
        if isinstance(self.index, Mapping):
            object.__setattr__(self, "index", from_dict(IndexConfig, self.index, "index"))
        self._check_adapters()
        if not isinstance(self.host, str) or not _HOST.match(self.host):
            raise ConfigError(f"host: {self.host!r} is not an address or host name, e.g. 127.0.0.1 or 0.0.0.0.")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port!r} is not a port number (0 to 65535; 0 picks a free one).")
        _positive(self, "max_k")
        _positive(self, "max_queries")

    def _check_adapters(self) -> None:
        if not isinstance(self.adapters, Mapping):
            raise ConfigError(f"adapters: expected a mapping of name -> artifact folder, got {self.adapters!r}.")
        for name, path in self.adapters.items():
            if not isinstance(name, str) or not isinstance(path, str) or not path:
                raise ConfigError(f"adapters: {name!r}: {path!r}: expected a name and an artifact folder.")
        object.__setattr__(self, "adapters", dict(self.adapters))

    @property
    def index_folder(self) -> str | None:
        """The saved index folder served, or None when the index is built from `data`."""
        return self.index if isinstance(self.index, str) else None

    @property
    def index_settings(self) -> IndexConfig | None:
        """The settings of the index built from `data` (None: the defaults, or a saved folder)."""
        return self.index if isinstance(self.index, IndexConfig) else None


def load_serve_config(path: str, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """Read a serve config YAML. Relative paths in it (data, an index folder, adapter folders, a local
    model folder) are relative to the file; `overrides` (host, port from the command line) win."""
    values = load_yaml(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "model" not in values:
        raise ConfigError(f"{path}: model: required; name the base model (a folder, a hub id or all-MiniLM-L6-v2).")
    rel = resolver(path)
    for key in ("data", "index"):
        values[key] = rel(values.get(key))
    if isinstance(values.get("model"), str) and os.path.exists(rel(values["model"])):
        values["model"] = rel(values["model"])
    adapters = values.get("adapters")
    if isinstance(adapters, Mapping):
        values["adapters"] = {name: rel(p) for name, p in adapters.items()}
    elif adapters is None:
        values.pop("adapters", None)
    try:
        if isinstance(values.get("index"), Mapping):  # settings: an unknown key gets its "did you mean"
            values["index"] = from_dict(IndexConfig, values["index"], "index")
        return from_dict(ServeConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
