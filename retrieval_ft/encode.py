"""The only place that turns texts and page images into vectors: float32 `(n, dim)` arrays,
normalised when the similarity is cosine, with progress bars and an on-disk cache of corpus
embeddings.

A document with an `image` is encoded from its page (a multimodal model's image tower), any other
from its title and text. Pages are decoded a batch at a time while encoding, never all at once.

The cache key is the encoder fingerprint, the document-side settings (prompt, max length,
normalisation) and a hash of the document ids and contents (texts; for pages, the bytes of each
image file), so a changed model or corpus never reuses stale vectors. A cache file whose checksum
does not match is rebuilt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_path, cache_dir, file_digest, file_sha256, hash_strings, write_json_atomic
from ._progress import progress_display
from .config import EncodeConfig, Similarity
from .data import PageRef
from .errors import ConfigError
from .models import document_side, fingerprint, load_model, model_source
from .precision import autocast, resolve_precision
from .stamp import read_stamp

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .data import Document, IRDataset

logger = logging.getLogger(__name__)

DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus", "doc")
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Page:
    """A page to encode as an image: an image file, or `file.pdf#pN` (page N of a PDF)."""

    path: str


Item = str | Page  # what an encoder takes: a text, or a page


def document_inputs(docs: Sequence[Document], root: str | Path | None) -> list[Item]:
    """What each document is encoded from: its page when it has an `image` (resolved against the
    dataset folder `root`), else its title and text."""
    items: list[Item] = []
    for d in docs:
        if d.image is None:
            items.append(d.full_text)
        elif root is None:
            raise ConfigError(f"document {d.id!r} is a page image ({d.image}), but the dataset folder is unknown; "
                              "pass the IRDataset (or root=) so its image paths can be resolved.")
        else:
            items.append(Page(str(Path(root) / d.image)))
    return items


def _page_signature(page: Page) -> str:
    """The page's file content (and page number), for cache keys."""
    ref = PageRef.parse(page.path)
    file, number = (ref.path, str(ref.page)) if ref is not None else (page.path, "")
    try:
        digest = file_digest(file)
    except OSError:
        digest = "missing"  # reported by the loader when the page is encoded
    return f"page:{digest}:{number}"


def default_batch_size(model: Any, kind: str) -> int:
    """The batch size when none is set, measured per input kind ("query", "document", "page") on
    a CPU (eval/results/performance.md): documents encode 4-12 % faster in batches of 16 than of 32
    (less padding), short queries 4-7 % slower, so 16 for documents and 32 for queries; pages peak at
    32-64 a batch, and 32 keeps fewer decoded pages in memory. On GPUs 32 for texts,
    sentence-transformers' default (not measured here)."""
    if kind == "document" and getattr(getattr(model, "device", None), "type", "cpu") == "cpu":
        return 16
    return 32


def encode_items(model: SentenceTransformer, items: Sequence[Item], *, prompt: str = "", batch_size: int | None = None,
                 normalize: bool = True, task: str | None = None, progress: Any = None,
                 kind: str = "document") -> np.ndarray:
    """(len(items), dim) float32 embeddings of texts and pages, in the order given.

    Texts are encoded longest first in chunks (batches of similar length pad little); pages in
    their order, one batch decoded at a time. `batch_size` None takes `default_batch_size` for
    pages and for texts of `kind` ("query" or "document"). `progress` is a tqdm bar to advance, or None.
    """
    items = list(items)
    if not items:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
    extra = {"task": task} if task else {}
    out: np.ndarray | None = None
    text_idx = [i for i, x in enumerate(items) if not isinstance(x, Page)]
    page_idx = [i for i, x in enumerate(items) if isinstance(x, Page)]
    if page_idx:
        check_encodes_pages(model)
    text_idx.sort(key=lambda i: -len(items[i]))  # type: ignore[arg-type]
    text_bs = batch_size or default_batch_size(model, kind)
    page_bs = batch_size or default_batch_size(model, "page")
    chunks = [(text_idx[s:s + text_bs * 8], False) for s in range(0, len(text_idx), text_bs * 8)]
    chunks += [(page_idx[s:s + page_bs], True) for s in range(0, len(page_idx), page_bs)]
    from .data.images import load_image
    for idx, pages in chunks:
        if pages:
            inputs: list[Any] = [load_image(items[i].path) for i in idx]  # type: ignore[union-attr]
            kwargs: dict[str, Any] = {}
        else:
            inputs = [items[i] for i in idx]
            kwargs = {"prompt": prompt} if prompt else {}
        vecs = model.encode(inputs, batch_size=page_bs if pages else text_bs, convert_to_numpy=True, normalize_embeddings=normalize,
                            show_progress_bar=False, **kwargs, **extra)
        if pages:
            for img in inputs:
                img.close()
        vecs = np.asarray(vecs, dtype=np.float32)
        if out is None:
            out = np.empty((len(items), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if progress is not None:
            progress.update(len(idx))
    assert out is not None
    return out


def check_encodes_pages(model: Any) -> None:
    """Raise ConfigError unless `model` has an image tower."""
    try:
        found = model.modalities
    except AttributeError:  # a model without the attribute (older sentence-transformers, a plain module) is text-only
        found = ["text"]
    modalities = [str(m) for m in found]  # any other error in the model is its own, and surfaces
    if "image" not in modalities:
        raise ConfigError(
            f"the corpus has page images but this model encodes only {', '.join(modalities)}; use a multimodal "
            "model (CLIP/SigLIP-style, e.g. openai/clip-vit-base-patch32) for page corpora."
        )


@dataclass(frozen=True)
class CorpusEmbeddings:
    ids: list[str]
    vectors: np.ndarray  # (n_docs, dim) float32
    seconds: float  # time spent encoding (0 when read from the cache)
    cache_hit: bool
    cache_path: str | None


class Encoder:
    """A sentence-transformers model with its retrieval settings resolved once.

    `settings()` is stored beside every index and result, so search time never needs the flags
    again.
    """

    def __init__(self, model: SentenceTransformer | str, config: EncodeConfig | None = None,
                 *, name: str | None = None, trust_remote_code: bool = False) -> None:
        self.config = config or EncodeConfig()
        if isinstance(model, str):
            name = name or model
            model = load_model(model, device=self.config.device,
                               trust_remote_code=trust_remote_code or self.config.trust_remote_code,
                               max_seq_length=self.config.max_seq_length, allow_pickle=self.config.allow_pickle)
        elif self.config.max_seq_length is not None:
            model.max_seq_length = self.config.max_seq_length
        self.model = model
        source = model_source(model)
        stamp = read_stamp(source.location) if source and source.local else None
        if stamp and stamp.encode:
            # a tuned artifact: encode as it was trained, unless the caller says otherwise
            saved = stamp.encode
            self.config = replace(
                self.config,
                query_prompt=self.config.query_prompt if self.config.query_prompt is not None else saved.get("query_prompt"),
                document_prompt=self.config.document_prompt if self.config.document_prompt is not None else saved.get("document_prompt"),
                similarity=self.config.similarity or saved.get("similarity"),
            )
        self.name = name or (source.name if source else type(model).__name__)
        self.path = source.location if source else None
        prompts = dict(getattr(model, "prompts", None) or {})
        self.query_prompt = self.config.query_prompt if self.config.query_prompt is not None else prompts.get("query", "")
        self.document_prompt = self.config.document_prompt
        if self.document_prompt is None:
            self.document_prompt = next((prompts[n] for n in DOCUMENT_PROMPT_NAMES if n in prompts), "")
        sim = self.config.similarity or getattr(model, "similarity_fn_name", None) or "cosine"
        try:
            self.similarity = Similarity(sim)
        except ValueError:
            raise ConfigError(f"similarity {sim!r} is not supported for retrieval; use cosine, dot or euclidean.") from None
        self.precision = resolve_precision(self.config.precision, model.device)
        self._fingerprint: str | None = None
        self._document_fingerprint: str | None = None
        # A query/document model (query-only tuning) routes by task; plain models ignore it.
        self.routed = document_side(model) is not model

    @property
    def normalize(self) -> bool:
        return self.similarity is Similarity.COSINE

    @property
    def dim(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            dim = int(self.encode_queries(["dimension probe"]).shape[1])
        return int(dim)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the weights and modules; call `refresh()` after changing the model."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.model)
        return self._fingerprint

    @property
    def document_fingerprint(self) -> str:
        """Fingerprint of the document side alone: equal to the base model's after query-only tuning,
        so the base's cached embeddings and indexes stay valid."""
        if self._document_fingerprint is None:
            self._document_fingerprint = fingerprint(document_side(self.model)) if self.routed else self.fingerprint
        return self._document_fingerprint

    def refresh(self) -> None:
        self._fingerprint = self._document_fingerprint = None

    def settings(self) -> dict[str, Any]:
        """Everything besides the weights that decides the vectors (kept beside indexes and results)."""
        return {
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "similarity": self.similarity.value,
            "normalize": self.normalize,
            "max_seq_length": self.model.max_seq_length,
            "precision": self.precision.value,
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint,
                "document_fingerprint": self.document_fingerprint, **self.settings()}

    # -- encoding -------------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str], *, desc: str = "Encoding queries") -> np.ndarray:
        """(n_queries, dim) float32."""
        return self._encode(texts, self.query_prompt, desc, "query")

    def encode_documents(self, texts: Sequence[Item], *, desc: str = "Encoding documents") -> np.ndarray:
        """(n_docs, dim) float32; items are texts or `Page`s."""
        return self._encode(texts, self.document_prompt, desc, "document")

    def _encode(self, items: Sequence[Item], prompt: str, desc: str, task: str) -> np.ndarray:
        items = list(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        unit = "page" if any(isinstance(x, Page) for x in items) else "text"
        with progress_display(self.config.progress, desc, len(items), unit=unit, leave=False) as bar, \
                autocast(self.precision, self.model.device):
            return encode_items(self.model, items, prompt=prompt, batch_size=self.config.batch_size, kind=task,
                                normalize=self.normalize, task=task if self.routed else None, progress=bar)


    # -- corpus with cache ----------------------------------------------------------------------
    def cache_key(self, ids: Sequence[str], items: Sequence[Item]) -> str:
        settings = json.dumps({k: v for k, v in self.settings().items() if k != "query_prompt"}, sort_keys=True)
        contents = [x if isinstance(x, str) else _page_signature(x) for x in items]
        return hash_strings([f"v{CACHE_FORMAT}", self.document_fingerprint, settings, hash_strings(ids), hash_strings(contents)])

    def encode_corpus(self, docs: IRDataset | Sequence[Document] | dict[str, Document], *,
                      root: str | Path | None = None) -> CorpusEmbeddings:
        """Embeddings of every document (its page, else title + text), from the cache when this
        encoder has seen exactly this corpus before. Page paths resolve against `root`, or the
        dataset's folder when `docs` is an IRDataset."""
        from .data import IRDataset

        if isinstance(docs, IRDataset):
            root = root if root is not None else docs.root
            docs = docs.corpus
        doc_list = list(docs.values()) if isinstance(docs, dict) else list(docs)
        ids = [d.id for d in doc_list]
        texts = document_inputs(doc_list, root)
        if not self.config.cache:
            start = time.perf_counter()
            vecs = self.encode_documents(texts)
            return CorpusEmbeddings(ids, vecs, time.perf_counter() - start, False, None)
        folder = Path(self.config.cache_dir) if self.config.cache_dir else cache_dir("embeddings")
        cache = EmbeddingCache(folder)
        key = self.cache_key(ids, texts)
        cached = cache.load(key, len(ids))
        if cached is not None:
            return CorpusEmbeddings(ids, cached, 0.0, True, str(cache.array_path(key)))
        start = time.perf_counter()
        vecs = self.encode_documents(texts)
        seconds = time.perf_counter() - start
        cache.save(key, vecs, {"model": self.name, "n_docs": len(ids), "encode_seconds": seconds})
        return CorpusEmbeddings(ids, vecs, seconds, False, str(cache.array_path(key)))


class EmbeddingCache:
    """`<key>.npy` plus `<key>.json` (shape, checksum); both written atomically, data first."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def array_path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def meta_path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str, n: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The (n, dim) float32 array and its record; raises OSError, ValueError, KeyError or
        JSONDecodeError when either is missing, the checksum fails or the shape is not n rows."""
        meta = json.loads(self.meta_path(key).read_text(encoding="utf-8"))
        array_path = self.array_path(key)
        if file_sha256(array_path) != meta["sha256"]:
            raise ValueError("checksum mismatch")
        vecs = np.load(array_path, allow_pickle=False)
        if vecs.dtype != np.float32 or vecs.ndim != 2 or vecs.shape[0] != n:
            raise ValueError(f"unexpected array {vecs.dtype} {vecs.shape}")
        return vecs, meta

    def load(self, key: str, n: int) -> np.ndarray | None:
        if not self.meta_path(key).exists():
            return None
        try:
            return self.read(key, n)[0]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            logger.warning("Embedding cache %s is corrupt (%s); re-encoding.", self.array_path(key), exc)
            return None

    def save(self, key: str, vecs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        """Write the array, then its record (returned); a crash between them leaves no record,
        so the array is never trusted."""
        with atomic_path(self.array_path(key)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vecs, allow_pickle=False)
            digest = file_sha256(tmp)
        record = {"format": CACHE_FORMAT, "shape": list(vecs.shape), "sha256": digest, **info}
        write_json_atomic(self.meta_path(key), record)
        return record
