"""The catalogue: hand-edited result files, reports and rules, as a user (or a careless CI job) makes
them. None may pass the gate: each is refused (exit 2, one line on stderr, no traceback) or, where
the numbers really regressed, fails it (exit 1). Synthetic results, no model: fast."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval_ft.cli import main
from retrieval_ft.results import EvaluationResult

N = 40
METRIC = "ndcg@10"


def _result(values: np.ndarray, name: str) -> dict[str, Any]:
    per_query = {f"q{i:03d}": float(v) for i, v in enumerate(values)}
    return EvaluationResult(
        metrics={METRIC: float(np.mean(values))}, per_query={METRIC: per_query},
        model={"name": name, "fingerprint": f"{name}-fp"},
        dataset={"path": "data", "split": "test", "fingerprint": "fp-data", "n_queries_judged": N},
        queries={q: f"text of {q}" for q in per_query},
    ).to_dict()


BASE = np.random.default_rng(0).uniform(0.3, 0.7, N)
BASELINE = _result(BASE, "base")
GOOD = _result(np.clip(BASE + 0.02, 0, 1), "tuned")  # a clean candidate: the gate passes it
WORST = [f"q{i:03d}" for i in range(5)]
_bad = BASE.copy()
_bad[:5] = 0.0  # five queries collapse: a regression the gate must catch
BAD = _result(_bad, "tuned")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of one field, `path` dotted (`per_query.ndcg@10.q003`: the last part is one key)."""
    *parents, last = path.split(".", 2) if path.startswith("per_query.") else path.split(".")

    def edit(data: dict[str, Any]) -> None:
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _drop(*queries: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for q in queries:
            del data["per_query"][METRIC][q]
    return edit


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


Q = f"per_query.{METRIC}.q003"
# (id, edit of the clean candidate, words the one-line error must contain)
TAMPERED_RESULTS = [
    ("nan", _set(Q, float("nan")), ["q003", METRIC, "NaN"]),
    ("null", _set(Q, None), ["q003", METRIC, "null"]),
    ("infinity", _set(Q, float("inf")), ["q003", METRIC, "Infinity"]),
    ("minus-infinity", _set(Q, float("-inf")), ["q003", "-Infinity"]),
    ("string", _set(Q, "0.5"), ["q003", METRIC, "string"]),
    ("list", _set(Q, [0.5]), ["q003", "list"]),
    ("true", _set(Q, True), ["q003", "boolean"]),
    ("above-range", _set(Q, 1.5), ["q003", "outside [0, 1]"]),
    ("below-range", _set(Q, -0.25), ["q003", "outside [0, 1]"]),
    ("mean-nan", _set(f"metrics.{METRIC}", float("nan")), ["metrics", "NaN"]),
    ("mean-string", _set(f"metrics.{METRIC}", "high"), ["metrics", "string"]),
    ("per-query-list", _set("per_query", [0.5]), ["per_query", "list"]),
    ("per-query-metric-number", _set(f"per_query.{METRIC}", 0.9), ["per_query", "expected an object"]),
    ("unknown-metric", _set("per_query.ndcg@abc", {"q001": 0.5}), ["unknown metric"]),
    ("model-not-object", _set("model", "tuned"), ["model", "string"]),
    ("dataset-not-object", _set("dataset", ["data"]), ["dataset", "list"]),
    ("fingerprint-number", _set("dataset.fingerprint", 7), ["fingerprint"]),
    ("queries-not-object", _set("queries", "x"), ["queries"]),
    ("no-per-query", _delete("per_query"), ["missing per_query"]),
    ("schema-from-the-future", _set("schema_version", 2), ["schema_version is 2", "reads schema_version 1"]),
    ("schema-string", _set("schema_version", "1"), ["schema_version is a string '1'", "reads schema_version 1"]),
    ("schema-float", _set("schema_version", 1.5), ["schema_version is float 1.5"]),
    ("query-text-number", _set("queries.q003", 7), ["queries['q003']", "int 7", "text"]),
    ("query-text-null", _set("queries.q003", None), ["queries['q003']", "null"]),
    ("top-docs-not-object", _set("top_docs", ["d1"]), ["top_docs", "list"]),
    ("top-docs-string", _set("top_docs.q003", "d1"), ["top_docs['q003']", "a string", "list of document ids"]),
    ("top-docs-id-number", _set("top_docs.q003", ["d1", 3]), ["top_docs['q003'][1]", "int 3", "document id"]),
    ("model-name-number", _set("model.name", 5), ["'model.name'", "should be a string"]),
]
# (id, edit, words when the candidate is edited, words when the baseline is) for queries scored by
# one side only
QUERY_SETS = [
    ("hides-worst-queries", _drop("q000", "q001", "q002"), ["3 of the baseline's 40 queries are missing"],
     ["3 candidate queries are not in the baseline"]),
    ("extra-query", _set(f"per_query.{METRIC}.q999", 1.0), ["1 candidate queries are not in the baseline"],
     ["1 of the baseline's 41 queries are missing"]),
]


def _write(tmp: Path, name: str, data: Any) -> str:
    path = tmp / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))  # bare NaN/Infinity, as a hand edit
    return str(path)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code: int, err: str, words: list[str] = ()) -> None:
    assert code == 2, err
    assert err.startswith("retrieval-ft: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_every_metric_is_checked_against_the_range_it_has():
    """Loading checks every value against [0, 1]: true of each metric known today. A new metric
    with another range must change results.SCORE_RANGE into a per-metric range first."""
    from retrieval_ft.config import METRIC_NAMES
    from retrieval_ft.results import SCORE_RANGE

    assert SCORE_RANGE == (0.0, 1.0)
    assert set(METRIC_NAMES) == {"ndcg", "ndcg_burges", "recall", "precision", "mrr", "map", "hit_rate", "f1",
                                 "r-precision"}


def test_the_untampered_files_pass(tmp_path: Path, capsys):
    """The control: the catalogue's refusals come from the edits, not from the base files."""
    base, good = _write(tmp_path, "base.json", BASELINE), _write(tmp_path, "good.json", GOOD)
    assert _run(["gate", "--baseline", base, "--candidate", good], capsys)[0] == 0
    assert _run(["compare", base, good], capsys)[0] == 0


def _run_edited(tmp: Path, capsys, command: str, edit: Callable[[dict[str, Any]], None], side: str) -> str:
    """Run `command` on the clean pair with `edit` applied to `side`; returns stderr, checked refused."""
    base, cand = copy.deepcopy(BASELINE), copy.deepcopy(GOOD)
    edit(cand if side == "candidate" else base)
    paths = _write(tmp, "base.json", base), _write(tmp, "cand.json", cand)
    argv = ["gate", "--baseline", paths[0], "--candidate", paths[1]] if command == "gate" else ["compare", *paths]
    code, _, err = _run(argv, capsys)
    _refused(code, err)
    return err


@pytest.mark.parametrize("command", ["gate", "compare"])
@pytest.mark.parametrize(("edit", "words"), [c[1:] for c in TAMPERED_RESULTS], ids=[c[0] for c in TAMPERED_RESULTS])
@pytest.mark.parametrize("side", ["candidate", "baseline"])
def test_tampered_result_is_refused(tmp_path: Path, capsys, command, edit, words, side):
    err = _run_edited(tmp_path, capsys, command, edit, side)
    _refused(2, err, [*words, "cand.json" if side == "candidate" else "base.json"])  # names the wrong file


@pytest.mark.parametrize("command", ["gate", "compare"])
@pytest.mark.parametrize(("edit", "words", "mirrored"), [c[1:] for c in QUERY_SETS], ids=[c[0] for c in QUERY_SETS])
@pytest.mark.parametrize("side", ["candidate", "baseline"])
def test_results_scoring_other_queries_are_refused(tmp_path: Path, capsys, command, edit, words, mirrored, side):
    err = _run_edited(tmp_path, capsys, command, edit, side)
    _refused(2, err, [*(words if side == "candidate" else mirrored), METRIC, "--allow-missing-queries"])


@pytest.mark.parametrize(("name", "text", "words"), [
    ("not-json", "{not json", ["not valid JSON"]),
    ("top-level-list", "[1, 2]", ["expected a JSON object"]),
    ("empty", "", ["not valid JSON"]),
    ("neither", '{"tuned": 1}', ["neither an evaluate result"]),
])
def test_unreadable_files_are_refused(tmp_path: Path, capsys, name, text, words):
    base = _write(tmp_path, "base.json", BASELINE)
    code, _, err = _run(["gate", "--baseline", base, "--candidate", _write(tmp_path, f"{name}.json", text)], capsys)
    _refused(code, err, words)


def test_a_folder_as_a_result_file_is_refused(tmp_path: Path, capsys):
    base = _write(tmp_path, "base.json", BASELINE)
    code, _, err = _run(["gate", "--baseline", base, "--candidate", str(tmp_path)], capsys)
    _refused(code, err, [str(tmp_path), "folder"])


def test_hidden_queries_are_counted_when_allowed(tmp_path: Path, capsys):
    """With --allow-missing-queries a candidate that dropped its collapsed queries is compared over
    the rest, and every output says how many baseline queries were left out."""
    cand = copy.deepcopy(BAD)
    _drop(*WORST)(cand)
    base, cand_path = _write(tmp_path, "base.json", BASELINE), _write(tmp_path, "cand.json", cand)
    md, js = tmp_path / "v.md", tmp_path / "v.json"
    code, out, err = _run(["gate", "--baseline", base, "--candidate", cand_path, "--allow-missing-queries",
                           "--md", str(md), "--json", str(js)], capsys)
    assert code in (0, 1) and err == ""
    note = f"{len(WORST)} baseline queries missing from the candidate"
    assert note in out and note in md.read_text() and note in " ".join(json.loads(js.read_text())["checked"])
    comparison = json.loads(js.read_text())["comparisons"]["main"]["metrics"][METRIC]
    assert comparison["missing_queries"] == len(WORST) and comparison["n_queries"] == N - len(WORST)
    code, out, _ = _run(["compare", base, cand_path, "--allow-missing-queries"], capsys)
    assert code == 0 and note in out


# (id, rules YAML, words the one-line error must contain)
TAMPERED_RULES = [
    ("max-drop-nan", "max_drop: .nan\n", ["max_drop", "finite"]),
    ("max-drop-any-nan", "max_drop_any: .nan\n", ["max_drop_any", "finite"]),
    ("alpha-nan", "alpha: .nan\n", ["alpha"]),
    ("max-drop-infinite", "max_drop: .inf\n", ["max_drop", "finite"]),
    ("min-value-minus-infinite", "min_value: -.inf\n", ["min_value", "finite"]),
    ("loss-threshold-nan", "max_losing_share: 0.1\nloss_threshold: .nan\n", ["loss_threshold"]),
    ("losing-share-nan", "max_losing_share: .nan\n", ["max_losing_share"]),
    ("max-drop-string", "max_drop: lots\n", ["max_drop"]),
    ("max-drop-boolean", "max_drop: true\n", ["max_drop"]),
    ("metrics-empty", "metrics: []\n", ["metrics", "non-empty"]),
    ("nested-metrics-empty", "rules: {metrics: []}\n", ["metrics", "non-empty"]),
    ("guard-rules-nan", "guard_rules: {max_drop: .nan}\n", ["max_drop", "finite"]),
    ("guard-set-not-there", "guards: {cranfeild: {max_drop: 0.1}}\n", ["cranfeild", "guard set"]),
    ("unknown-rule", "max_dorp: 0.1\n", ["Did you mean 'max_drop'"]),
    ("rules-not-mapping", "- max_drop: 0.1\n", ["expected a mapping"]),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in TAMPERED_RULES], ids=[c[0] for c in TAMPERED_RULES])
@pytest.mark.parametrize("candidate", ["good", "bad"])
def test_tampered_rules_are_refused(tmp_path: Path, capsys, text, words, candidate):
    rules = tmp_path / "gate.yaml"
    rules.write_text(text)
    base = _write(tmp_path, "base.json", BASELINE)
    cand = _write(tmp_path, "cand.json", GOOD if candidate == "good" else BAD)
    code, _, err = _run(["gate", "--baseline", base, "--candidate", cand, "--rules", str(rules)], capsys)
    _refused(code, err, words)


def _report(tuned: dict[str, Any], guards: dict[str, Any]) -> dict[str, Any]:
    return {"base": BASELINE, "tuned": tuned, "guards": guards}


@pytest.mark.parametrize(("name", "report", "words"), [
    ("guards-not-object", _report(GOOD, ["cranfield"]), ["guards", "list"]),
    ("guards-empty-list", _report(GOOD, []), ["guards", "list"]),
    ("guards-null", _report(GOOD, None), ["guards", "null"]),
    ("guard-not-object", _report(GOOD, {"cranfield": "skipped"}), ["guards.cranfield"]),
    ("guard-side-missing", _report(GOOD, {"cranfield": {"base": BASELINE}}), ["guards.cranfield", "'tuned'"]),
    ("guard-nan", _report(GOOD, {"cranfield": {"base": BASELINE, "tuned": {**GOOD, "per_query": {
        METRIC: {**GOOD["per_query"][METRIC], "q003": float("nan")}}}}}), ["guards.cranfield.tuned", "q003", "NaN"]),
])
def test_tampered_run_report_is_refused(tmp_path: Path, capsys, name, report, words):
    path = _write(tmp_path, "report.json", report)
    code, _, err = _run(["gate", "--baseline", path, "--candidate", path], capsys)
    _refused(code, err, words)


def test_a_candidate_report_without_a_guard_set_is_refused(tmp_path: Path, capsys):
    with_guard = _write(tmp_path, "a.json", _report(GOOD, {"cranfield": {"base": BASELINE, "tuned": BAD}}))
    without = _write(tmp_path, "b.json", _report(GOOD, {}))
    code, _, err = _run(["gate", "--baseline", with_guard, "--candidate", without], capsys)
    _refused(code, err, ["'cranfield'", "only one of the two reports"])
    other = _write(tmp_path, "c.json", _report(GOOD, {"cisi": {"base": BASELINE, "tuned": GOOD}}))
    code, _, err = _run(["gate", "--baseline", with_guard, "--candidate", other], capsys)
    _refused(code, err, ["'cisi', 'cranfield'", "only one of the two reports"])


@pytest.mark.parametrize("report_side", ["candidate", "baseline"])
def test_a_result_file_against_a_run_report_gates_the_main_set(tmp_path: Path, capsys, report_side):
    """An `evaluate` result has no guard sets to pair: the main set is gated, and the verdict names
    the report's guard sets as not compared (before, this was refused as unpaired guard sets)."""
    plain = _write(tmp_path, "plain.json", BASELINE if report_side == "candidate" else GOOD)
    report = _write(tmp_path, "report.json", _report(GOOD, {"cranfield": {"base": BASELINE, "tuned": BAD},
                                                            "cisi": {"base": BASELINE, "tuned": BAD}}))
    pair = (plain, report) if report_side == "candidate" else (report, plain)
    js = tmp_path / "v.json"
    code, out, err = _run(["gate", "--baseline", pair[0], "--candidate", pair[1], "--json", str(js)], capsys)
    assert code == 0 and err == "", err
    note = f"guard set(s) 'cisi', 'cranfield' not compared: only the {report_side} (a run report) has them"
    assert note in out and any(note in line for line in json.loads(js.read_text())["checked"])
    assert set(json.loads(js.read_text())["comparisons"]) == {"main"}


def _no_fingerprint(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        if value == "absent":
            del data["dataset"]["fingerprint"]
        else:
            data["dataset"]["fingerprint"] = value
    return edit


@pytest.mark.parametrize("command", ["gate", "compare"])
@pytest.mark.parametrize("value", ["absent", None, ""])
@pytest.mark.parametrize("side", ["candidate", "baseline", "both"])
def test_a_result_without_a_data_fingerprint_is_not_comparable(tmp_path: Path, capsys, command, value, side):
    """A missing fingerprint loaded as None, and None == None passed for "same data"."""
    base, cand = copy.deepcopy(BASELINE), copy.deepcopy(GOOD)
    for data in {"candidate": [cand], "baseline": [base], "both": [base, cand]}[side]:
        _no_fingerprint(value)(data)
    paths = _write(tmp_path, "base.json", base), _write(tmp_path, "cand.json", cand)
    argv = ["gate", "--baseline", paths[0], "--candidate", paths[1]] if command == "gate" else ["compare", *paths]
    code, _, err = _run(argv, capsys)
    which = "neither result records" if side == "both" else f"the {side} result does not record"
    _refused(code, err, [which, "dataset.fingerprint", "--force"])
    js = tmp_path / "out.json"
    code, _, err = _run([*argv, "--force", "--json", str(js)], capsys)
    assert code == 0 and err == "", err
    forced = json.loads(js.read_text())
    assert (forced["comparisons"]["main"] if command == "gate" else forced)["forced"] is True


# Edits that change nothing the gate reads: a regressed candidate still fails (exit 1).
COSMETIC = [
    ("means-edited", _set(f"metrics.{METRIC}", 0.99)),
    ("model-renamed", _set("model.name", "base")),
    ("versions-removed", _delete("versions")),
    ("timings-removed", _delete("timings")),
    ("extra-field", _set("dataset.note", "looks fine")),
]


@pytest.mark.parametrize("edit", [c[1] for c in COSMETIC], ids=[c[0] for c in COSMETIC])
def test_cosmetic_edits_do_not_rescue_a_regression(tmp_path: Path, capsys, edit):
    cand = copy.deepcopy(BAD)
    edit(cand)
    base, cand_path = _write(tmp_path, "base.json", BASELINE), _write(tmp_path, "cand.json", cand)
    code, out, err = _run(["gate", "--baseline", base, "--candidate", cand_path], capsys)
    assert code == 1 and err == "" and "FAILED: ndcg@10 dropped" in out


def test_compare_json_is_strict_and_out_folder_is_named(tmp_path: Path, capsys):
    base, good = _write(tmp_path, "base.json", BASELINE), _write(tmp_path, "good.json", GOOD)
    out = tmp_path / "c.json"
    assert _run(["compare", base, good, "--json", str(out)], capsys)[0] == 0

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    json.loads(out.read_text(), parse_constant=refuse)
    folder = tmp_path / "results"
    folder.mkdir()
    code, _, err = _run(["compare", base, good, "--json", str(folder)], capsys)
    _refused(code, err, [str(folder)])
    assert ".tmp" not in err and list(folder.iterdir()) == []
