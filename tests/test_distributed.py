"""Training as 2 CPU processes under torchrun (gloo): DDP through the Trainer, gathered in-batch
negatives, one artifact written by rank 0, resume. The two torchrun tests start real processes
(about 15 s each on 2 cores); the others check the loss wiring and the refusals in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.config import EncodeConfig
from retrieval_ft.encode import Encoder
from retrieval_ft.pipeline import evaluate
from retrieval_ft.stamp import STAMP
from retrieval_ft.train import RUN_SETTINGS

from .conftest import write_beir

ENC = EncodeConfig(progress=False)
TEXTS = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose"]
BIN = Path(sys.executable).parent  # torchrun and retrieval-ft from the same environment as this Python
WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node 2 ARGS` (a free port on localhost); a hang is killed
    with its whole process group instead of stalling the suite."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s (a deadlock?)\n{err[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("ddp-data") / "beir", n_docs=60)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_torchrun_cli_trains_one_artifact_with_gathered_negatives(tiny_model_path, data_dir, tmp_path, method):
    runs = tmp_path / "runs"
    runs.mkdir()
    settings = tmp_path / "train.yaml"
    settings.write_text("warmup_ratio: 0.0\n")  # the first step moves the model already
    res = torchrun(["--no-python", str(BIN / "retrieval-ft"), "-v", "train", "--model", str(tiny_model_path),
                    "--data", str(data_dir), "--out", "tuned", "--config", str(settings), "--method", method,
                    "--lr", "5e-3", "--max-steps", "4", "--batch-size", "4", "--hard-negatives", "1", "--no-progress"],
                   cwd=runs)
    log = f"\nstdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-4000:]}"  # shown with any failure below
    assert res.returncode == 0, log
    # the two processes formed one world and the loss gathered across it
    assert "2 processes (gloo): global batch 8 = 2 x 4 per process; in-batch negatives gathered" in res.stderr, log
    stamp = json.loads((runs / "tuned" / STAMP).read_text())
    assert stamp["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch_size": 8,
                                    "negatives_gathered": True}
    assert stamp["steps"] == 4 and stamp["config"]["batch_size"] == 4
    # one artifact, written once and cleanly: no temporary or displaced folders, no checkpoints left,
    # one summary (rank 1 reports nothing)
    assert sorted(os.listdir(runs)) == ["tuned"], log
    assert not (runs / "tuned" / "checkpoints").exists(), log
    assert res.stdout.count(f"{method} tuning done: tuned") == 1, log
    # DDP searched for parameters without gradient only where there are some (BERT's pooler when
    # every weight trains): before, LoRA warned at every step that the search found none
    assert "did not find any unused parameters" not in res.stderr, log

    base = Encoder(str(tiny_model_path), ENC)
    tuned = Encoder(str(runs / "tuned"), ENC)
    assert tuned.fingerprint != base.fingerprint
    assert not np.allclose(tuned.encode_queries(TEXTS), base.encode_queries(TEXTS), atol=1e-4)
    result = evaluate(tuned, data_dir)
    assert 0.0 <= result.metrics["ndcg@10"] <= 1.0


def test_query_only_gathers_writes_once_and_resumes_under_torchrun(tiny_model_path, data_dir, tmp_path):
    """The worker trains query-only whole, then cut at step 5 and resumed, in the same 2 processes."""
    res = torchrun(["--no-python", sys.executable, str(WORKER), str(tiny_model_path), str(data_dir), str(tmp_path)],
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["backend"]) for r in ranks] == [(0, 2, "gloo"), (1, 2, "gloo")]

    for r in ranks:
        # gathered over 2 processes, the fixed-documents loss is the loss of the global batch
        loss = r["loss"]
        assert loss["gathered_mean"] == pytest.approx(loss["one_process"], abs=1e-5)
        assert loss["grad_max_diff"] < 1e-5
        assert r["interrupted"] and not r["stamp_after_cut"]
    # only rank 0 writes artifacts; every process returns rank 0's result
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    settings = [f"{run}/checkpoints/{RUN_SETTINGS}" for run in (whole, cut, cut)]  # the cut run is resumed once
    assert [w for w in ranks[0]["writes"] if ".tmp" not in w and w not in settings] == [whole, f"{whole}/{STAMP}", cut, f"{cut}/{STAMP}"]
    assert sorted(w for w in ranks[0]["writes"] if w in settings) == sorted(settings)
    assert ranks[1]["writes"] == []
    assert ranks[0]["whole"] == ranks[1]["whole"] and ranks[0]["resumed"] == ranks[1]["resumed"]

    whole_run, resumed_run = ranks[0]["whole"], ranks[0]["resumed"]
    assert whole_run["distributed"]["negatives_gathered"] is True
    assert resumed_run["steps"] == 6 and resumed_run["history"] == whole_run["history"]
    a = Encoder(whole, ENC).encode_queries(TEXTS)
    b = Encoder(cut, ENC).encode_queries(TEXTS)
    # the checkpoint restores each process's RNG state and the data order: the same model
    assert np.abs(a - b).max() < 1e-5
    # query-only: the documents keep the base encoder's embeddings
    base = Encoder(str(tiny_model_path), ENC)
    np.testing.assert_array_equal(Encoder(cut, ENC).encode_documents(TEXTS), base.encode_documents(TEXTS))


@pytest.mark.parametrize("loss", ["mnrl", "cached-mnrl"])
@pytest.mark.parametrize("matryoshka", [(), (32, 16)])
def test_every_loss_gathers_only_with_several_processes(tiny_model, loss, matryoshka):
    from retrieval_ft.config import TrainConfig
    from retrieval_ft.train.distributed import gathers_across_devices
    from retrieval_ft.train.losses import FixedDocumentsMNRL, shared_towers_loss

    config = TrainConfig(loss=loss, mini_batch_size=4, matryoshka_dims=matryoshka)
    assert gathers_across_devices(shared_towers_loss(tiny_model, config, gather_across_devices=True))
    assert not gathers_across_devices(shared_towers_loss(tiny_model, config))
    docs = np.eye(4, dtype=np.float32)
    assert gathers_across_devices(FixedDocumentsMNRL(tiny_model, docs, True, gather_across_devices=True))
    assert not gathers_across_devices(FixedDocumentsMNRL(tiny_model, docs, True))


def test_processes_that_cannot_train_in_step_are_refused(tiny_model_path, data_dir, tmp_path, monkeypatch):
    """Checked before training, as a launch would see them (the world is faked in this process)."""
    from retrieval_ft.config import TrainConfig
    from retrieval_ft.errors import ConfigError
    from retrieval_ft.train import checkpoints
    from retrieval_ft.train import tune as train

    monkeypatch.setattr(train, "join_world", lambda device: train.World(0, 4, "gloo"))
    monkeypatch.setattr(checkpoints, "from_main", lambda world, obj: obj)
    with pytest.raises(ConfigError, match=r"16 training pairs cannot fill one step of 4 processes x batch size 8"):
        train.finetune(str(tiny_model_path), data_dir, TrainConfig(batch_size=8, max_steps=1), tmp_path / "a",
                       encode=ENC)

    # rank 1 sees a checkpoint that rank 0 does not: --out is not on storage both machines share
    ckpt = tmp_path / "b" / "checkpoints" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    monkeypatch.setattr(train, "join_world", lambda device: train.World(1, 2, "gloo"))
    monkeypatch.setattr(checkpoints, "from_main", lambda world, obj: None)
    with pytest.raises(ConfigError, match="rank 1 sees checkpoint-3 but rank 0 sees none; .*every machine sees"):
        train.finetune(str(tiny_model_path), data_dir, TrainConfig(max_steps=1), tmp_path / "b", encode=ENC,
                       resume=True)


def test_a_failure_on_rank_0_stops_the_other_processes(monkeypatch):
    """Rank 0 tells the others when writing the artifact fails, instead of leaving them waiting
    for the process group's timeout (the broadcast is faked in this process)."""
    from retrieval_ft.train import distributed

    sent: list = []
    monkeypatch.setattr(distributed, "from_main", lambda world, obj: sent.append(obj) or obj)

    def disk_full():
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        distributed.written_by_main(distributed.World(0, 2, "gloo"), disk_full)
    assert isinstance(sent[-1], distributed.MainFailed) and "No space left on device" in sent[-1].error

    monkeypatch.setattr(distributed, "from_main", lambda world, obj: sent[-1])  # what rank 1 receives
    with pytest.raises(RuntimeError, match=r"rank 0 failed to write the artifact \(OSError: .*No space left"):
        distributed.written_by_main(distributed.World(1, 2, "gloo"), lambda: pytest.fail("only rank 0 writes"))

    monkeypatch.setattr(distributed, "from_main", lambda world, obj: obj)
    assert distributed.written_by_main(distributed.World(0, 2, "gloo"), lambda: "result") == "result"


@pytest.mark.parametrize("method", ["full", "query-only", "lora", "hybrid"])
def test_ddp_searches_for_unused_parameters_only_where_some_are(tiny_model_path, method):
    """The decision matches what a training step really leaves without gradient: BERT's pooler
    (computed, but the Pooling module reads the token embeddings) when every weight trains; nothing
    with LoRA or hybrid. Before, DDP searched at every step of every method."""
    from retrieval_ft.models import load_model, prepare_for_training
    from retrieval_ft.train.distributed import find_unused_parameters

    model = load_model(str(tiny_model_path), device="cpu")
    prepare_for_training(model, method)
    model(model.preprocess(TEXTS))["sentence_embedding"].sum().backward()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert find_unused_parameters(trainable, encodes_images=False) == bool(unused)
    assert bool(unused) == (method in ("full", "query-only"))


def test_unused_parameter_rule_for_two_tower_models():
    from retrieval_ft.train.distributed import find_unused_parameters

    lora_text = ["0.model.base_model.model.text_model.encoder.layers.0.q_proj.lora_A.default.weight"]
    lora_image = ["0.model.base_model.model.vision_model.encoder.layers.0.q_proj.lora_A.default.weight"]
    assert not find_unused_parameters(lora_text + lora_image, encodes_images=True)
    assert find_unused_parameters(lora_text + lora_image, encodes_images=False)  # pages never encoded
    assert find_unused_parameters(lora_text + ["0.model.logit_scale"], encodes_images=True)


def test_the_unused_parameter_search_can_be_set_in_the_config():
    """The rule covers the models we know; a model with other unused weights can switch the search on."""
    from retrieval_ft.config import TrainConfig
    from retrieval_ft.train.trainer import _find_unused

    lora_names = ["0.auto_model.encoder.layer.0.attention.self.query.lora_A.default.weight"]
    assert _find_unused(TrainConfig(), lora_names, encodes_images=False) is False
    assert _find_unused(TrainConfig(ddp_find_unused_parameters=True), lora_names, encodes_images=False) is True
    assert _find_unused(TrainConfig(ddp_find_unused_parameters=False), ["0.auto_model.pooler.dense.weight"],
                        encodes_images=False) is False
