"""`retrieval-ft serve` without a server: its config (YAML keys, paths relative to the file, the
errors) and its command line (fast --help, one-line errors). Needs no serve extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_ft.config import IndexConfig, ServeConfig, load_serve_config
from retrieval_ft.errors import ConfigError

# ---------------------------------------------------------------- the config


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    cfg = load_serve_config(str(_write(tmp_path / "conf" / "serve.yaml",
                                       "model: model\ndata: beir\nadapters: {shop: tuned/shop, abs: /x/y}\n"
                                       "index: {kind: flat}\nport: 0\n")))
    assert cfg.model == str(tmp_path / "conf" / "model")
    assert cfg.data == str(tmp_path / "conf" / "beir")
    assert cfg.adapters == {"shop": str(tmp_path / "conf" / "tuned" / "shop"), "abs": "/x/y"}
    assert cfg.index_settings == IndexConfig(kind="flat") and cfg.index_folder is None
    assert (cfg.host, cfg.port, cfg.max_k, cfg.max_queries) == ("127.0.0.1", 0, 1000, 256)
    cfg = load_serve_config(str(_write(tmp_path / "s.yaml", "model: some/hub-id\nindex: saved\n")), {"port": 9001})
    assert cfg.model == "some/hub-id" and cfg.index_folder == str(tmp_path / "saved") and cfg.port == 9001


@pytest.mark.parametrize("text,match", [
    ("model: m\n", "give data .* or index .*, not neither"),
    ("model: m\ndata: d\nindex: i\n", "not both"),
    ("model: m\nindex: {kind: flat}\n", "not neither"),
    ("model: m\ndata: d\nadaptres: {}\n", "unknown key 'adaptres'. Did you mean 'adapters'"),
    ("model: m\ndata: d\nindex: {knd: flat}\n", "unknown key 'index.knd'. Did you mean 'kind'"),
    ("model: m\ndata: d\nadapters: [a, b]\n", "adapters: expected a mapping"),
    ("model: m\ndata: d\nport: 70000\n", "port: 70000 is not a port number"),
    ("model: m\ndata: d\nport: '80'\n", "port: expected int"),
    ("model: m\ndata: d\nmax_k: 0\n", "max_k must be a positive integer"),
    ("data: d\n", "model"),
])
def test_config_errors_say_what_to_fix(tmp_path, text, match):
    path = _write(tmp_path / "serve.yaml", text)
    with pytest.raises(ConfigError, match=match) as err:
        load_serve_config(str(path))
    assert str(path) in str(err.value)


def test_config_from_python_takes_index_settings_as_a_mapping():
    cfg = ServeConfig(model="m", data="d", index={"kind": "hnsw"})
    assert cfg.index_settings == IndexConfig(kind="hnsw")
    assert "max_queries" in (ServeConfig.__doc__ or "")  # help(ServeConfig) documents every key


# ---------------------------------------------------------------- the command line


def test_serve_help_does_not_import_the_server(tmp_path):
    probe = ("import sys\nfrom retrieval_ft.cli import main\n"
             "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY', sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert "HEAVY []" in out and "--port" in out


def test_serve_with_a_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    from retrieval_ft.cli import main

    path = _write(tmp_path / "serve.yaml", "model: m\ndata: d\nprot: 80\n")
    assert main(["serve", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'prot'. Did you mean 'port'?" in err, err
    assert main(["serve", str(path.with_name("missing.yaml"))]) == 2
    assert "config file not found" in capsys.readouterr().err
