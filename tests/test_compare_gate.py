"""compare and gate on hand-made result files: significance, intervals, guard sets, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.cli import main
from retrieval_ft.compare import bootstrap_interval, compare
from retrieval_ft.config import CompareConfig, GateConfig, GateRules
from retrieval_ft.errors import ConfigError, DataError
from retrieval_ft.gate import gate
from retrieval_ft.results import EvaluationResult


def result(values: np.ndarray, fingerprint: str = "fp-main", name: str = "m") -> EvaluationResult:
    per_query = {f"q{i:04d}": float(v) for i, v in enumerate(values)}
    return EvaluationResult(
        metrics={"ndcg@10": float(np.mean(values))}, per_query={"ndcg@10": per_query},
        model={"name": name, "fingerprint": name + "-fp"},
        dataset={"path": "data", "split": "test", "fingerprint": fingerprint},
        queries={q: f"text of {q}" for q in per_query},
    )


RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.2, 0.8, 300)


def shifted(delta: float, noise: float, seed: int = 1) -> np.ndarray:
    return np.clip(BASE + delta + np.random.default_rng(seed).normal(0, noise, BASE.shape), 0, 1)


def test_significant_improvement_passes_a_must_help_gate():
    base, cand = result(BASE), result(shifted(0.05, 0.03), name="tuned")
    m = compare(base, cand).metrics["ndcg@10"]
    assert m.delta > 0.04 and m.p_value < 1e-6 and m.ci_low > 0
    assert m.wins > 250 and m.wins + m.ties + m.losses == 300
    verdict = gate(base, cand, GateConfig(rules=GateRules(min_gain=0.01)))
    assert verdict.passed and verdict.reasons == []


def test_small_noisy_drop_passes_when_significance_is_required():
    # per-query changes of +-0.1 around a mean drop of 0.002: noise, by construction
    noise = np.where(np.arange(BASE.size) % 2 == 0, 0.1, -0.1) - 0.002
    base, cand = result(BASE), result(BASE + noise)
    m = compare(base, cand).metrics["ndcg@10"]
    assert m.delta < 0 and m.p_value > 0.05 and m.ci_low < 0 < m.ci_high
    assert gate(base, cand).passed
    strict = GateConfig(rules=GateRules(require_significance=False))
    assert not gate(base, cand, strict).passed


def test_significant_drop_fails_with_the_reason():
    base, cand = result(BASE), result(shifted(-0.03, 0.02))
    verdict = gate(base, cand)
    assert not verdict.passed
    assert len(verdict.reasons) == 1 and "ndcg@10 dropped" in verdict.reasons[0] and "significant" in verdict.reasons[0]


def test_large_drop_fails_even_without_significance():
    values = BASE.copy()
    values[:10] -= 0.7  # a few queries collapse: large mean drop, noisy
    base, cand = result(BASE), result(np.clip(values, 0, 1))
    rules = GateRules(max_drop_any=0.01, alpha=1e-9)
    verdict = gate(base, cand, GateConfig(rules=rules))
    assert not verdict.passed and "fails even without significance" in verdict.reasons[0]


def test_drop_confined_to_a_guard_set_names_it():
    main_b, main_c = result(BASE), result(shifted(0.02, 0.01))
    guard_b, guard_c = result(BASE, "fp-guard"), result(shifted(-0.04, 0.02), "fp-guard")
    verdict = gate(main_b, main_c, guards={"cranfield": (guard_b, guard_c)})
    assert not verdict.passed
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith("guard set 'cranfield': ndcg@10 dropped")
    lenient = GateConfig(guards={"cranfield": {"max_drop": 0.1, "max_drop_any": None}})
    assert gate(main_b, main_c, lenient, guards={"cranfield": (guard_b, guard_c)}).passed


def test_losing_share_and_minimum_value_rules():
    values = BASE.copy()
    values[:60] -= 0.15  # 20 % of queries lose 0.15
    values[60:] += 0.05
    base, cand = result(BASE), result(values)
    rules = GateRules(max_losing_share=0.1, loss_threshold=0.1, min_value=0.9, max_drop_any=None)
    reasons = gate(base, cand, GateConfig(rules=rules)).reasons
    assert any("20.0% of queries lost more than 0.1" in r for r in reasons)
    assert any("below the required minimum 0.9" in r for r in reasons)


def test_mismatched_datasets_are_refused_unless_forced():
    base, other = result(BASE), result(BASE, fingerprint="fp-other")
    with pytest.raises(DataError, match="different data .* pass --force"):
        compare(base, other)
    assert compare(base, other, force=True).forced


def test_bootstrap_interval_covers_the_true_delta():
    covered = 0
    for seed in range(60):
        deltas = np.random.default_rng(seed).normal(0.02, 0.1, 200)  # true mean 0.02
        low, high = bootstrap_interval(deltas, 2000, seed)
        assert low <= deltas.mean() <= high
        covered += low <= 0.02 <= high
    assert covered >= 51  # nominal 95 %: 57 of 60 expected; allow sampling noise


def _runs(seed: int):
    rng = np.random.default_rng(seed)
    qrels = {f"q{i:03d}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(50, 3, replace=False)} for i in range(80)}
    run_a = {q: {f"d{j}": float(s) for j, s in enumerate(rng.random(50))} for q in qrels}
    run_b = {q: {d: s + (0.3 if d in qrels[q] and rng.random() < 0.5 else 0.0) for d, s in run_a[q].items()} for q in qrels}
    return qrels, run_a, run_b


@pytest.mark.parametrize("test", ["student", "fisher"])
def test_p_values_agree_with_ranx_compare(test):
    from ranx import Qrels, Run
    from ranx import compare as ranx_compare

    from retrieval_ft.metrics import evaluate_run

    qrels, run_a, run_b = _runs(3)
    results = []
    for name, run in (("a", run_a), ("b", run_b)):
        s = evaluate_run(qrels, run, ["ndcg@10"])
        results.append(EvaluationResult(metrics=s.mean, per_query=s.per_query, model={"name": name},
                                        dataset={"fingerprint": "x"}))
    ours = compare(results[0], results[1], CompareConfig(test=test, n_permutations=1000, seed=42)).metrics["ndcg@10"]
    report = ranx_compare(Qrels.from_dict(qrels), [Run.from_dict(run_a, name="a"), Run.from_dict(run_b, name="b")],
                          metrics=["ndcg@10"], stat_test=test, n_permutations=1000, random_seed=42)
    assert ours.p_value == pytest.approx(report.comparisons[("a", "b")]["ndcg@10"]["p_value"], abs=1e-12)
    assert ours.candidate == pytest.approx(report.results["b"]["ndcg@10"], abs=1e-12)


def _write(tmp: Path, name: str, res: EvaluationResult) -> str:
    path = tmp / name
    res.save(path)
    return str(path)


def test_cli_compare_and_gate(tmp_path: Path, capsys):
    base = _write(tmp_path, "base.json", result(BASE))
    good = _write(tmp_path, "good.json", result(shifted(0.05, 0.03)))
    bad = _write(tmp_path, "bad.json", result(shifted(-0.03, 0.02)))
    other = _write(tmp_path, "other.json", result(BASE, fingerprint="fp-other"))

    assert main(["compare", base, bad, "--json", str(tmp_path / "c.json"), "--md", str(tmp_path / "c.md")]) == 0
    out = capsys.readouterr().out
    assert "| ndcg@10 |" in out and "Queries that lost most" in out and "text of q" in out
    assert json.loads((tmp_path / "c.json").read_text())["metrics"]["ndcg@10"]["p_value"] < 0.05

    assert main(["gate", "--baseline", base, "--candidate", good]) == 0
    assert "gate passed" in capsys.readouterr().out
    assert main(["gate", "--baseline", base, "--candidate", bad, "--json", str(tmp_path / "v.json"),
                 "--md", str(tmp_path / "v.md")]) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED: ") == 1
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["passed"] is False and len(verdict["reasons"]) == 1
    assert "Gate failed" in (tmp_path / "v.md").read_text()

    assert main(["gate", "--baseline", base, "--candidate", other]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["gate", "--baseline", base, "--candidate", good, "--guard", "cisi", base, bad]) == 1
    assert "guard set 'cisi'" in capsys.readouterr().out

    rules = tmp_path / "gate.yaml"
    rules.write_text("min_gain: 0.1\n")  # a flat file holds the main dataset's rules
    assert main(["gate", "--baseline", base, "--candidate", good, "--rules", str(rules)]) == 1
    rules.write_text("rules: {max_dorp: 0.1}\n")
    assert main(["gate", "--baseline", base, "--candidate", good, "--rules", str(rules)]) == 2
    assert "Did you mean 'max_drop'" in capsys.readouterr().err


def test_run_report_parts_and_guards(tmp_path: Path, capsys):
    report = {"base": result(BASE).to_dict(), "tuned": result(shifted(0.02, 0.01)).to_dict(),
              "guards": {"cranfield": {"base": result(BASE, "g").to_dict(), "tuned": result(shifted(-0.05, 0.01), "g").to_dict()}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert main(["gate", "--baseline", str(path), "--candidate", str(path)]) == 1
    assert "guard set 'cranfield'" in capsys.readouterr().out


def test_rules_are_validated():
    with pytest.raises(ConfigError, match="alpha must be in"):
        GateRules(alpha=0)
    with pytest.raises(ConfigError, match="unknown metric"):
        GateRules(metrics=("ndgc@10",))


def test_gate_does_not_import_torch(tmp_path: Path):
    import subprocess
    import sys

    base = _write(tmp_path, "base.json", result(BASE))
    good = _write(tmp_path, "good.json", result(shifted(0.05, 0.03)))
    probe = ("import sys\nfrom retrieval_ft.cli import main\n"
             f"code = main(['gate', '--baseline', {base!r}, '--candidate', {good!r}])\n"
             "print('EXIT', code, 'TORCH', 'torch' in sys.modules, 'TRANSFORMERS', 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert "EXIT 0 TORCH False TRANSFORMERS False" in out


# -- records: typed, keys kept, provenance never invented --------------------------------------
def test_records_are_typed_and_keep_the_json_keys(tmp_path: Path):
    from retrieval_ft.results import DatasetInfo, ModelInfo

    res = result(BASE)
    assert isinstance(res.model, ModelInfo) and isinstance(res.dataset, DatasetInfo)
    assert res.model.name == "m" and res.dataset.split == "test" and res.dataset.n_docs is None
    data = json.loads(Path(_write(tmp_path, "r.json", res)).read_text())
    # keys the record was not given stay out of the file, as they were
    assert data["model"] == {"name": "m", "fingerprint": "m-fp"}
    assert data["dataset"] == {"path": "data", "split": "test", "fingerprint": "fp-main"}
    data["dataset"]["written_by_a_newer_version"] = [1, 2]
    again = EvaluationResult.from_dict(data)
    assert again.to_dict() == data and again.dataset.extra == {"written_by_a_newer_version": [1, 2]}


def test_a_loaded_file_keeps_its_provenance_and_a_new_result_records_it(tmp_path: Path):
    fresh = result(BASE)
    assert fresh.versions and "python" in fresh.versions and "numpy" in fresh.versions
    data = fresh.to_dict()
    del data["versions"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    loaded = EvaluationResult.load(old)
    assert loaded.versions is None and "versions" not in loaded.to_dict()  # not stamped with today's
    data["versions"] = {"python": "3.0.0", "ranx": "0.1"}
    assert EvaluationResult.from_dict(data).to_dict()["versions"] == {"python": "3.0.0", "ranx": "0.1"}


def test_gate_settings_are_loaded_by_config(tmp_path: Path):
    from retrieval_ft.config.gate import load_gate_config

    path = tmp_path / "gate.yaml"
    path.write_text("max_drop: 0.01\n")
    assert load_gate_config(str(path)).rules.max_drop == 0.01
    path.write_text("rules: {max_drop: 0.01}\nguards: {cisi: {max_drop: 0.05}}\n")
    config = load_gate_config(str(path))
    assert config.rules.max_drop == 0.01 and config.for_guard("cisi").max_drop == 0.05
    assert load_gate_config(None) == GateConfig()


@pytest.mark.parametrize("values", [{"max_drop": float("nan")}, {"max_drop_any": float("nan")},
                                    {"min_gain": float("inf")}, {"min_value": float("-inf")},
                                    {"loss_threshold": float("nan")}, {"metrics": ()}])
def test_rules_that_would_check_nothing_are_refused(values):
    with pytest.raises(ConfigError, match="finite|non-empty"):
        GateRules(**values)


def test_significance_is_decided_by_the_gate_rules_only():
    assert "alpha" not in CompareConfig.__dataclass_fields__
    with pytest.raises(ConfigError, match="non-empty"):
        CompareConfig(metrics=())


def test_rules_for_a_guard_set_that_is_not_there_are_refused():
    base, cand = result(BASE), result(shifted(0.02, 0.01))
    config = GateConfig(guards={"cisi": {"max_drop": 0.1}})
    with pytest.raises(ConfigError, match="guard set.*'cisi'.*guard sets: none"):
        gate(base, cand, config)
    assert gate(base, cand, config, guards={"cisi": (base, cand)}).passed


# -- queries scored by one side only ----------------------------------------------------------
def test_a_candidate_missing_queries_is_refused_unless_allowed():
    base, cand = result(BASE), result(shifted(0.02, 0.01))
    for q in ("q0000", "q0001"):
        del cand.per_query["ndcg@10"][q]
    with pytest.raises(DataError, match="2 of the baseline's 300 queries are missing from the candidate"):
        compare(base, cand)
    with pytest.raises(DataError, match="--allow-missing-queries"):
        gate(base, cand)
    m = compare(base, cand, allow_missing=True).metrics["ndcg@10"]
    assert (m.n_queries, m.missing_queries, m.extra_queries) == (298, 2, 0)
    verdict = gate(base, cand, allow_missing=True)
    assert "2 baseline queries missing from the candidate" in verdict.checked[0]
    from retrieval_ft.report import verdict_markdown

    assert "2 baseline queries missing from the candidate" in verdict_markdown(verdict)
    with pytest.raises(DataError, match="2 candidate queries are not in the baseline"):
        compare(cand, base)


# -- strict numbers -----------------------------------------------------------------------------
def test_no_nan_reaches_a_comparison():
    with pytest.raises(DataError, match="no per-query differences"):
        bootstrap_interval(np.array([]), 100, 0)
    # differences all equal: the t statistic is infinite, the p-value 0 (not NaN)
    base, cand = result(np.array([0.0, 0.25, 0.5, 0.25])), result(np.array([0.25, 0.5, 0.75, 0.5]))
    m = compare(base, cand).metrics["ndcg@10"]
    assert np.isfinite([m.p_value, m.ci_low, m.ci_high]).all()
    one = compare(result(np.array([0.5])), result(np.array([0.75]))).metrics["ndcg@10"]
    assert one.p_value == 1.0 and one.ci_low == one.ci_high == 0.25
    bad = result(BASE)
    bad.per_query["ndcg@10"]["q0003"] = float("nan")  # built in Python, never loaded: compare still checks
    with pytest.raises(DataError, match=r"q0003.*NaN"):
        compare(result(BASE), bad)


# -- settings declared once ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CompareConfig, GateRules, GateConfig])
def test_help_of_the_compare_and_gate_settings_lists_every_field(cls):
    import dataclasses
    import pydoc

    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help") and f"{f.name}: {f.metadata['help']}" in text, f.name


def _subparser(name: str):
    from retrieval_ft.cli.parser import build_parser

    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[name]


def test_the_gate_help_states_the_defaults_of_gate_rules(monkeypatch: pytest.MonkeyPatch):
    import functools

    import retrieval_ft.config

    assert "ndcg@10 (alpha 0.05) or any drop over 0.02" in _subparser("gate").description
    monkeypatch.setattr(retrieval_ft.config, "GateRules",
                        functools.partial(GateRules, metrics=("recall@10",), alpha=0.01, max_drop_any=None))
    text = _subparser("gate").description
    assert "drop of recall@10 (alpha 0.01)." in text and "any drop over" not in text


def test_compare_flags_take_their_help_from_compare_config(tmp_path: Path, capsys):
    helps = {a.dest: a.help for a in _subparser("compare")._actions}
    for name in ("metrics", "test"):
        assert helps[name].startswith(CompareConfig.__dataclass_fields__[name].metadata["help"]), name
    base, cand = _write(tmp_path, "b.json", result(BASE)), _write(tmp_path, "c.json", result(shifted(0.02, 0.01)))
    out = tmp_path / "c.json.out"
    assert main(["compare", base, cand, "--metric", "ndcg@10", "--test", "fisher", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["ndcg@10"]["test"] == "fisher"


def test_a_result_without_a_fingerprint_is_compared_only_when_forced():
    base, cand = result(BASE), result(shifted(0.02, 0.01))
    blind = EvaluationResult.from_dict({**cand.to_dict(), "dataset": {"path": "data", "split": "test"}})
    with pytest.raises(DataError, match="the candidate result does not record the fingerprint of its data"):
        compare(base, blind)
    with pytest.raises(DataError, match="the baseline result does not record"):
        gate(blind, base)
    assert compare(base, blind, force=True).forced and not compare(base, cand, force=True).forced


def test_guard_sets_are_paired_only_between_two_run_reports():
    from retrieval_ft.gate import pair_guards

    g = result(BASE, name="g")
    assert pair_guards({"cisi": g}, {"cisi": g}) == ({"cisi": (g, g)}, {})
    assert pair_guards(None, {"cisi": g, "arguana": g}) == ({}, {"arguana": "candidate", "cisi": "candidate"})
    assert pair_guards({"cisi": g}, None) == ({}, {"cisi": "baseline"})
    with pytest.raises(DataError, match="'cisi' are in only one of the two reports"):
        pair_guards({"cisi": g}, {})
    verdict = gate(result(BASE), result(shifted(0.02, 0.01)), unpaired={"cisi": "baseline"})
    assert verdict.passed and "guard set(s) 'cisi' not compared: only the baseline" in verdict.checked[-1]
