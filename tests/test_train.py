"""Fine-tuning end to end on a tiny offline encoder: each method trains, saves, reloads, evaluates."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_ft.cli import main
from retrieval_ft.config import EncodeConfig, HardNegatives, Similarity, TrainConfig
from retrieval_ft.data import load_dataset
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError, DataError, ModelError
from retrieval_ft.models import fingerprint, load_model, merge_adapter
from retrieval_ft.pipeline import evaluate
from retrieval_ft.stamp import STAMP
from retrieval_ft.train import finetune, mine_hard_negatives, training_data
from retrieval_ft.train.losses import FixedDocumentsMNRL

from .conftest import write_beir

TEXTS = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose"]
FAST = dict(max_steps=4, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
ENC = EncodeConfig(progress=False)
STAMP_KEYS = {"artifact", "method", "base", "data", "config", "learning_rate", "encode", "precision", "max_seq_length",
              "steps", "distributed", "train_seconds", "eval_seconds", "peak_memory_mb", "trainable_params",
              "total_params", "preparation", "best_dev_ndcg@10", "dev_history", "best_checkpoint", "versions",
              "created", "artifact_bytes", "timings"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("train-data") / "beir", n_docs=60)


@pytest.fixture(scope="module")
def trained(tiny_model_path: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One short run per method (learning rates high enough to move a tiny model in 4 steps)."""
    out = tmp_path_factory.mktemp("artifacts")
    runs = {}
    for method, lr in (("full", 5e-3), ("lora", 2e-2), ("hybrid", 2e-2), ("query-only", 5e-3), ("query-lora", 2e-2)):
        runs[method] = finetune(str(tiny_model_path), data_dir, TrainConfig(method=method, lr=lr, **FAST),
                                out / method, encode=ENC)
    return runs


@pytest.mark.parametrize("method", ["full", "lora", "hybrid", "query-only", "query-lora"])
def test_each_method_trains_saves_reloads_and_evaluates(trained, method, tiny_model_path, data_dir):
    result = trained[method]
    stamp = json.loads((result.artifact / STAMP).read_text())
    assert stamp["method"] == method and stamp["steps"] == 4
    assert stamp["base"]["fingerprint"] == fingerprint(load_model(str(tiny_model_path)))
    assert stamp["data"]["fingerprint"] == load_dataset(data_dir).fingerprint("train")
    for key in ("train_seconds", "peak_memory_mb", "trainable_params", "total_params", "best_dev_ndcg@10", "versions",
                "config", "artifact_bytes"):
        assert key in stamp, key
    assert set(stamp) == STAMP_KEYS and set(stamp["base"]) == {"name", "path", "fingerprint"}
    assert set(stamp["data"]) == {"path", "split", "fingerprint", "pairs", "hard_negatives", "dev", "dev_corpus_size"}
    assert result.stamp.to_dict() == stamp and result.stamp.data.dev == stamp["data"]["dev"]
    # 4 train queries x 4 pairs at batch 8: per-query batching (auto, shared towers) forms 4 batches of 4
    # an epoch, so 4 steps make one epoch and 2 evaluations; the query-side methods' plain batches make 2
    assert len(stamp["dev_history"]) == (4 if method.startswith("query-") else 2)
    assert result.best_dev_ndcg == max(h["ndcg@10"] for h in stamp["dev_history"])

    base = Encoder(str(tiny_model_path), ENC)
    tuned = Encoder(str(result.artifact), ENC)
    assert tuned.fingerprint != base.fingerprint  # it learned something
    assert not np.allclose(tuned.encode_queries(TEXTS), base.encode_queries(TEXTS), atol=1e-4)
    res = evaluate(tuned, data_dir)
    assert 0.0 <= res.metrics["ndcg@10"] <= 1.0 and res.model.name == str(result.artifact)


def test_parameter_counts_and_sizes_follow_the_method(trained):
    full, lora, hybrid = trained["full"], trained["lora"], trained["hybrid"]
    assert full.trainable_params == full.total_params
    assert 0 < lora.trainable_params < hybrid.trainable_params < full.trainable_params
    assert lora.artifact_bytes < full.artifact_bytes
    assert json.loads((hybrid.artifact / STAMP).read_text())["preparation"]["full_modules"] == ["encoder.layer.1"]


@pytest.mark.parametrize("method", ["query-only", "query-lora"])
def test_query_side_methods_keep_documents_bit_identical(trained, tiny_model_path, method):
    base = Encoder(str(tiny_model_path), ENC)
    tuned = Encoder(str(trained[method].artifact), ENC)
    assert tuned.routed and tuned.document_fingerprint == base.fingerprint
    np.testing.assert_array_equal(tuned.encode_documents(TEXTS), base.encode_documents(TEXTS))
    # plain encode (no task) also takes the document side: documents cannot be encoded by mistake
    plain = tuned.model.encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_array_equal(plain, base.model.encode(TEXTS, convert_to_numpy=True))
    assert not np.allclose(tuned.encode_queries(TEXTS), base.encode_queries(TEXTS), atol=1e-4)


@pytest.mark.parametrize("method", ["query-only", "query-lora"])
def test_query_only_reuses_base_corpus_embeddings(trained, tiny_model_path, data_dir, method):
    evaluate(str(tiny_model_path), data_dir)
    again = evaluate(str(trained[method].artifact), data_dir)
    assert again.cache["hit"] is True


def test_query_side_artifacts_hold_the_query_side_alone(trained):
    """query-only keeps one tower (not both), query-lora its adapter: the documents' side is the base,
    found through the stamp."""
    full, qo, ql, lora = (trained[m] for m in ("full", "query-only", "query-lora", "lora"))
    assert qo.stamp.artifact.value == "query-only" and ql.stamp.artifact.value == "query-adapter"
    assert "Router" not in (qo.artifact / "modules.json").read_text()
    assert qo.artifact_bytes < 1.2 * full.artifact_bytes  # one model's weights, not two
    assert (ql.artifact / "adapter_config.json").is_file() and not (ql.artifact / "model.safetensors").exists()
    assert ql.artifact_bytes < 1.2 * lora.artifact_bytes and 0 < ql.trainable_params < ql.total_params


def test_query_only_artifact_of_the_older_layout_still_loads(trained, tmp_path):
    """Query-only artifacts written before held both towers as one Router model; they load as they are."""
    old = tmp_path / "old"
    load_model(str(trained["query-only"].artifact)).save(str(old))  # loaded: routed beside its base
    (old / STAMP).write_text((trained["query-only"].artifact / STAMP).read_text())
    assert "Router" in (old / "modules.json").read_text()
    np.testing.assert_array_equal(Encoder(str(old), ENC).encode_queries(TEXTS),
                                  Encoder(str(trained["query-only"].artifact), ENC).encode_queries(TEXTS))


def test_query_lora_merges_into_a_query_only_artifact_and_blends(trained, tiny_model_path, tmp_path):
    artifact = trained["query-lora"].artifact
    merged = merge_adapter(artifact, tmp_path / "merged")
    assert json.loads((merged / STAMP).read_text())["artifact"] == "query-only"
    adapter, out, base = (Encoder(str(p), ENC) for p in (artifact, merged, tiny_model_path))
    assert np.abs(adapter.encode_queries(TEXTS) - out.encode_queries(TEXTS)).max() < 1e-5
    np.testing.assert_array_equal(out.encode_documents(TEXTS), base.encode_documents(TEXTS))
    # a query-only artifact blended with its base: alpha 0 gives the base's queries
    zero = Encoder(str(merge_adapter(merged, tmp_path / "zero", alpha=0.0)), ENC)
    assert np.abs(zero.encode_queries(TEXTS) - base.encode_queries(TEXTS)).max() < 1e-5
    with pytest.raises(ModelError, match="nothing to merge"):
        merge_adapter(merged, tmp_path / "again")


@pytest.mark.parametrize("method", ["lora", "hybrid"])
def test_merged_adapter_embeds_like_the_adapter(trained, method, tmp_path):
    adapter = Encoder(load_model(str(trained[method].artifact), merge_adapters=False), ENC)  # peft layers, unmerged
    merged_dir = merge_adapter(trained[method].artifact, tmp_path / "merged")
    merged = Encoder(str(merged_dir), ENC)
    in_memory = Encoder(str(trained[method].artifact), ENC)  # merged on load
    assert json.loads((merged_dir / STAMP).read_text())["artifact"] == "full"
    diff = np.abs(adapter.encode_documents(TEXTS) - merged.encode_documents(TEXTS)).max()
    assert diff < 1e-4
    np.testing.assert_array_equal(in_memory.encode_documents(TEXTS), merged.encode_documents(TEXTS))
    assert in_memory.fingerprint == merged.fingerprint
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()


def test_adapter_without_its_base_is_refused(trained, tmp_path):
    import shutil

    copy = tmp_path / "adapter"
    shutil.copytree(trained["lora"].artifact, copy)
    stamp = json.loads((copy / STAMP).read_text())
    stamp["base"] = {**stamp["base"], "name": str(tmp_path / "gone"), "path": str(tmp_path / "gone")}
    (copy / STAMP).write_text(json.dumps(stamp))
    with pytest.raises(ModelError, match="needs its base model"):
        load_model(str(copy))


class StopAt:
    """A Trainer callback that interrupts training, as a kill would, after a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __getattr__(self, name):  # every other callback event is a no-op
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_reaches_the_same_model(tiny_model_path, data_dir, tmp_path):
    config = TrainConfig(method="full", lr=5e-3, max_steps=6, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
    whole = finetune(str(tiny_model_path), data_dir, config, tmp_path / "whole", encode=ENC)
    with pytest.raises(KeyboardInterrupt):
        finetune(str(tiny_model_path), data_dir, config, tmp_path / "cut", encode=ENC, callbacks=[StopAt(5)])
    assert not (tmp_path / "cut" / STAMP).exists() and (tmp_path / "cut" / "checkpoints").is_dir()
    with pytest.raises(ConfigError, match="pass --resume"):
        finetune(str(tiny_model_path), data_dir, config, tmp_path / "cut", encode=ENC)
    # the checkpoints continue only the run that wrote them
    with pytest.raises(ConfigError, match=r"written with other settings \(config\.lr: 0\.005 -> 0\.001\)"):
        finetune(str(tiny_model_path), data_dir, dataclasses.replace(config, lr=1e-3), tmp_path / "cut", encode=ENC,
                 resume=True)
    resumed = finetune(str(tiny_model_path), data_dir, config, tmp_path / "cut", encode=ENC, resume=True)
    a = Encoder(str(whole.artifact), ENC).encode_documents(TEXTS)
    b = Encoder(str(resumed.artifact), ENC).encode_documents(TEXTS)
    # same seed, same data order (the checkpoint restores RNG states): equal up to float reassociation
    assert np.abs(a - b).max() < 1e-5
    assert resumed.stamp.steps == 6 and [h["step"] for h in resumed.history] == [h["step"] for h in whole.history]


def test_dev_queries_come_from_train_never_test(tmp_path):
    ds = load_dataset(write_beir(tmp_path / "d"))
    td = training_data(ds, TrainConfig())
    train_q = set(ds.split("train"))
    assert set(td.dev_qrels) <= train_q and not set(td.dev_qrels) & set(ds.split("test"))
    assert not {q for q, _ in td.pairs} & set(td.dev_qrels)
    # a dataset with a dev split uses it
    (tmp_path / "d" / "qrels" / "dev.tsv").write_text((tmp_path / "d" / "qrels" / "test.tsv").read_text())
    ds = load_dataset(tmp_path / "d")
    td = training_data(ds, TrainConfig())
    assert td.dev_source == "split 'dev'" and set(td.dev_qrels) == set(ds.split("dev"))


def test_a_dev_split_without_relevant_judgments_is_refused_before_training(tmp_path):
    """Before, model selection found no dev query and failed at the first evaluation, after training steps."""
    folder = write_beir(tmp_path / "d")
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines()
    zeros = [lines[0]] + ["\t".join(line.split("\t")[:2] + ["0"]) for line in lines[1:]]
    (folder / "qrels" / "dev.tsv").write_text("\n".join(zeros) + "\n")
    with pytest.raises(DataError, match="split 'dev' .* has no query with a relevant judgment"):
        training_data(load_dataset(folder), TrainConfig())


def test_hard_negative_mining_skips_positives_and_near_positives():
    docs = np.array([[1, 0], [0.99, 0.141], [0.9, 0.436], [0.6, 0.8], [0, 1]], dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    query = {"q": np.array([1, 0], dtype=np.float32)}
    qrels = {"q": {"d0": 1, "d2": 1}}
    negs = mine_hard_negatives([("q", "d0")], qrels, query, ["d0", "d1", "d2", "d3", "d4"], docs,
                               num=2, range_max=5, relative_margin=0.05, similarity=Similarity.COSINE)
    # d1 scores 0.99 >= 0.95 * 1.0 (likely an unjudged positive); d2 is judged relevant
    assert negs == [["d3", "d4"]]


def test_hard_negative_margin_applies_to_euclidean_scores():
    """Euclidean scores are negative squared distances: the positive is scored the same way, and a
    negative must lie (1 + margin) x the positive's squared distance away. Before, the positive
    was scored by inner product (0 here), and every candidate, even one nearer than the positive,
    passed as a negative."""
    docs = np.array([[1, 0], [0, 1.02], [0, 1.1], [0, 0.5], [-2, 0]], dtype=np.float32)
    query = {"q": np.array([0, 0], dtype=np.float32)}
    negs = mine_hard_negatives([("q", "d0")], {"q": {"d0": 1}}, query, ["d0", "d1", "d2", "d3", "d4"], docs,
                               num=3, range_max=5, relative_margin=0.05, similarity=Similarity.EUCLIDEAN)
    # d3 is nearer than the positive and d1 within 5% of its squared distance (1.0404 < 1.05)
    assert negs == [["d2", "d4"]]


def test_fixed_documents_loss_exact_value():
    class Identity(torch.nn.Module):
        def forward(self, features):
            return {"sentence_embedding": features["x"]}

    docs = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    loss = FixedDocumentsMNRL(Identity(), docs, normalize=False, scale=1.0)
    q = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([[0, 2], [1, 0]])  # positive first, then a hard negative
    value = loss([{"x": q}], labels).item()
    # candidates d0, d2, d1, d0; row 0 target col 0 (the later d0 is masked), row 1 target col 2
    row0 = -2 + math.log(math.exp(2) + math.exp(2) + math.exp(0))
    row1 = -1 + math.log(math.exp(0) + math.exp(1) + math.exp(1) + math.exp(0))
    assert value == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_config_rejects_inconsistent_settings():
    with pytest.raises(ConfigError, match="full_modules applies to method 'hybrid' only"):
        TrainConfig(method="lora", full_modules=("encoder.layer.1",))
    with pytest.raises(ConfigError, match="method: 'qlora' is not one of"):
        TrainConfig(method="qlora")
    # method defaults apply only where a value is not given
    from retrieval_ft.config import DEFAULT_LR, Method

    for m in Method:
        assert TrainConfig(method=m).learning_rate == DEFAULT_LR[m] and TrainConfig(method=m, lr=3e-6).learning_rate == 3e-6
    assert HardNegatives(num=2).num == 2


def test_cli_train_merge_evaluate(capsys, tiny_model_path, data_dir, tmp_path):
    art = tmp_path / "lora"
    code = main(["train", "--model", str(tiny_model_path), "--data", str(data_dir), "--method", "lora",
                 "--out", str(art), "--max-steps", "2", "--batch-size", "8", "--no-progress", "--hard-negatives", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "lora tuning done" in out and "trainable parameters" in out
    assert json.loads((art / STAMP).read_text())["data"]["hard_negatives"] == 1
    assert main(["merge", str(art), "--out", str(tmp_path / "merged")]) == 0
    assert main(["evaluate", "--model", str(tmp_path / "merged"), "--data", str(data_dir), "--no-progress"]) == 0
    assert main(["merge", str(tmp_path / "merged"), "--out", str(tmp_path / "again")]) == 2
    assert "not an adapter artifact (lora, hybrid or query-lora)" in capsys.readouterr().err
    code = main(["train", "--model", str(tiny_model_path), "--data", str(data_dir), "--out", str(art), "--epochs", "0"])
    assert code == 2 and "epochs must be positive" in capsys.readouterr().err


def test_cached_mnrl_and_matryoshka_losses_train(tiny_model_path, data_dir, tmp_path):
    config = TrainConfig(method="full", loss="cached-mnrl", mini_batch_size=4, matryoshka_dims=(32, 16), lr=5e-3, **FAST)
    result = finetune(str(tiny_model_path), data_dir, config, tmp_path / "cmnrl", encode=ENC)
    assert result.stamp.config["loss"] == "cached-mnrl" and result.stamp.config["matryoshka_dims"] == [32, 16]
    assert Encoder(str(result.artifact), ENC).fingerprint != Encoder(str(tiny_model_path), ENC).fingerprint
    with pytest.raises(ConfigError, match="exceed the model's dimension 32"):
        finetune(str(tiny_model_path), data_dir, TrainConfig(matryoshka_dims=(64,), **FAST), tmp_path / "bad", encode=ENC)


@pytest.mark.parametrize("method", ["full", "query-only"])
def test_pair_and_triplet_files_train(tiny_model_path, tmp_path, method):
    rows = [{"anchor": f"{w} question", "positive": f"{w} answer text", "negative": f"unrelated {i}"}
            for i, w in enumerate(["star", "flour", "goal", "vaccine", "bank", "moon", "oven", "match"])]
    triplets = tmp_path / "triplets.jsonl"
    triplets.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = finetune(str(tiny_model_path), triplets, TrainConfig(method=method, lr=5e-3, **FAST), tmp_path / "t", encode=ENC)
    assert result.stamp.data.hard_negatives == 1 and result.stamp.data.path == str(triplets)
    assert Encoder(str(result.artifact), ENC).fingerprint != Encoder(str(tiny_model_path), ENC).fingerprint
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\n" + "".join(f"{r['anchor']},{r['positive']}\n" for r in rows))
    result = finetune(str(tiny_model_path), pairs, TrainConfig(method="lora", lr=2e-2, **FAST), tmp_path / "p", encode=ENC)
    assert result.stamp.data.pairs == 7  # one of eight anchors held out for dev


def test_pair_file_errors_name_the_line(tiny_model_path, tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"anchor": "a", "positive": "b", "negative": "c"}\n{"anchor": "d", "positive": "e"}\n')
    assert main(["train", "--model", str(tiny_model_path), "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "pairs.jsonl:2: 0 negatives, but earlier rows have 1" in capsys.readouterr().err
    bad.write_text('{"question": "a", "positive": "b"}\n')
    assert main(["train", "--model", str(tiny_model_path), "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "pairs.jsonl:1: missing column 'anchor'" in capsys.readouterr().err


def test_training_length_limit_stays_out_of_the_artifact(tiny_model_path, data_dir, tmp_path):
    """max_seq_length truncates texts while training only: the saved model encodes with its own limit."""
    base_limit = Encoder(str(tiny_model_path), ENC).model.max_seq_length
    seen: list[int] = []

    from transformers import TrainerCallback

    class Spy(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            seen.append(model.max_seq_length)

    run = finetune(str(tiny_model_path), data_dir, TrainConfig(max_seq_length=6, lr=5e-3, **FAST), tmp_path / "t",
                   encode=ENC, callbacks=[Spy()])
    assert seen and set(seen) == {6} and base_limit != 6
    assert Encoder(str(run.artifact), ENC).model.max_seq_length == base_limit
    assert run.stamp.config["max_seq_length"] == 6 and run.stamp.max_seq_length == base_limit
    with pytest.raises(ConfigError, match="max_seq_length"):
        TrainConfig(max_seq_length=0)


def test_peak_memory_is_measured_per_training_run():
    """A second run in the same process (bench) reports its own peak, not the process's largest so far."""
    from retrieval_ft.train.measure import peak_memory_mb, reset_peak_memory

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs")
    block = np.ones(400 * 2**20 // 8)  # 400 MB, touched
    high = peak_memory_mb()
    del block
    reset_peak_memory()
    assert peak_memory_mb() < high - 300
