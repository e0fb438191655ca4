"""The `evaluate` command end to end: output JSON, run files, cache reuse, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_ft.cli import main
from retrieval_ft.data import load_dataset
from retrieval_ft.metrics import evaluate_run

from .conftest import ROOT


def _evaluate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_writes_results_and_reuses_cache(capsys, tiny_model_path: Path, beir_dir: Path, tmp_path: Path):
    out_json, run_file = tmp_path / "res.json", tmp_path / "run.trec"
    cache = ["--cache-dir", str(tmp_path / "cache")]  # its own cache: other tests may have encoded this corpus
    code, out, err = _evaluate(capsys, "--model", str(tiny_model_path), "--data", str(beir_dir),
                               "--out", str(out_json), "--save-run", str(run_file), "--k", "20",
                               "--metrics", "ndcg@10,recall@20,mrr@10", *cache)
    assert code == 0, err
    assert "ndcg@10" in out and "skipped (no judgments)=1" in out
    res = json.loads(out_json.read_text())
    assert set(res) >= {"metrics", "per_query", "model", "dataset", "versions", "timings", "cache"}
    assert set(res["metrics"]) == {"ndcg@10", "recall@20", "mrr@10"}
    ds = load_dataset(beir_dir)
    assert res["dataset"] == {**res["dataset"], "split": "test", "fingerprint": ds.fingerprint("test"),
                              "n_docs": 40, "n_queries_judged": 5, "n_queries_skipped": 1}
    assert len(res["model"]["fingerprint"]) == 64 and res["model"]["name"] == str(tiny_model_path)
    assert set(res["per_query"]["ndcg@10"]) == set(ds.judged_queries("test"))
    assert res["cache"]["hit"] is False and res["timings"]["encode_corpus"] > 0
    assert {"torch", "sentence-transformers", "ranx", "faiss-cpu"} <= set(res["versions"])

    # the run file holds the ranking the metrics were computed on
    run: dict[str, dict[str, float]] = {}
    for line in run_file.read_text().splitlines():
        qid, q0, did, rank, score, _tag = line.split()
        assert q0 == "Q0"
        run.setdefault(qid, {})[did] = -int(rank)
    assert all(len(v) == 20 for v in run.values())
    recomputed = evaluate_run(ds.split("test"), run, ["ndcg@10", "recall@20", "mrr@10"])
    for name, value in recomputed.mean.items():
        assert res["metrics"][name] == pytest.approx(value, abs=1e-12)

    code, out, _ = _evaluate(capsys, "--model", str(tiny_model_path), "--data", str(beir_dir),
                             "--out", str(out_json), "--k", "20", "--metrics", "ndcg@10,recall@20,mrr@10", *cache)
    again = json.loads(out_json.read_text())
    assert code == 0 and again["cache"]["hit"] is True and "cache hit" in out
    assert again["metrics"] == res["metrics"]


def test_evaluate_hnsw_and_save_index(capsys, tiny_model_path: Path, beir_dir: Path, tmp_path: Path):
    code, _, err = _evaluate(capsys, "--model", str(tiny_model_path), "--data", str(beir_dir), "--index", "hnsw",
                             "--save-index", str(tmp_path / "idx"), "--split", "train")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert sidecar["kind"] == "hnsw" and sidecar["n_docs"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "MODEL", "--data", "DATA", "--split", "dev"], "no judgments for split 'dev'"),
        (["--model", "MODEL", "--data", "DATA", "--metrics", "ndgc@10"], "unknown metric 'ndgc@10'. Did you mean 'ndcg@10'"),
        # a known name with a bad cutoff: the suggestion is a valid metric, never the name itself
        (["--model", "MODEL", "--data", "DATA", "--metrics", "ndcg@abc"], r"unknown metric 'ndcg@abc'\. Did you mean 'ndcg@10'\?"),
        (["--model", "MODEL", "--data", "DATA", "--k", "10"], "'recall@100' looks at 100 results but only k=10"),
        (["--model", "MODEL", "--data", "DATA", "--batch-size", "0"], "batch_size must be a positive integer"),
        (["--model", "./no/such/model", "--data", "DATA"], "model folder not found"),
        (["--model", "DATA", "--data", "DATA"], "not a model folder"),
        (["--model", "MODEL", "--data", "./no/such/data"], "dataset not found"),
        (["--model", "MODEL", "--data", "BADDATA"], r"corpus.jsonl:2: invalid JSON"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tiny_model_path, beir_dir: Path, tmp_path: Path, args, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("queries.jsonl", "qrels"):
        os.symlink(beir_dir / name, bad / name)
    (bad / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{oops\n')
    args = [{"MODEL": str(tiny_model_path), "DATA": str(beir_dir), "BADDATA": str(bad)}.get(a, a) for a in args]
    code, _, err = _evaluate(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("retrieval-ft: error: ")
    assert re.search(message, err), err


def test_offline_hub_id_says_so(capsys, beir_dir: Path):
    code, _, err = _evaluate(capsys, "--model", "some-org/not-a-local-model", "--data", str(beir_dir))
    assert code == 2 and "HF_HUB_OFFLINE=1" in err and "Pass a local model folder" in err


def test_help_is_fast_and_does_not_import_torch():
    probe = ("import sys\nfrom retrieval_ft.cli import main\n"
             "try:\n    main(['evaluate', '--help'])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'faiss', 'ranx', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "--model" in out and "HEAVY []" in out
    console = Path(sys.executable).with_name("retrieval-ft")
    if console.exists():
        res = subprocess.run([str(console), "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "evaluate" in res.stdout


def test_a_split_without_relevant_judgments_is_refused_before_encoding(capsys, tiny_model_path: Path, beir_dir: Path,
                                                                       tmp_path: Path):
    """Every judgment 0: no metric can be computed, so `evaluate` says so (exit 2, one line) instead
    of printing nan and exiting 0, and encodes nothing first."""
    qrels = beir_dir / "qrels" / "test.tsv"
    head, *rows = qrels.read_text().splitlines()
    qrels.write_text("\n".join([head, *(r.rsplit("\t", 1)[0] + "\t0" for r in rows)]) + "\n")
    cache = tmp_path / "cache"
    code, out, err = _evaluate(capsys, "--model", str(tiny_model_path), "--data", str(beir_dir),
                               "--cache-dir", str(cache), "--out", str(tmp_path / "res.json"))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"{beir_dir}: split 'test' has no query with a relevant judgment" in err
    assert not cache.exists() and not (tmp_path / "res.json").exists()


def test_options_come_from_the_config_fields():
    """One declaration per option: `--help` and `help(EncodeConfig)` show the field's help, choices
    are the enum's values, and flags default to None so the dataclass default wins."""
    import pydoc

    from retrieval_ft.cli import build_parser
    from retrieval_ft.config import EncodeConfig, EvalConfig, IndexKind, Method, TrainConfig

    help_text = dict(EncodeConfig.__dataclass_fields__)["query_prompt"].metadata["help"]
    assert help_text in " ".join(pydoc.render_doc(EncodeConfig).split())
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - the subparsers argparse made
    for command in ("evaluate", "encode", "train"):
        assert help_text in " ".join(sub[command].format_help().split()), command
    actions = {a.dest: a for a in sub["train"]._actions}  # noqa: SLF001
    assert actions["method"].choices == [m.value for m in Method]
    assert {a.dest: a for a in sub["evaluate"]._actions}["kind"].choices == [k.value for k in IndexKind]  # noqa: SLF001
    assert f"(default: {EvalConfig().k})" in " ".join(sub["evaluate"].format_help().split())
    args = parser.parse_args(["train", "--model", "m", "--data", "d", "--out", "o"])
    assert args.method is args.lr is args.batch_size is args.encode_max_seq_length is None
    # train's --max-seq-length is the encoder's, as before; TrainConfig.max_seq_length stays its own
    from retrieval_ft.cli.options import config_values

    args = parser.parse_args(["train", "--model", "m", "--data", "d", "--out", "o", "--max-seq-length", "64"])
    assert "max_seq_length" not in config_values(args, TrainConfig)


def test_did_you_mean_never_suggests_the_name_given():
    from retrieval_ft.config import did_you_mean

    assert did_you_mean("ndcg@1", ["ndcg@1", "ndcg@10"]) == " Did you mean 'ndcg@10'?"
    assert did_you_mean("x", ["x"], " Valid: x.") == " Valid: x."


@pytest.mark.parametrize("argv,prefix", [
    (["evaluate", "--model", "m", "--data", "d"], ""),
    (["encode", "--model", "m", "--data", "d", "--out", "o"], ""),
    (["train", "--model", "m", "--data", "d", "--out", "o"], "encode_"),
])
def test_no_progress_switches_progress_off(argv, prefix):
    """Before, --no-progress stored the opposite of the field's default (None), so it forced bars on."""
    from retrieval_ft.cli import build_parser
    from retrieval_ft.cli.options import encode_config

    parser = build_parser()
    assert encode_config(parser.parse_args(argv), prefix).progress is None
    assert encode_config(parser.parse_args([*argv, "--no-progress"]), prefix).progress is False


def test_bench_methods_names_contenders_of_the_config(capsys):
    from retrieval_ft.cli.commands import _some_methods
    from retrieval_ft.config import load_bench_config

    config = load_bench_config(str(ROOT / "eval" / "configs" / "homedepot.yaml"))
    picked = _some_methods(config, "query-only, query-only-guarded")
    assert [m.name for m in picked.methods] == ["query-only", "query-only-guarded"] and picked.seeds == config.seeds
    assert _some_methods(config, None) is config
    assert main(["bench", str(ROOT / "eval" / "configs" / "homedepot.yaml"), "--methods", "lora-guardd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'lora-guardd' is not a contender of homedepot" in err[0] and "'lora-guarded'" in err[0]
