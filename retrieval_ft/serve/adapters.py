"""`AdapterRetriever`: one base model in memory, many tuned adapters switched per query.

LoRA adapters (query-lora, lora) are loaded side by side onto the base's transformer with peft and
left unmerged, so each costs its adapter weights only; a batch of queries may mix them: each row
goes through its own adapter in one batched pass per layer (serve/stacked.py; peft's own mixed
batches where an adapter is not plain LoRA on linear layers). Two kinds hold a model of their own
instead, as they replace whole modules: a query-only artifact (its query side) and a hybrid adapter
(its fully trained layer would wrap the layers other adapters adapt: it is merged into a copy of
the base).
Query-side artifacts (query-lora, query-only) search the base's index, since their documents keep
the base's embeddings; two-sided adapters (lora, hybrid) change the documents too and search an
index of their own, built on first use (through the embedding cache) or loaded from a saved folder.

Knows models, encoders and indexes; nothing of HTTP (see serve/app.py). Not thread-safe: callers
serialise calls (the HTTP service holds one lock).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import EncodeConfig, IndexConfig
from ..data import IRDataset, load_dataset
from ..encode import Encoder
from ..errors import ConfigError, ModelError, UnknownAdapterError
from ..index import VectorIndex, build_index
from ..models import load_model, load_query_side, resolve_model, scale_adapter
from ..precision import autocast
from ..search import Hit
from ..stamp import ArtifactKind, ArtifactStamp, read_stamp
from . import stacked

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BASE = stacked.BASE  # "no adapter" for a row of a mixed batch
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_QUERY_SIDE = (ArtifactKind.QUERY_ADAPTER, ArtifactKind.QUERY_ONLY)


@dataclass(frozen=True)
class AdapterInfo:
    """What `info()` and the HTTP service report per adapter."""

    name: str
    path: str
    method: str
    side: str  # "query" (documents keep the base: the base index) or "both" (an index of its own)
    index: str  # "base", "own", or "own, not built yet"
    alpha: float | None  # the blend with the base the stamp records (applied), None: as trained

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Adapter:
    name: str
    path: str
    stamp: ArtifactStamp
    peft_name: str | None = None  # its name among the peft adapters (users' names may clash with peft's keys)
    tower: SentenceTransformer | None = None  # query-only, hybrid: a model of its own (not a peft adapter)
    index: VectorIndex | None = None  # two-sided: its own index, once built or loaded
    index_folder: str | None = None

    @property
    def query_side(self) -> bool:
        return self.stamp.artifact in _QUERY_SIDE

    def info(self) -> AdapterInfo:
        built = "own" if self.index is not None else "own, not built yet"
        return AdapterInfo(self.name, self.path, self.stamp.method or self.stamp.artifact.value,
                           "query" if self.query_side else "both", "base" if self.query_side else built,
                           self.stamp.alpha)


class AdapterRetriever:
    """One base model and the index of its corpus, with adapters added and removed at run time.

    `data` (a dataset or its folder: the corpus is encoded through the embedding cache and indexed)
    or `index` (a saved index folder built by this base) gives the base index; two-sided adapters
    need `data` (or a saved index folder of their own, see `add`). `adapters`: name -> artifact.
    """

    def __init__(self, model: str | SentenceTransformer, *, data: IRDataset | str | Path | None = None,
                 index: str | Path | None = None, encode: EncodeConfig | None = None,
                 index_config: IndexConfig | None = None,
                 adapters: Mapping[str, str | Path] | None = None) -> None:
        if (data is None) == (index is None):
            raise ConfigError("AdapterRetriever: give exactly one of data (a corpus to index) and index (a saved "
                              "index folder).")
        self.encoder = Encoder(model, encode)
        self.base_fingerprint = self.encoder.fingerprint  # before any adapter sits on the model
        self.index_config = index_config
        self.dataset = (data if isinstance(data, IRDataset) else load_dataset(data)) if data is not None else None
        if self.dataset is not None:
            self.index = self._build(self.encoder, self.dataset)
        else:
            assert index is not None
            self.index = VectorIndex.load(index, expect_fingerprint=self.encoder.document_fingerprint)
        self._adapters: dict[str, _Adapter] = {}
        self._peft: Any = None  # the base's transformer wrapped by peft, once an adapter sits on it
        self._stacked: stacked.Stacks | None = None  # its LoRA layers' adapters side by side (serve/stacked.py)
        self._loaded = 0  # adapters ever loaded: peft names are a1, a2, ...
        for name, path in (adapters or {}).items():
            self.add(name, path)

    # -- the catalogue ---------------------------------------------------------------------------
    @property
    def base_name(self) -> str:
        return self.encoder.name

    @property
    def corpus_size(self) -> int:
        return len(self.index)

    def names(self) -> list[str]:
        return sorted(self._adapters)

    def info(self) -> list[AdapterInfo]:
        return [self._adapters[n].info() for n in self.names()]

    def add(self, name: str, path: str | Path, *, index: str | Path | None = None, replace: bool = False) -> AdapterInfo:
        """Load the artifact at `path` as adapter `name` (`replace`: in place of one of that name, which
        is removed once the new artifact's stamp checks out). `index`: a saved index folder for a
        two-sided adapter (else built on first use)."""
        if not isinstance(name, str) or not _NAME.match(name) or name == BASE:
            raise ConfigError(f"adapter name {name!r}: use 1-64 letters, digits, '-' or '_' (starting with a letter "
                              "or digit).")
        if name in self._adapters and not replace:
            raise ConfigError(f"adapter {name!r} is already loaded; remove it first or add it with replace.")
        adapter = _Adapter(name, str(resolve_model(path).location), self._checked_stamp(path))
        if name in self._adapters:
            self.remove(name)
        device = str(self.encoder.model.device)
        if adapter.stamp.artifact is ArtifactKind.QUERY_ONLY:
            adapter.tower = load_query_side(adapter.path, adapter.stamp, device=device,
                                            allow_pickle=self.encoder.config.allow_pickle)
        elif (adapter.stamp.preparation or {}).get("full_modules"):
            adapter.tower = load_model(adapter.path, device=device, allow_pickle=self.encoder.config.allow_pickle)
        else:
            self._loaded += 1
            adapter.peft_name = f"a{self._loaded}"
            self._load_peft(adapter.peft_name, adapter.path, adapter.stamp.alpha)
        if adapter.tower is not None:
            adapter.tower.eval()
        if index is not None and not adapter.query_side:
            adapter.index = VectorIndex.load(index, expect_fingerprint=self._document_encoder(adapter).document_fingerprint)
            adapter.index_folder = str(index)
        elif not adapter.query_side and self.dataset is None:
            self._unload(adapter)
            raise ConfigError(f"{path}: a {adapter.stamp.method} adapter changes the documents' embeddings and needs "
                              "an index of its own: serve from data (the corpus) or give its saved index folder.")
        self._adapters[name] = adapter
        return adapter.info()

    def remove(self, name: str) -> None:
        self._unload(self._adapter(name))
        del self._adapters[name]

    def _adapter(self, name: str) -> _Adapter:
        if name not in self._adapters:
            known = ", ".join(self.names()) or "none"
            raise UnknownAdapterError(f"unknown adapter {name!r}; loaded adapters: {known}.")
        return self._adapters[name]

    def _checked_stamp(self, path: str | Path) -> ArtifactStamp:
        """The artifact's stamp, refused unless it is an adapter or query side tuned from this base."""
        if not Path(path).expanduser().is_dir():
            raise ModelError(f"{path}: no such artifact folder; adapters are folders written by `retrieval-ft train` "
                             "(a path on the serving machine).")
        stamp = read_stamp(Path(path).expanduser())
        if stamp is None:
            raise ModelError(f"{path}: not a tuned artifact (no retrieval_ft.json); adapters come from "
                             "`retrieval-ft train --method query-lora|lora|hybrid|query-only`.")
        if stamp.artifact is ArtifactKind.FULL:
            raise ModelError(f"{path}: a full model, not an adapter; serve it as a base of its own, or train "
                             "query-lora, lora or hybrid for an adapter.")
        recorded = stamp.base.fingerprint if stamp.base is not None else None
        if recorded != self.base_fingerprint:
            raise ModelError(f"{path}: tuned from another base ({stamp.base.name if stamp.base else None!r}, "
                             f"fingerprint {str(recorded)[:12]}), not this one ({self.base_name!r}, "
                             f"{self.base_fingerprint[:12]}).")
        return stamp

    # -- peft ------------------------------------------------------------------------------------
    def _load_peft(self, name: str, folder: str, alpha: float | None) -> None:
        """The adapter onto the base's transformer, unmerged, scaled by its stamp's alpha."""
        model = self.encoder.model
        try:
            with warnings.catch_warnings():
                # peft reads transformers' deprecated `is_gradient_checkpointing`; nothing a user can act on
                warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                                        category=FutureWarning)
                if self._peft is None:
                    from peft import PeftModel

                    self._peft = PeftModel.from_pretrained(model[0].model, folder, adapter_name=name)
                    model[0].model = self._peft
                else:
                    self._peft.load_adapter(folder, adapter_name=name)
        except Exception as exc:  # peft raises several types for bad adapter files
            raise ModelError(f"{folder}: cannot load the adapter ({type(exc).__name__}: {exc}).") from None
        scale_adapter(self._peft, alpha, adapter_name=name)
        self._peft.eval()
        self._layers_changed()

    def _unload(self, adapter: _Adapter) -> None:
        name = adapter.peft_name
        if self._peft is None or name is None or name not in self._peft.peft_config:
            return  # a model of its own, freed with the adapter
        if len(self._peft.peft_config) == 1:  # the last adapter: the plain base again
            self.encoder.model[0].model = self._peft.unload()
            self._peft = None
        else:
            with warnings.catch_warnings():  # "adapter X was active": every forward names its adapters anyway
                warnings.filterwarnings("ignore", message=r"Adapter .* was active which is now deleted")
                self._peft.delete_adapter(name)
        self._layers_changed()

    @contextlib.contextmanager
    def _routed(self, names: Sequence[str]) -> Iterator[None]:
        """Each row of the next forward pass through its adapter (BASE: none): in one batched pass
        per layer (serve/stacked.py) where the adapters are plain LoRA on linear layers, else
        through peft (its active adapter for a batch of one adapter, its mixed batches for a mix)."""
        if self._peft is None:
            yield
        elif self._stacked is not None:
            with self._stacked.routed(names):
                yield
        elif len(set(names)) == 1 and names[0] != BASE:
            self._peft.base_model.set_adapter(names[0], inference_mode=True)
            yield
        else:
            with self._peft.base_model._enable_peft_forward_hooks(adapter_names=list(names)):
                yield

    def _layers_changed(self) -> None:
        """After an adapter is loaded or unloaded: the LoRA layers' adapters stacked for the batched
        pass (None: peft routes, as some adapter is not plain LoRA on linear layers)."""
        qualifies = self._peft is not None and stacked.supports(self._peft)
        self._stacked = stacked.Stacks(self._peft) if qualifies else None

    # -- encoding and search ---------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str], adapter: str | None | Sequence[str | None] = None) -> np.ndarray:
        """(len(texts), dim) float32 query embeddings, each through `adapter` (one name for all, or
        one per text; None: the base)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        names = self._per_text(adapter, len(texts))
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        towers = {n for n in set(names) if n is not None and self._adapters[n].tower is not None}
        rows = [i for i, n in enumerate(names) if n not in towers]
        if rows:
            routes = [BASE if names[i] is None else self._adapters[names[i]].peft_name or BASE for i in rows]
            out[rows] = self._encode_routed([texts[i] for i in rows], routes)
        for n in towers:
            idx = [i for i, m in enumerate(names) if m == n]
            out[idx] = self._encode_tower(self._adapters[n].tower, [texts[i] for i in idx])
        return out

    def search(self, queries: Sequence[str], k: int = 10,
               adapter: str | None | Sequence[str | None] = None) -> list[list[Hit]]:
        """Top-k hits per query, best first, each query through its adapter and that adapter's index
        (the base index for the base and query-side adapters)."""
        queries = [queries] if isinstance(queries, str) else list(queries)
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k!r}.")
        names = self._per_text(adapter, len(queries))
        vectors = self.encode_queries(queries, names)
        out: list[list[Hit]] = [[] for _ in queries]
        for key in dict.fromkeys(self._index_key(n) for n in names):
            idx = [i for i, n in enumerate(names) if self._index_key(n) == key]
            index = self.index if key is None else self._own_index(self._adapters[key])
            for i, hits in zip(idx, index.search(vectors[idx], k), strict=True):
                out[i] = [Hit(d, s) for d, s in hits]
        return out

    def _per_text(self, adapter: str | None | Sequence[str | None], n: int) -> list[str | None]:
        names = [adapter] * n if adapter is None or isinstance(adapter, str) else list(adapter)
        if len(names) != n:
            raise ConfigError(f"{len(names)} adapter names for {n} queries: give one name, or one per query.")
        for name in dict.fromkeys(names):
            if name is not None:
                self._adapter(name)
        return names

    def _index_key(self, name: str | None) -> str | None:
        """Which index a query through `name` searches: None, the base's; else the adapter's own."""
        return None if name is None or self._adapters[name].query_side else name

    def _encode_routed(self, texts: list[str], names: list[str]) -> np.ndarray:
        """The base model with each text through its peft adapter, in batches of similar length."""
        import torch
        from sentence_transformers.util import batch_to_device

        enc, model = self.encoder, self.encoder.model
        if model.training:  # eval() walks every module, each adapter's among them: not once per request
            model.eval()
        out = np.empty((len(texts), enc.dim), dtype=np.float32)
        # by length, for little padding; where peft routes a mix, grouped by adapter first (each of a
        # batch's adapters costs peft a gather and a scatter in every adapted layer)
        by_adapter = self._stacked is None
        order = sorted(range(len(texts)), key=lambda i: (names[i] if by_adapter else "", -len(texts[i])))
        size = enc.config.batch_size or 32
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            features = batch_to_device(model.preprocess([texts[i] for i in chunk], prompt=enc.query_prompt or None),
                                       model.device)
            with torch.inference_mode(), autocast(enc.precision, model.device), self._routed([names[i] for i in chunk]):
                vectors = model(features)["sentence_embedding"].float()
            if enc.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            out[chunk] = vectors.cpu().numpy()
        return out

    def _encode_tower(self, tower: SentenceTransformer, texts: list[str]) -> np.ndarray:
        enc = self.encoder
        with autocast(enc.precision, tower.device):
            vectors = tower.encode(texts, prompt=enc.query_prompt or None, batch_size=enc.config.batch_size or 32,
                                   convert_to_numpy=True, normalize_embeddings=enc.normalize, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    # -- indexes ---------------------------------------------------------------------------------
    def _build(self, encoder: Encoder, dataset: IRDataset) -> VectorIndex:
        embeddings = encoder.encode_corpus(dataset)
        return build_index(embeddings.vectors, embeddings.ids, encoder.similarity, self.index_config,
                           encoder.describe())

    def _own_index(self, adapter: _Adapter) -> VectorIndex:
        """A two-sided adapter's index: its documents encoded by the adapter merged into the weights
        (through the embedding cache, keyed by that model's fingerprint)."""
        if adapter.index is None:
            assert self.dataset is not None
            adapter.index = self._build(self._document_encoder(adapter), self.dataset)
        return adapter.index

    def _document_encoder(self, adapter: _Adapter) -> Encoder:
        """How a two-sided adapter encodes documents: its own model, or (a LoRA adapter) the artifact
        loaded alone and merged, for the time it takes to encode."""
        model = adapter.tower or load_model(adapter.path, device=str(self.encoder.model.device),
                                            allow_pickle=self.encoder.config.allow_pickle)
        return Encoder(model, self._adapter_encode_config(), name=adapter.name)

    def _adapter_encode_config(self) -> EncodeConfig:
        from dataclasses import replace

        return replace(self.encoder.config, query_prompt=self.encoder.query_prompt,
                       document_prompt=self.encoder.document_prompt, similarity=self.encoder.similarity.value)
