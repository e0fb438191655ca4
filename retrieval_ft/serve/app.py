"""The HTTP face of an AdapterRetriever: FastAPI routes, the request checks, one error shape, `serve`.

Every bad request is answered `{"error": "<one line>"}` with a 4xx code, never a traceback; the
package's errors map to codes in one table (`STATUS`). The retriever is not thread-safe and FastAPI
runs sync routes in a thread pool, so every call into it holds one lock. This module knows HTTP
and the retriever's methods, nothing of models or indexes.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..config import ServeConfig, did_you_mean
from ..errors import (
    ConfigError,
    DataError,
    IndexMismatchError,
    MissingExtraError,
    ModelError,
    RetrievalFTError,
    UnknownAdapterError,
)

try:
    import uvicorn
    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr
    from starlette.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
    raise MissingExtraError(f"retrieval-ft serve needs {exc.name}: pip install 'retrieval-ft[serve]'") from None

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Each documented error's status code; the first class that matches wins, so subclasses come first.
# A retriever's ModelError (not an artifact, or tuned from another base) is the request's fault: 422.
STATUS: tuple[tuple[type[RetrievalFTError], int], ...] = (
    (UnknownAdapterError, 404),  # no adapter of that name is loaded
    (IndexMismatchError, 409),  # an adapter's own index disagrees with its encoder: the served state conflicts
    (MissingExtraError, 500),  # the server lacks a library: not the client's fault
    (ConfigError, 422),
    (ModelError, 422),
    (DataError, 422),
    (RetrievalFTError, 422),
)


def status_of(exc: RetrievalFTError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


class SearchRequest(BaseModel):
    """`POST /search`: query texts, results per query, and the adapter: `adapter` for every query
    (absent or null: the base), or `adapters`, one name (or null) per query, for a mixed batch."""

    model_config = ConfigDict(extra="forbid")
    queries: list[StrictStr]
    k: StrictInt = 10
    adapter: StrictStr | None = None
    adapters: list[StrictStr | None] | None = None


class AdapterRequest(BaseModel):
    """`PUT /adapters/NAME`: the artifact folder (a path on the server) to load under NAME."""

    model_config = ConfigDict(extra="forbid")
    path: StrictStr


class HitOut(BaseModel):
    doc_id: str
    score: float


class SearchResponse(BaseModel):
    results: list[list[HitOut]]  # one list per query, best first


class ErrorResponse(BaseModel):
    error: str  # one line


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (404, 409, 422, 500)}


class InternalError(Exception):
    """An unexpected failure inside the retriever, already logged with its traceback."""


class Service:
    """The retriever behind its lock, and the limits of a request."""

    def __init__(self, retriever: Any, max_k: int, max_queries: int) -> None:
        self.retriever = retriever
        self.lock = threading.Lock()
        self.max_k, self.max_queries = max_k, max_queries
        self.documents = int(self.run("corpus_size", lambda r: r.corpus_size))

    def run(self, what: str, call: Callable[[Any], T]) -> T:
        """`call(retriever)` under the lock; an error that is not the package's is logged with its
        traceback and answered as an internal error."""
        with self.lock:
            try:
                return call(self.retriever)
            except RetrievalFTError:
                raise
            except Exception as exc:
                logger.exception("serve: %s failed", what)
                raise InternalError(type(exc).__name__) from exc

    def adapter_argument(self, body: SearchRequest) -> str | None | list[str | None]:
        """The retriever's `adapter` argument for a search request, once its sizes are checked."""
        n = len(body.queries)
        if not n:
            raise ConfigError("queries: the list is empty; send at least one query text.")
        if n > self.max_queries:
            raise ConfigError(f"queries: {n} in one request, the most is {self.max_queries} (the server's "
                              "max_queries); split the batch.")
        limit = min(self.max_k, self.documents)
        if not 1 <= body.k <= limit:
            why = ("the server's max_k" if self.max_k < self.documents
                   else f"the index holds {self.documents} documents")
            raise ConfigError(f"k: {body.k} is out of range; give 1 to {limit} ({why}).")
        if body.adapters is None:
            return body.adapter
        if body.adapter is not None:
            raise ConfigError("give adapter (one for every query) or adapters (one per query), not both.")
        if len(body.adapters) != n:
            raise ConfigError(f"adapters: {len(body.adapters)} names for {n} queries; give one per query "
                              "(null: the base).")
        return list(body.adapters)


def create_app(retriever: Any, *, max_k: int = 1000, max_queries: int = 256) -> FastAPI:
    """The FastAPI app serving `retriever` (an AdapterRetriever, or anything with its methods):
    `POST /search`, `GET /adapters`, `PUT` and `DELETE /adapters/NAME`, `GET /health`."""
    if max_k < 1 or max_queries < 1:
        raise ConfigError(f"max_k and max_queries must be positive, got {max_k} and {max_queries}.")
    app = FastAPI(title="retrieval-ft", summary="Search one base index with the base model or its adapters.")
    service = Service(retriever, max_k, max_queries)
    _search_routes(app, service)
    _adapter_routes(app, service)
    _error_handlers(app)
    return app


def _search_routes(app: FastAPI, service: Service) -> None:
    @app.post("/search", response_model=SearchResponse, responses=_ERRORS)
    def search(body: SearchRequest) -> dict[str, Any]:
        """Top-k documents per query, best first, from the base (no adapter) or the named adapters."""
        adapter = service.adapter_argument(body)
        hits = service.run("search", lambda r: r.search(body.queries, body.k, adapter=adapter))
        return {"results": [[{"doc_id": h.doc_id, "score": float(h.score)} for h in row] for row in hits]}

    @app.get("/health")
    def health() -> dict[str, Any]:
        """`ok`, the base model's name, the documents served and the adapters loaded."""
        base, names = service.run("health", lambda r: (r.base_name, r.names()))
        return {"status": "ok", "base": base, "documents": service.documents, "adapters": len(names)}


def _adapter_routes(app: FastAPI, service: Service) -> None:
    @app.get("/adapters")
    def list_adapters() -> dict[str, Any]:
        """Every loaded adapter: name, path, method, side (query or both) and index (base or own)."""
        return {"adapters": [info.to_dict() for info in service.run("info", lambda r: r.info())]}

    @app.put("/adapters/{name}", responses={201: {"description": "loaded"}, 200: {"description": "replaced"},
                                            **_ERRORS})
    def put_adapter(name: str, body: AdapterRequest, response: Response) -> dict[str, Any]:
        """Load the artifact at `path` as adapter NAME, replacing one of that name: 201 when it is
        new, 200 when it replaced one. The path is on the server (a relative one: to the folder the
        server was started in)."""

        def add(r: Any) -> tuple[Any, bool]:
            existed = name in r.names()
            return r.add(name, body.path, replace=True), existed

        info, existed = service.run("add", add)
        response.status_code = 200 if existed else 201
        return info.to_dict()

    @app.delete("/adapters/{name}", responses=_ERRORS)
    def delete_adapter(name: str) -> dict[str, str]:
        """Unload adapter NAME."""
        service.run("remove", lambda r: r.remove(name))
        return {"removed": name}


def _error(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=code, headers=headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RetrievalFTError)
    def package_error(request: Request, exc: RetrievalFTError) -> JSONResponse:
        return _error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        search = request.url.path == "/search"
        model, example = (SearchRequest, SEARCH_EXAMPLE) if search else (AdapterRequest, ADAPTER_EXAMPLE)
        return _error(422, validation_message(exc.errors(), list(model.model_fields), example))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, f"{str(exc.detail).lower()}: {request.method} {request.url.path}",
                      exc.headers)

    @app.exception_handler(InternalError)
    def internal(request: Request, exc: InternalError) -> JSONResponse:
        return _error(500, f"internal error: {exc}")

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__}")


SEARCH_EXAMPLE = '{"queries": ["red running shoes"], "k": 10, "adapter": "NAME"}'
ADAPTER_EXAMPLE = '{"path": "/path/to/artifact"}'


def validation_message(errors: Sequence[Mapping[str, Any]], fields: Sequence[str], example: str = "") -> str:
    """One line for pydantic's list of errors: the first three, each naming its field; a body that
    is not a JSON object is shown `example`."""
    lines = [_one_error(e, fields, example) for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(lines) + more


def _one_error(error: Mapping[str, Any], fields: Sequence[str], example: str) -> str:
    kind, given = error.get("type"), error.get("input")
    like = f", e.g. {example}" if example else ""
    loc = [p for p in error.get("loc", ()) if p != "body"]
    if kind == "json_invalid":
        at = f" at character {loc[0]}" if loc else ""
        return f"malformed JSON{at}: {error.get('ctx', {}).get('error', 'cannot be parsed')}"
    if not loc and kind == "missing":
        return f"the request needs a JSON body{like}"
    if not loc:
        if isinstance(given, (bytes, str)):
            return "the body is not JSON; send it with Content-Type: application/json"
        return f"the body must be a JSON object{like}; got {_json_kind(given)}"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if kind == "extra_forbidden":
        return f"unknown field {where!r}." + did_you_mean(where, fields, f" Fields: {', '.join(fields)}.")
    if kind == "missing":
        return f"{where}: required"
    msg = str(error.get("msg", "invalid"))
    return f"{where}: {msg[:1].lower()}{msg[1:]}, got {_json_kind(given)} {_short(given)}"


def _json_kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "a list"),
             (dict, "an object"), (type(None), "null"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _short(value: Any, limit: int = 40) -> str:
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Server(uvicorn.Server):
    """uvicorn's server, printing one ready line once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready: str) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.ready, flush=True)


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: a free one), made before the minutes of loading, so a
    port in use is said at once and no other server takes it meanwhile; a client that connects
    while loading waits for its answer."""
    sock = None
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; give another --host or "
                          "--port.") from None
    return sock


def build_retriever(config: ServeConfig) -> Any:
    """The AdapterRetriever a serve config describes (encoding and indexing `data` when given)."""
    from .adapters import AdapterRetriever

    source = f"index {config.index_folder}" if config.index_folder else f"data {config.data}"
    logger.info("serve: loading %s with %s and %d adapter(s)", config.model, source, len(config.adapters))
    return AdapterRetriever(config.model, data=config.data, index=config.index_folder, encode=config.encode,
                            index_config=config.index_settings, adapters=config.adapters)


def serve(config: ServeConfig, host: str | None = None, port: int | None = None) -> None:
    """Load the base model, its index and the adapters of `config`, then answer HTTP requests until
    interrupted. `host` and `port` override the config's. Prints "serving N documents, adapters
    [...] on http://HOST:PORT" once requests are answered."""
    config = replace(config, **{k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    sock = _bind(config.host, config.port)
    try:
        retriever = build_retriever(config)
        app = create_app(retriever, max_k=config.max_k, max_queries=config.max_queries)
        bound = sock.getsockname()[1]
        shown = f"[{config.host}]" if ":" in config.host else config.host
        ready = (f"serving {retriever.corpus_size} documents, adapters [{', '.join(retriever.names())}] "
                 f"on http://{shown}:{bound}")
        _Server(uvicorn.Config(app, host=config.host, port=bound), ready).run(sockets=[sock])
    finally:
        sock.close()
