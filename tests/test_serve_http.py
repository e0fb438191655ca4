"""`retrieval-ft serve` over HTTP: the app's answers and error catalogue (in process, over a stand-in
retriever), and the real server in a subprocess (a tiny base model, LoRA adapters)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from retrieval_ft.config import ServeConfig
from retrieval_ft.errors import ConfigError, ModelError, UnknownAdapterError

pytest.importorskip("fastapi", reason="the serve extra: pip install 'retrieval-ft[serve]'")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from retrieval_ft.search import Hit  # noqa: E402
from retrieval_ft.serve.app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}  # this checkout's code
REQUESTS_PER_THREAD = 200  # 8 threads x 200: the example, about 20 s on a tiny model and 2 cores

# ---------------------------------------------------------------- the app, over a stand-in retriever


@dataclass(frozen=True)
class FakeInfo:
    name: str
    path: str
    method: str = "lora"
    side: str = "both"
    index: str = "own"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class FakeRetriever:
    """The AdapterRetriever interface over 12 documents; scores depend on the query and the
    adapter. It fails a test if two calls ever overlap (the app must hold its lock)."""

    corpus_size = 12
    base_name = "fake-base"

    def __init__(self) -> None:
        self.adapters: dict[str, FakeInfo] = {}
        self.inside = threading.Lock()

    def _enter(self) -> None:
        if not self.inside.acquire(blocking=False):
            raise AssertionError("two calls into the retriever at once")
        time.sleep(0.0005)
        self.inside.release()

    def add(self, name, path, *, replace=False):
        self._enter()
        if "other-base" in str(path):
            raise ModelError(f"{path} was tuned from base abc123, not this server's base def456.")
        if not str(path).startswith("/artifacts/"):
            raise ModelError(f"{path}: not a retrieval-ft artifact (no retrieval_ft.json).")
        if name in self.adapters and not replace:
            raise ConfigError(f"adapter {name!r} is already loaded.")
        self.adapters[name] = FakeInfo(name, str(path))
        return self.adapters[name]

    def remove(self, name):
        self._enter()
        self._known(name)
        del self.adapters[name]

    def _known(self, name):
        if name is not None and name not in self.adapters:
            raise UnknownAdapterError(f"unknown adapter {name!r}; loaded adapters: {', '.join(self.adapters) or 'none'}.")

    def names(self):
        return list(self.adapters)

    def info(self):
        return list(self.adapters.values())

    def search(self, queries, k=10, adapter=None):
        self._enter()
        per_query = list(adapter) if isinstance(adapter, list) else [adapter] * len(queries)
        for name in per_query:
            self._known(name)
        if "boom" in queries:
            raise RuntimeError("secret-internal-detail")
        return [[Hit(f"d{(len(q) + len(a or '') + i) % self.corpus_size}", 1.0 - i / 100) for i in range(k)]
                for q, a in zip(queries, per_query, strict=True)]


@pytest.fixture
def client():
    retriever = FakeRetriever()
    retriever.add("shop", "/artifacts/shop")
    return TestClient(create_app(retriever, max_k=10, max_queries=4), raise_server_exceptions=False)


def test_search_health_and_adapter_lifecycle(client):
    r = client.post("/search", json={"queries": ["red shoes", "tea"], "k": 3})
    assert r.status_code == 200
    assert r.json() == {"results": [[{"doc_id": f"d{(9 + i) % 12}", "score": 1.0 - i / 100} for i in range(3)],
                                    [{"doc_id": f"d{(3 + i) % 12}", "score": 1.0 - i / 100} for i in range(3)]]}
    tuned = client.post("/search", json={"queries": ["tea"], "k": 2, "adapter": "shop"}).json()["results"]
    assert tuned[0][0]["doc_id"] == "d7"
    mixed = client.post("/search", json={"queries": ["tea", "tea"], "k": 2, "adapters": ["shop", None]}).json()
    assert [row[0]["doc_id"] for row in mixed["results"]] == ["d7", "d3"]
    assert client.get("/health").json() == {"status": "ok", "base": "fake-base", "documents": 12, "adapters": 1}
    r = client.put("/adapters/new", json={"path": "/artifacts/new"})
    assert r.status_code == 201 and r.json() == FakeInfo("new", "/artifacts/new").to_dict()
    r = client.put("/adapters/new", json={"path": "/artifacts/newer"})
    assert r.status_code == 200 and r.json()["path"] == "/artifacts/newer"
    assert [a["name"] for a in client.get("/adapters").json()["adapters"]] == ["shop", "new"]
    assert client.delete("/adapters/new").json() == {"removed": "new"}
    assert client.get("/health").json()["adapters"] == 1


# (method, path, body, expected code, a fragment of the error). A str body is sent as it is, with a
# JSON content type unless it starts with "text:".
CATALOGUE = [
    ("post", "/search", {"queries": ["a"], "adapter": "nope"}, 404, "unknown adapter 'nope'; loaded adapters: shop"),
    ("post", "/search", {"queries": ["a", "b"], "adapters": ["shop", "nope"]}, 404, "unknown adapter 'nope'"),
    ("delete", "/adapters/nope", None, 404, "unknown adapter 'nope'"),
    ("post", "/search", {"queries": []}, 422, "queries: the list is empty"),
    ("post", "/search", {"queries": ["a"] * 5}, 422, "5 in one request, the most is 4"),
    ("post", "/search", {"queries": ["a"], "k": 0}, 422, "k: 0 is out of range; give 1 to 10 (the server's max_k)"),
    ("post", "/search", {"queries": ["a"], "k": 11}, 422, "k: 11 is out of range"),
    ("post", "/search", {"queries": ["a"], "k": "3"}, 422, "k: input should be a valid integer, got a string \"3\""),
    ("post", "/search", {"queries": ["a"], "k": True}, 422, "k: input should be a valid integer, got a boolean"),
    ("post", "/search", {"queries": "a"}, 422, "queries: input should be a valid list, got a string"),
    ("post", "/search", {"queries": ["a", 3]}, 422, "queries[1]: input should be a valid string, got a number 3"),
    ("post", "/search", {"k": 3}, 422, "queries: required"),
    ("post", "/search", {"queries": ["a"], "adaptr": "shop"}, 422, "unknown field 'adaptr'. Did you mean 'adapter'?"),
    ("post", "/search", {"queries": ["a"], "adapter": "shop", "adapters": ["shop"]}, 422, "not both"),
    ("post", "/search", {"queries": ["a", "b"], "adapters": ["shop"]}, 422, "1 names for 2 queries"),
    ("post", "/search", ["a"], 422, "the body must be a JSON object, e.g. {\"queries\": [\"red"),
    ("post", "/search", '{"queries": ["a"', 422, "malformed JSON at character"),
    ("post", "/search", "", 422, "the request needs a JSON body"),
    ("post", "/search", 'text:{"queries": ["a"]}', 422, "the body is not JSON; send it with Content-Type"),
    ("put", "/adapters/x", {"path": "/tmp/not-an-artifact"}, 422, "not a retrieval-ft artifact"),
    ("put", "/adapters/x", {"path": "/artifacts/other-base"}, 422, "tuned from base abc123"),
    ("put", "/adapters/x", {"pth": "/artifacts/x"}, 422, "unknown field 'pth'. Did you mean 'path'?"),
    ("put", "/adapters/x", {"path": 3}, 422, "path: input should be a valid string"),
    ("get", "/nowhere", None, 404, "not found: GET /nowhere"),
    ("get", "/search", None, 405, "method not allowed: GET /search"),
    ("post", "/search", {"queries": ["boom"]}, 500, "internal error: RuntimeError"),
]


@pytest.mark.parametrize("method,path,body,code,fragment", CATALOGUE,
                         ids=[f"{c[3]}-{c[4][:30]}" for c in CATALOGUE])
def test_every_bad_request_is_one_json_line(client, caplog, method, path, body, code, fragment):
    kwargs = {}
    if isinstance(body, str):
        text = body.removeprefix("text:")
        kwargs = {"content": text.encode(), "headers": {"content-type": "text/plain" if body != text
                                                        else "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == code, r.text
    assert list(r.json()) == ["error"] and "\n" not in r.json()["error"]
    assert fragment in r.json()["error"], r.json()["error"]
    assert "Traceback" not in r.text and "secret-internal-detail" not in r.text
    if code == 500:  # the details go to the server's log
        assert "secret-internal-detail" in caplog.text and "Traceback" in caplog.text


def test_calls_into_the_retriever_never_overlap(client):
    names = [None, "shop"]
    expected = {a: client.post("/search", json={"queries": ["q"], "k": 3, "adapter": a}).json() for a in names}
    failures = []

    def hammer(seed: int) -> None:
        for i in range(30):
            adapter = names[(seed + i) % 2]
            r = client.post("/search", json={"queries": ["q"], "k": 3, "adapter": adapter})
            if r.status_code != 200 or r.json() != expected[adapter]:
                failures.append(r.text)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]


# ---------------------------------------------------------------- the real server, in a subprocess

READY = re.compile(r"serving (\d+) documents, adapters \[(.*)\] on (http://\S+)")
QUERIES = ["star galaxy planet", "recipe oven flour", "goal match striker", "patient doctor vaccine", "bank loan"]


def _artifact(model: Path, data: Path, out: Path, method: str = "lora", seed: int = 42) -> Path:
    from retrieval_ft.config import EncodeConfig, TrainConfig
    from retrieval_ft.train import finetune

    config = TrainConfig(method=method, max_steps=2, batch_size=8, evals_per_epoch=1, warmup_ratio=0.0, lr=5e-2,
                         seed=seed)
    return Path(finetune(str(model), data, config, out, encode=EncodeConfig(progress=False)).artifact)


def _wait_ready(proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = READY.search(log.read_text())
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"serve not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory):
    """`retrieval-ft serve` on a tiny base over 40 documents, with adapter `shop` (query-lora: the
    base index), on a free port; yields (its URL, the files the tests use), and always stops it.
    `other` is a two-sided LoRA (an index of its own), `foreign` a LoRA tuned from another base."""
    from .conftest import build_tiny_model, write_beir

    root = tmp_path_factory.mktemp("serve")
    data = write_beir(root / "beir")
    files = {"data": data, "shop": _artifact(tiny_model_path, data, root / "shop", "query-lora"),
             "other": _artifact(tiny_model_path, data, root / "other", seed=7),
             "foreign": _artifact(build_tiny_model(root / "other-base", seed=3), data, root / "foreign"),
             "log": root / "serve.log", "config": root / "serve.yaml"}
    config = files["config"]  # data and the adapter relative to it
    config.write_text(f"model: {tiny_model_path}\ndata: beir\nadapters: {{shop: {files['shop'].relative_to(root)}}}\n"
                      "encode: {progress: false}\nmax_queries: 8\n")
    with open(files["log"], "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "retrieval_ft", "serve", str(config), "--port", "0"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=root, env=ENV)
    try:
        ready = _wait_ready(proc, files["log"])
        assert (ready.group(1), ready.group(2)) == ("40", "shop"), ready.group(0)
        yield ready.group(3), files
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _search(http, queries, k=5, **adapter):
    r = http.post("/search", json={"queries": queries, "k": k, **adapter})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_server_searches_the_base_and_its_adapters(server, tiny_model_path):
    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.data import load_dataset
    from retrieval_ft.encode import Encoder
    from retrieval_ft.search import Retriever

    url, files = server
    with httpx.Client(base_url=url, timeout=60) as http:
        health = http.get("/health").json()
        assert health == {"status": "ok", "base": health["base"], "documents": 40, "adapters": 1}
        base = _search(http, QUERIES)
        tuned = _search(http, QUERIES, adapter="shop")
        mixed = _search(http, QUERIES[:2], adapters=["shop", None])
        listed = http.get("/adapters").json()["adapters"]
    local = Retriever.build(Encoder(str(tiny_model_path), EncodeConfig(progress=False)), load_dataset(files["data"]))
    for row, hits in zip(base, local.search(QUERIES, k=5), strict=True):  # the server answers as the library does
        assert [h["doc_id"] for h in row] == [h.doc_id for h in hits]
        assert [h["score"] for h in row] == pytest.approx([h.score for h in hits], abs=1e-5)
    assert [[h["doc_id"] for h in row] for row in mixed] == [[h["doc_id"] for h in row] for row in (tuned[0], base[1])]
    assert [h["score"] for h in mixed[0]] == pytest.approx([h["score"] for h in tuned[0]], abs=1e-5)
    assert [h["score"] for h in tuned[0]] != pytest.approx([h["score"] for h in base[0]], abs=1e-4)
    assert [(a["name"], a["path"]) for a in listed] == [("shop", str(files["shop"]))]


def test_server_loads_replaces_and_removes_adapters(server):
    url, files = server
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.put("/adapters/extra", json={"path": str(files["other"])})
        assert r.status_code == 201, r.text
        assert {k: r.json()[k] for k in ("name", "method", "side", "index")} == {
            "name": "extra", "method": "lora", "side": "both", "index": "own, not built yet"}
        extra = _search(http, QUERIES, adapter="extra")
        assert http.get("/adapters").json()["adapters"][0]["index"] == "own"  # built by the first search
        r = http.put("/adapters/extra", json={"path": str(files["shop"])})
        assert r.status_code == 200 and r.json()["path"] == str(files["shop"]) and r.json()["side"] == "query"
        assert _search(http, QUERIES, adapter="extra") == _search(http, QUERIES, adapter="shop") != extra
        assert http.get("/health").json()["adapters"] == 2
        assert http.delete("/adapters/extra").json() == {"removed": "extra"}
        r = http.post("/search", json={"queries": QUERIES, "adapter": "extra"})
        assert r.status_code == 404 and "extra" in r.json()["error"]
        assert [a["name"] for a in http.get("/adapters").json()["adapters"]] == ["shop"]


def test_server_answers_bad_requests_with_one_json_line(server):
    url, files = server
    bad = [
        ("POST", "/search", {"json": {"queries": ["a"], "adapter": "nope"}}, 404),
        ("DELETE", "/adapters/nope", {}, 404),
        ("POST", "/search", {"json": {"queries": []}}, 422),
        ("POST", "/search", {"json": {"queries": ["a"] * 9}}, 422),
        ("POST", "/search", {"json": {"queries": ["a"], "k": 0}}, 422),
        ("POST", "/search", {"json": {"queries": ["a"], "k": 41}}, 422),
        ("POST", "/search", {"content": b'{"queries": [', "headers": {"content-type": "application/json"}}, 422),
        ("POST", "/search", {"json": {"queries": "star galaxy"}}, 422),
        ("PUT", "/adapters/foreign", {"json": {"path": str(files["foreign"])}}, 422),
        ("PUT", "/adapters/plain", {"json": {"path": str(files["data"])}}, 422),
        ("PUT", "/adapters/gone", {"json": {"path": str(files["data"] / "no-such-folder")}}, 422),
    ]
    with httpx.Client(base_url=url, timeout=60) as http:
        for method, path, kwargs, code in bad:
            r = http.request(method, path, **kwargs)
            assert r.status_code == code, (method, path, kwargs, r.text)
            body = r.json()
            assert list(body) == ["error"] and body["error"] and "\n" not in body["error"], body
        assert [a["name"] for a in http.get("/adapters").json()["adapters"]] == ["shop"]
        assert http.get("/health").json()["status"] == "ok"
    assert "Traceback" not in files["log"].read_text()


def test_server_answers_concurrent_clients_as_it_answers_one(server):
    url, _files = server
    adapters = [None, "shop"]
    with httpx.Client(base_url=url, timeout=60) as http:
        expected = {(q, a): _search(http, [q], k=3, adapter=a)[0] for q in QUERIES for a in adapters}
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(REQUESTS_PER_THREAD):
                q, a = rng.choice(QUERIES), rng.choice(adapters)
                try:
                    got = _search(http, [q], k=3, adapter=a)[0]
                except AssertionError as exc:
                    failures.append(str(exc))
                    continue
                if got != expected[(q, a)]:
                    failures.append(f"{q!r} with {a}: {got} != {expected[(q, a)]}")

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]


def test_a_port_in_use_is_refused_before_loading(server):
    url, files = server
    port = url.rsplit(":", 1)[1]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "retrieval_ft", "serve", str(files["config"]), "--port", port],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "loading" not in done.stderr and time.monotonic() - started < 60


def test_a_saved_index_folder_serves_as_the_data_does(server, tiny_model_path, tmp_path):
    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.data import load_dataset
    from retrieval_ft.encode import Encoder
    from retrieval_ft.search import Retriever
    from retrieval_ft.serve.app import build_retriever

    url, files = server
    encode = EncodeConfig(progress=False)
    Retriever.build(Encoder(str(tiny_model_path), encode), load_dataset(files["data"])).save(tmp_path / "index")
    config = ServeConfig(model=str(tiny_model_path), index=str(tmp_path / "index"), encode=encode,
                         adapters={"shop": str(files["shop"])})
    app = create_app(build_retriever(config), max_k=config.max_k, max_queries=config.max_queries)
    local = TestClient(app)
    with httpx.Client(base_url=url, timeout=60) as http:
        for adapter in (None, "shop"):
            body = {"queries": QUERIES, "k": 5, "adapter": adapter}
            assert local.post("/search", json=body).json() == http.post("/search", json=body).json()
