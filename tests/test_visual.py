"""Visual document retrieval: generated pages, a tiny CLIP built offline, lazy page encoding, every
tuning method on (query, page) pairs, PDF pages in training, and the visual demo end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.config import EncodeConfig, EvalConfig, TrainConfig
from retrieval_ft.data import load_dataset
from retrieval_ft.data.demo_pages import COMPANIES, KINDS, demo_pages, render_page, write_demo_pages
from retrieval_ft.encode import Encoder, Page
from retrieval_ft.errors import ConfigError, DataError
from retrieval_ft.models import merge_adapter
from retrieval_ft.pipeline import evaluate
from retrieval_ft.stamp import read_stamp
from retrieval_ft.train import finetune

from .conftest import needs_clip_vocabulary, shared_dataset

ENC = EncodeConfig(batch_size=16, progress=False)


@pytest.fixture(scope="session")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_pages(tmp_path_factory.mktemp("pages") / "demo-pages", pages_per_combo=1)


def _combo(page_id: str) -> tuple[str, str, str]:
    company, kind, variant, _ = page_id.split("-")
    return company, kind, variant


# -- the page generator -------------------------------------------------------------------------
def test_demo_pages_are_seeded_and_test_combinations_are_unseen():
    pages_a, queries_a, qrels_a = demo_pages(2, seed=3)
    pages_b, queries_b, qrels_b = demo_pages(2, seed=3)
    assert pages_a == pages_b and queries_a == queries_b and qrels_a == qrels_b
    assert np.array_equal(np.asarray(render_page(pages_a[0])), np.asarray(render_page(pages_b[0])))
    assert demo_pages(2, seed=4)[1] != queries_a
    assert len(pages_a) == 2 * len(COMPANIES) * sum(len(v) for v, _ in KINDS.values())

    seen = {s: {_combo(d) for docs in qrels_a[s].values() for d in docs} for s in qrels_a}
    assert not seen["train"] & seen["test"] and not seen["train"] & seen["dev"] and not seen["dev"] & seen["test"]
    assert {c for c, _, _ in seen["train"]} == {name.lower() for name, _, _ in COMPANIES}
    for split, judged in qrels_a.items():
        for qid, docs in judged.items():
            (combo,) = {_combo(d) for d in docs}  # one combination per query ...
            assert len(docs) == 2  # ... and every page of it
            words = queries_a[qid].lower()
            assert combo[0] in words and combo[1] in words and combo[2] in words, (split, words, combo)


def test_demo_pages_load_as_a_page_corpus(pages: Path):
    ds = load_dataset(pages)
    assert len(ds.corpus) == 150 and all(d.image and (pages / d.image).is_file() for d in ds.corpus.values())
    assert ds.splits == ["dev", "test", "train"]


# -- the tiny CLIP --------------------------------------------------------------------------------
def test_tiny_clip_uses_clips_tokenizer_and_reloads(tiny_clip: Path):
    from sentence_transformers import SentenceTransformer

    from retrieval_ft.tiny_clip import clip_tokenizer

    tok = clip_tokenizer()
    assert len(tok) == 49408 and tok.bos_token_id == 49406 and tok.eos_token_id == 49407
    ids = tok("an overdue invoice from Globex").input_ids
    assert ids[0] == 49406 and ids[-1] == 49407 and tok.decode(ids, skip_special_tokens=True).strip() == "an overdue invoice from globex"
    model = SentenceTransformer(str(tiny_clip), device="cpu")
    assert set(model.modalities) >= {"text", "image"} and model.max_seq_length == 32


# -- encoding pages ---------------------------------------------------------------------------------
def test_pages_are_decoded_a_batch_at_a_time(tiny_clip: Path, pages: Path, monkeypatch: pytest.MonkeyPatch):
    import retrieval_ft.data.images as images

    live, peak, opened = [0], [0], [0]
    real = images.load_image

    def counting(path, pdf_scale=2.0):
        img = real(path, pdf_scale)
        live[0] += 1
        opened[0] += 1
        peak[0] = max(peak[0], live[0])
        close = img.close

        def closing():
            live[0] -= 1
            close()

        img.close = closing
        return img

    monkeypatch.setattr(images, "load_image", counting)
    enc = Encoder(str(tiny_clip), EncodeConfig(batch_size=8, progress=False, cache=False))
    ds = load_dataset(pages)
    emb = enc.encode_corpus(ds)
    assert emb.vectors.shape == (150, 64) and emb.vectors.dtype == np.float32
    assert opened[0] == 150 and peak[0] <= 8 and live[0] == 0
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    # batching does not change a page's vector
    first = ds.corpus[emb.ids[5]]
    alone = enc.encode_documents([Page(str(pages / first.image))])
    np.testing.assert_allclose(alone[0], emb.vectors[5], atol=1e-5)


def test_real_vidore_pages_evaluate_and_cache_by_image_content(tiny_clip: Path, tmp_path: Path):
    folder = tmp_path / "vidore"
    shutil.copytree(shared_dataset("vidore_arxivqa_sample"), folder)
    for f in folder.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    cfg = EvalConfig(encode=ENC, metrics=("ndcg@10", "recall@100"))
    first = evaluate(str(tiny_clip), folder, cfg)
    assert first.dataset.n_docs == 10 and first.dataset.n_queries_judged == 2
    assert 0 <= first.metrics["ndcg@10"] <= 1 and first.metrics["recall@100"] == 1.0
    assert all(len(hits) == 10 for hits in first.top_docs.values())
    assert evaluate(str(tiny_clip), folder, cfg).cache["hit"] is True
    # a changed page (same path) is re-encoded, and results on it are not comparable with earlier ones
    shutil.copy(folder / "images" / "1.png", folder / "images" / "0.png")
    changed = evaluate(str(tiny_clip), folder, cfg)
    assert changed.cache["hit"] is False and changed.dataset.fingerprint != first.dataset.fingerprint


def test_a_text_only_model_refuses_pages(tiny_model_path: Path, pages: Path):
    with pytest.raises(ConfigError, match="page images but this model encodes only text"):
        evaluate(str(tiny_model_path), pages, EvalConfig(encode=ENC))


def test_missing_and_corrupt_pages_name_the_file_or_are_skipped(tiny_clip: Path, pages: Path, tmp_path: Path):
    folder = tmp_path / "pages"
    shutil.copytree(pages, folder)
    ds = load_dataset(folder)
    missing, corrupt, truncated = sorted(ds.corpus)[:3]
    (folder / ds.corpus[corrupt].image).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = (folder / ds.corpus[truncated].image).read_bytes()
    (folder / ds.corpus[truncated].image).write_bytes(data[: len(data) // 2])
    cfg = EvalConfig(encode=EncodeConfig(batch_size=16, progress=False, cache=False))
    # corrupt and truncated pages fail while encoding, naming the file ...
    with pytest.raises(DataError, match=rf"images/({corrupt}|{truncated}).png: unreadable image"):
        evaluate(str(tiny_clip), folder, cfg)
    # ... or are skipped and counted on request
    result = evaluate(str(tiny_clip), folder, EvalConfig(encode=cfg.encode, images="skip"))
    assert sorted(result.dataset.skipped_pages) == sorted([corrupt, truncated]) and result.dataset.n_docs == 148
    # a missing page is caught when the dataset loads, with the line that names it
    (folder / ds.corpus[missing].image).unlink()
    with pytest.raises(DataError, match=rf"corpus.jsonl:\d+ \(field 'image'\): image .*{missing}.png not found"):
        load_dataset(folder)


def test_a_page_path_may_not_leave_the_dataset_folder(tmp_path: Path):
    folder = tmp_path / "escape"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "", "image": "../secret.png"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta\t1\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:1 \(field 'image'\).*leaves the dataset folder"):
        load_dataset(folder)


# -- tuning on (query, page) pairs ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["full", "lora", "hybrid", "query-only"])
def test_tiny_clip_tunes_saves_reloads_and_evaluates(tiny_clip: Path, pages: Path, tmp_path: Path, method: str):
    cfg = TrainConfig(method=method, max_steps=3, batch_size=16, lr=1e-3, evals_per_epoch=1, dev_corpus_size=60)
    result = finetune(str(tiny_clip), pages, cfg, tmp_path / "tuned", encode=ENC)
    stamp = read_stamp(result.artifact)
    assert stamp is not None and stamp.method == method and stamp.steps == 3
    assert stamp.base.path == str(tiny_clip.resolve())

    ds = load_dataset(pages)
    some = [Page(str(pages / ds.corpus[d].image)) for d in sorted(ds.corpus)[:6]]
    base, tuned = Encoder(str(tiny_clip), ENC), Encoder(str(result.artifact), ENC)
    queries = ["overdue invoice from Globex", "Acme slide with a pie chart"]
    assert not np.allclose(base.encode_queries(queries), tuned.encode_queries(queries), atol=1e-4)
    if method == "query-only":  # the document side is the base: its page vectors are unchanged
        np.testing.assert_array_equal(base.encode_documents(some), tuned.encode_documents(some))
        assert tuned.document_fingerprint == base.fingerprint
    else:
        assert not np.allclose(base.encode_documents(some), tuned.encode_documents(some), atol=1e-4)
    if method == "hybrid":
        assert stamp.preparation["full_modules"] == ["text_model.encoder.layers.1", "vision_model.encoder.layers.1"]
    if method in ("lora", "hybrid"):
        merged = merge_adapter(result.artifact, tmp_path / "merged")
        diff = np.abs(Encoder(str(merged), ENC).encode_documents(some) - tuned.encode_documents(some)).max()
        assert diff < 1e-4
    evaluated = evaluate(str(result.artifact), pages, EvalConfig(encode=ENC))
    assert evaluated.dataset.n_queries_judged == 60 and 0 <= evaluated.metrics["ndcg@10"] <= 1


def test_pdf_pages_train_through_rendered_page_files(tiny_clip: Path, tmp_path: Path):
    from PIL import Image

    folder = tmp_path / "pdfs"
    (folder / "pages").mkdir(parents=True)
    (folder / "qrels").mkdir()
    specs = [p for p in demo_pages(1, seed=5)[0] if p.kind in ("invoice", "slide")][:8]
    sheets = [render_page(p).convert("RGB") for p in specs]
    sheets[0].save(folder / "pages" / "bundle.pdf", save_all=True, append_images=sheets[1:])
    Image.new("RGB", (120, 160), "white").save(folder / "pages" / "blank.png")
    lines = [json.dumps({"_id": f"q{i}", "text": f"{p.variant} {p.kind} from {COMPANIES[p.company][0]}"})
             for i, p in enumerate(specs)]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    judged = "".join(f"q{i}\tbundle.pdf#p{i + 1}\t1\n" for i in range(len(specs)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + judged)
    result = finetune(str(tiny_clip), folder, TrainConfig(max_steps=2, batch_size=4, lr=1e-3, evals_per_epoch=1),
                      tmp_path / "tuned", encode=ENC)
    from retrieval_ft._io import cache_dir, file_sha256

    # one query is held out for model selection; each training pair's PDF page was rendered once
    assert result.stamp.data.pairs == 7
    rendered = list((cache_dir("pages") / file_sha256(folder / "pages" / "bundle.pdf")[:32]).glob("p*.png"))
    assert len(rendered) == 7 and all(Image.open(p).size in ((480, 640), (640, 480)) for p in rendered)  # scale 2


# -- the visual demo, end to end -------------------------------------------------------------------
def test_visual_demo_lifts_held_out_pages_from_random_to_useful(tmp_path: Path):
    from retrieval_ft.config import load_run_config
    from retrieval_ft.pipeline import run

    needs_clip_vocabulary()
    root = Path(__file__).resolve().parents[1]
    config = load_run_config(str(root / "configs" / "visual-demo.yaml"), {"out": str(tmp_path / "run")})
    report = run(config)
    assert report.base.metrics["ndcg@10"] < 0.1  # an untrained encoder: near random
    assert report.tuned.metrics["ndcg@10"] >= 0.6  # held-out combinations and pages
    assert report.verdict.passed
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "Pages retrieved for the worst queries" in html and html.count("data:image/jpeg;base64,") >= 10
    saved = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    worst = saved["worst_pages"]
    assert len(worst) == 5 and all(entry["hits"] for entry in worst)
    assert worst[0]["tuned"] == min(saved["tuned"]["per_query"]["ndcg@10"].values())


def test_a_plain_transformers_clip_folder_loads_as_a_hub_clip_would(tmp_path: Path, pages: Path):
    """A folder holding only `save_pretrained` output (what openai/clip-vit-base-patch32 is on the
    hub) evaluates without any sentence-transformers files."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from retrieval_ft.tiny_clip import clip_tokenizer

    tok = clip_tokenizer()
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 16},
        projection_dim=16)
    folder = tmp_path / "clip-vit-tiny"
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(folder)
    assert not (folder / "modules.json").exists()
    result = evaluate(str(folder), pages, EvalConfig(encode=ENC))
    assert result.dataset.n_docs == 150 and 0 <= result.metrics["ndcg@10"] <= 1


@pytest.mark.parametrize("split", ["train", "dev"])  # a dev page is otherwise first read at the first evaluation
def test_a_corrupt_page_stops_training_before_the_first_step(tiny_clip: Path, pages: Path, tmp_path: Path, split: str):
    folder = tmp_path / "pages"
    shutil.copytree(pages, folder)
    ds = load_dataset(folder)
    victim = next(iter(next(iter(ds.split(split).values()))))
    (folder / ds.corpus[victim].image).write_bytes(b"GIF89a truncated")
    with pytest.raises(DataError, match=rf"{victim}.png: unreadable image"):
        finetune(str(tiny_clip), folder, TrainConfig(max_steps=1, batch_size=8), tmp_path / "tuned", encode=ENC)
    assert not (tmp_path / "tuned").exists()  # no checkpoints left to block a rerun


def test_a_text_only_model_cannot_be_tuned_on_pages(tiny_model_path: Path, pages: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="page images but this model encodes only text"):
        finetune(str(tiny_model_path), pages, TrainConfig(max_steps=1, batch_size=8), tmp_path / "a", encode=ENC)


def test_a_corpus_mixing_pages_and_texts_encodes_but_does_not_train(tiny_clip: Path, pages: Path, tmp_path: Path):
    folder = tmp_path / "mixed"
    shutil.copytree(pages, folder)
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    lines[0] = json.dumps({"_id": first["_id"], "title": "", "text": "an invoice from Acme"})
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_dataset(folder)
    enc = Encoder(str(tiny_clip), EncodeConfig(batch_size=16, progress=False, cache=False))
    vecs = enc.encode_corpus(ds).vectors
    np.testing.assert_allclose(vecs[0], enc.encode_documents(["an invoice from Acme"])[0], atol=1e-5)
    with pytest.raises(DataError, match="149 of 150 documents are page images"):
        finetune(str(tiny_clip), ds, TrainConfig(max_steps=1), tmp_path / "t", encode=ENC)


def test_empty_input_encodes_to_an_empty_array(tiny_clip: Path):
    from sentence_transformers import SentenceTransformer

    from retrieval_ft.encode import encode_items

    model = SentenceTransformer(str(tiny_clip), device="cpu")
    out = encode_items(model, [])
    assert out.shape == (0, model.get_embedding_dimension()) == (0, 64) and out.dtype == np.float32


def test_report_text_with_control_characters_stays_xml():
    import xml.etree.ElementTree as ET

    from retrieval_ft.report import _esc

    text = "invoice\x00 from <Acme> & \x1b[1mGlobex\x0c"
    root = ET.fromstring(f"<p>{_esc(text)}</p>")
    assert root.text == "invoice\ufffd from <Acme> & \ufffd[1mGlobex\ufffd"
