"""Guard-aware tuning on a tiny offline encoder: guard samples in the dev history, checkpoint
selection under the guard limit, the blend with the base (alpha) for every method, its record in
the stamp, `merge --alpha`, and the flags' errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.cli import main
from retrieval_ft.config import EncodeConfig, GuardSet, RunConfig, TrainConfig, from_dict
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError, DataError
from retrieval_ft.models import load_model, merge_adapter
from retrieval_ft.stamp import STAMP, read_stamp
from retrieval_ft.train import finetune
from retrieval_ft.train.guards import select, selection_score
from retrieval_ft.train.interpolate import GRID, Blend, Point, search_alpha

from .conftest import write_beir

TEXTS = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose"]
ENC = EncodeConfig(progress=False)
FAST = dict(max_steps=4, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
LR = {"full": 5e-3, "lora": 2e-2, "hybrid": 2e-2, "query-only": 5e-3, "query-lora": 2e-2}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("guarded") / "beir", n_docs=60)


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> GuardSet:
    return GuardSet(name="other", data=str(write_beir(tmp_path_factory.mktemp("guard") / "beir", n_docs=30, seed=7)))


def _queries(model: str | Path) -> np.ndarray:
    return Encoder(str(model), ENC).encode_queries(TEXTS)


# -- the pure parts: selection and the alpha search ---------------------------------------------
def test_selection_keeps_the_best_dev_within_the_guard_limit():
    base = {"g": 0.50, "h": 0.30}
    history = [
        {"step": 10, "ndcg@10": 0.60, "guards": {"g": 0.50, "h": 0.30}},
        {"step": 20, "ndcg@10": 0.70, "guards": {"g": 0.49, "h": 0.295}},   # within 0.01: the answer
        {"step": 30, "ndcg@10": 0.80, "guards": {"g": 0.45, "h": 0.30}},    # best dev, but g drops 0.05
        {"step": 40, "ndcg@10": 0.75, "guards": {"g": 0.50, "h": 0.2899}},  # h drops 0.0101
    ]
    assert select(history, base, 0.01)["step"] == 20
    assert select(history, base, 0.06)["step"] == 30  # a looser limit admits the best dev
    # nothing within the limit: the checkpoint that oversteps least
    assert select(history[2:], base, 0.0)["step"] == 40
    assert selection_score(0.7, {"g": 0.49}, {"g": 0.5}, 0.01) == 0.7  # a drop equal to the limit is within it
    assert selection_score(0.9, {"g": 0.40}, {"g": 0.5}, 0.01) < 0 < selection_score(0.1, {"g": 0.5}, {"g": 0.5}, 0.01)


def _curve(alpha: float) -> Point:
    """A synthetic blend: dev peaks at alpha 0.8; the guard falls as alpha^2 x 0.08."""
    return Point(alpha, 0.5 + 0.3 * alpha - 0.1875 * alpha**2, {"g": 0.6 - 0.08 * alpha**2})


def test_auto_search_finds_the_constrained_optimum():
    seen: list[float] = []

    def evaluate(alpha: float) -> Point:
        seen.append(alpha)
        return _curve(alpha)

    choice = search_alpha(evaluate, "auto", _curve(0.0), _curve(1.0), max_drop=0.01)
    # g within 0.01 needs alpha <= 0.354: the grid finds 0.25, refinement 0.375 (too far) and 0.125
    assert choice.alpha == 0.25
    assert 0.0 not in seen and 1.0 not in seen and set(GRID[1:-1]) <= set(seen) and len(seen) == 5
    assert [p.alpha for p in choice.curve] == sorted(p.alpha for p in choice.curve)
    assert "alpha 0.25" in choice.reason and "drops g" in choice.reason
    # a looser limit: the dev optimum (0.8) is reachable; the grid's 0.75 refined to 0.875 or 0.625
    loose = search_alpha(_curve, "auto", _curve(0.0), _curve(1.0), max_drop=0.5)
    assert loose.alpha == 0.75
    fixed = search_alpha(_curve, 0.6, _curve(0.0), _curve(1.0), max_drop=0.01)
    assert fixed.alpha == 0.6 and "drops a guard set" in fixed.reason


class _Weighed:
    """A guarded evaluator over a one-weight model: dev and the guard 'g' are linear in the weight w
    (the base is w = 0)."""

    def __init__(self, dev_slope: float, guard_slope: float) -> None:
        self.dev_slope, self.guard_slope = dev_slope, guard_slope
        self.base, self.base_dev = {"g": 0.5}, 0.5

    def at(self, w: float) -> tuple[float, dict[str, float]]:
        return 0.5 + self.dev_slope * w, {"g": 0.5 - self.guard_slope * w}

    def point(self, model) -> tuple[float, dict[str, float]]:
        return self.at(float(model.weight.item()))


@pytest.mark.parametrize(("guard_slope", "step", "weight"), [
    # the selected step (w 0.2) keeps the guard at any alpha (dev 0.56); the last step (w 1) blended
    # at alpha 0.5 stays within 0.01 with dev 0.65: the last step's blend is kept
    (0.02, 30, 0.5),
    # the guard drops 0.2 per unit of w: the selected step at alpha 0.25 (w 0.05) is within it, the
    # last step at no alpha above 0: the selected checkpoint's blend is kept
    (0.2, 10, 0.05),
])
def test_the_blend_starts_from_the_selected_step_or_the_last_whichever_gains_more(guard_slope, step, weight):
    from types import SimpleNamespace

    import torch

    from retrieval_ft.train.distributed import World
    from retrieval_ft.train.watch import Watch, blend, hold_last, record

    model = torch.nn.Linear(1, 1, bias=False)
    ev = _Weighed(0.3, guard_slope)
    with torch.no_grad():
        model.weight.fill_(0.0)
    sample = SimpleNamespace(info=lambda: {"name": "g"})
    w = Watch(ev, samples=[sample], blend=Blend(model), mode="auto")  # type: ignore[arg-type]
    history = [{"step": s, "ndcg@10": ev.at(v)[0], "guards": ev.at(v)[1]} for s, v in ((10, 0.2), (20, 0.6), (30, 1.0))]
    trainer = SimpleNamespace(model=model, state=SimpleNamespace(global_step=30, best_global_step=10))
    with torch.no_grad():
        model.weight.fill_(1.0)  # the last step's weights, as training ends
    hold_last(w, trainer)
    with torch.no_grad():
        model.weight.fill_(0.2)  # the selected checkpoint loaded back
    config = TrainConfig(method="full", max_guard_drop=0.01)
    kept = blend(SimpleNamespace(world=World(), config=config), w, trainer, history)
    assert kept.step == step and model.weight.item() == pytest.approx(weight)
    assert [c["step"] for c in kept.candidates] == [10, 30]
    g = record(w, config, kept)
    assert g.checkpoint_step == step and g.final == {"g": pytest.approx(ev.at(weight)[1]["g"])}
    assert g.dev["final"] == pytest.approx(ev.at(weight)[0]) == max(c["dev"] for c in g.candidates)
    assert ("from the last step (30)" in g.reason) == (step == 30)
    # a run whose kept step is its last holds nothing more
    w.last = None
    hold_last(w, SimpleNamespace(model=model, state=SimpleNamespace(global_step=30, best_global_step=30)))
    assert w.last is None


def test_blend_reaches_both_ends(tiny_model_path):
    import torch

    model = load_model(str(tiny_model_path), device="cpu")
    blend = Blend(model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    tuned = {n: p.detach().clone() for n, p in model.named_parameters()}
    blend.capture(model)
    blend.apply(model, 0.0)
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())
    blend.apply(model, 0.5)
    assert all(torch.allclose(p, (start[n] + tuned[n]) / 2, atol=1e-6) for n, p in model.named_parameters())
    blend.apply(model, 1.0)
    assert all(torch.equal(p, tuned[n]) for n, p in model.named_parameters())


def test_guard_samples_are_measured_at_the_artifacts_token_limit(tiny_model_path, guard):
    """Training may truncate texts (train.max_seq_length); guard drops are measured as the artifact
    will be evaluated, at the base's limit, while dev NDCG@10 stays at the training limit."""
    from retrieval_ft.train.dev_eval import DevNDCG
    from retrieval_ft.train.guards import GuardedDevNDCG, guard_samples

    model = load_model(str(tiny_model_path), device="cpu")
    full, short = model.max_seq_length, 4
    sample = guard_samples([guard], TrainConfig(seed=1))[0]

    def ndcg(limit: int) -> float:
        model.max_seq_length = limit
        ev = DevNDCG(sample.queries, sample.qrels, sample.doc_ids, sample.doc_items, None, "", "", True, 16)
        return ev(model)["dev_ndcg@10"]

    at_full, at_short = ndcg(full), ndcg(short)
    assert at_full != pytest.approx(at_short)  # the limit matters on these documents
    dev = DevNDCG(sample.queries, sample.qrels, sample.doc_ids, sample.doc_items, None, "", "", True, 16)
    evaluator = GuardedDevNDCG(dev, [sample], 0.01, guard_length=full)
    model.max_seq_length = short  # as training sets it
    dev_value, guards = evaluator.point(model)
    assert guards[guard.name] == pytest.approx(at_full, abs=1e-6)
    assert dev_value == pytest.approx(at_short, abs=1e-6)
    assert model.max_seq_length == short  # training goes on at its own limit


# -- training ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tiny_model_path: Path, data: Path, guard: GuardSet, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per method: trained as is (interpolate off), at alpha 0, and at alpha 1."""
    out = tmp_path_factory.mktemp("alpha")
    made = {}
    for method, lr in LR.items():
        for mode in ("off", 0.0, 1.0):
            config = TrainConfig(method=method, lr=lr, interpolate=mode, **FAST)
            made[method, mode] = finetune(str(tiny_model_path), data, config, out / f"{method}-{mode}", encode=ENC)
    return made


@pytest.mark.parametrize("method", list(LR))
def test_alpha_zero_is_the_base_and_alpha_one_the_tuned_model(runs, method, tiny_model_path):
    base, tuned = _queries(tiny_model_path), _queries(runs[method, "off"].artifact)
    assert np.abs(tuned - base).max() > 1e-3  # it learned something
    assert np.abs(_queries(runs[method, 0.0].artifact) - base).max() < 1e-5
    assert np.abs(_queries(runs[method, 1.0].artifact) - tuned).max() < 1e-5
    stamp = read_stamp(runs[method, 0.0].artifact)
    assert stamp.alpha == 0.0 and stamp.guard.interpolate == "fixed" and stamp.guard.sets == []
    assert [p["alpha"] for p in stamp.guard.curve] == [0.0, 1.0]
    assert read_stamp(runs[method, "off"].artifact).guard is None  # off and no guard sets: nothing recorded


@pytest.mark.parametrize("method", ["lora", "hybrid", "query-lora"])
def test_an_adapter_stays_an_adapter_and_merge_applies_alpha(runs, method, tiny_model_path, tmp_path):
    artifact = runs[method, 0.0].artifact
    assert (artifact / "adapter_config.json").is_file()  # the tuned adapter, scaled on load
    tuned = _queries(runs[method, "off"].artifact)
    # the adapter as trained: alpha 1 given at load or merge
    unscaled = Encoder(load_model(str(artifact), alpha=1.0), ENC).encode_queries(TEXTS)
    assert np.abs(unscaled - tuned).max() < 1e-5
    half = merge_adapter(artifact, tmp_path / "half", alpha=0.5)
    assert json.loads((half / STAMP).read_text())["alpha"] == 0.5
    mid = _queries(half)
    base = _queries(tiny_model_path)
    assert np.abs(mid - base).max() > 1e-4 and np.abs(mid - tuned).max() > 1e-4
    # a stamp's alpha is what merge applies by default
    assert np.abs(_queries(merge_adapter(artifact, tmp_path / "zero")) - base).max() < 1e-5


def test_merge_blends_a_full_artifact_with_its_base(runs, tiny_model_path, tmp_path):
    artifact = runs["full", "off"].artifact
    out = merge_adapter(artifact, tmp_path / "blend", alpha=0.0)
    assert np.abs(_queries(out) - _queries(tiny_model_path)).max() < 1e-5
    with pytest.raises(Exception, match=r"--alpha must be in \[0, 1\]"):
        merge_adapter(artifact, tmp_path / "bad", alpha=1.5)
    # a query-only artifact (the query side alone) is blended the same way; its documents stay the base's
    qo = merge_adapter(runs["query-only", "off"].artifact, tmp_path / "qo", alpha=0.0)
    assert np.abs(_queries(qo) - _queries(tiny_model_path)).max() < 1e-5


@pytest.mark.parametrize("method", ["lora", "query-only", "query-lora"])
def test_guarded_run_records_guards_selection_and_curve(tiny_model_path, data, guard, method, tmp_path):
    config = TrainConfig(method=method, lr=LR[method] * 4, guards=(guard,), max_guard_drop=0.0, guard_queries=3,
                         guard_corpus_size=20, **FAST)
    result = finetune(str(tiny_model_path), data, config, tmp_path / "out", encode=ENC)
    stamp = json.loads((result.artifact / STAMP).read_text())
    g = stamp["guard"]
    assert g["sets"] == [{"name": "other", "data": guard.data, "split": "test", "queries": 3, "documents": 20}]
    assert g["interpolate"] == "auto" and g["max_drop"] == 0.0 and stamp["alpha"] == g["alpha"]
    alphas = [p["alpha"] for p in g["curve"]]
    assert alphas == sorted(alphas) and {0.0, 0.25, 0.5, 0.75, 1.0} <= set(alphas)
    assert 6 <= len(alphas) <= 7  # the grid, then the points 0.125 either side of its best that lie in [0, 1]
    for h in stamp["dev_history"]:
        assert set(h["guards"]) == {"other"} and "selection" in h
    chosen = next(p for p in g["curve"] if p["alpha"] == g["alpha"])
    # with max drop 0, the kept blend loses nothing on the guard sample and has the best dev among those that do
    assert chosen["guards"]["other"] >= g["base"]["other"] - 1e-9
    ok = [p for p in g["curve"] if p["guards"]["other"] >= g["base"]["other"] - 1e-9]
    assert chosen["dev"] == max(p["dev"] for p in ok)
    assert g["final"] == chosen["guards"] and g["dev"]["final"] == chosen["dev"] and g["reason"]
    # the final model blends the checkpoint selected within the guards, or the last step where its
    # blend scored higher; each searched checkpoint's best blend is recorded
    selected = max(stamp["dev_history"], key=lambda h: h["selection"])["step"]
    steps = [c["step"] for c in g.get("candidates") or [{"step": selected}]]
    assert steps[0] == selected and g["checkpoint_step"] in steps and stamp["best_checkpoint"].endswith(f"-{g['checkpoint_step']}")


def test_guard_errors_name_the_flag_or_set(tiny_model_path, data, tmp_path, capsys):
    args = ["train", "--model", str(tiny_model_path), "--data", str(data), "--out", str(tmp_path / "o")]
    for bad, expected in (("cranfield", "--guard 'cranfield': expected NAME=PATH"),
                          ("x=" + str(tmp_path / "missing"), "does not exist")):
        assert main([*args, "--guard", bad]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0]
    assert main([*args, "--interpolate", "2"]) != 0
    assert "interpolate must be auto, off or a number in [0, 1]" in capsys.readouterr().err
    no_test = write_beir(tmp_path / "train-only")
    (no_test / "qrels" / "test.tsv").unlink()
    with pytest.raises(DataError, match="guard set 'nt'.*no 'test' split"):
        finetune(str(tiny_model_path), data, TrainConfig(guards=(GuardSet("nt", str(no_test)),), **FAST),
                 tmp_path / "o2", encode=ENC)


def test_a_run_watches_its_guard_sets_unless_train_names_its_own():
    guards = [{"name": "g", "data": "x"}]
    run = from_dict(RunConfig, {"model": "m", "data": "d", "guards": guards})
    assert run.training.guards == run.guards and run.training.interpolation == "auto"
    own = from_dict(RunConfig, {"model": "m", "data": "d", "guards": guards, "train": {"guards": []}})
    assert own.training.guards == () and own.training.interpolation == "off"
    with pytest.raises(ConfigError, match="names must be unique"):
        TrainConfig(guards=(GuardSet("a", "x"), GuardSet("a", "y")))
