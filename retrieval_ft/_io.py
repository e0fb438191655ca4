"""File-system helpers shared by every stage: atomic writes, hashing, the user cache folder."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DataError

CACHE_ENV = "RETRIEVAL_FT_CACHE"


def cache_dir(sub: str = "") -> Path:
    """The user cache folder (`$RETRIEVAL_FT_CACHE`, else `$XDG_CACHE_HOME/retrieval-ft`)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "retrieval-ft")
    path = Path(root) / sub if sub else Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed onto `target`.

    A crash (or kill) before the rename leaves the previous `target` untouched.
    """
    target = Path(target)
    if target.is_dir():  # say so before writing, naming the path given (not the temporary file)
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file path", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp_path, target)
        except OSError as exc:  # e.g. a folder created meanwhile
            raise type(exc)(exc.errno, exc.strerror, str(target)) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    """Sorted-key, strict JSON: a NaN or infinite number is refused (DataError naming `target` and
    where in `obj` it is), since JSON has no such values and strict parsers reject the file."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise DataError(f"{target}: not written: {non_finite_path(obj)} is NaN or infinite, which JSON "
                         "cannot hold.") from None
    write_text_atomic(target, text + "\n")


def read_json_object(path: str | os.PathLike[str], fix: str, *, what: str = "JSON file",
                     error: type[Exception] = DataError) -> dict[str, Any]:
    """A JSON file holding one object (a result, a stamp, an index sidecar, a shard's plan): anything
    else raises `error` naming the file, saying it is not a `what`, and ending with `fix`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; {fix}.") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a {what}; {fix}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a {what}: unreadable or not valid JSON ({exc}); {fix}.") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not a {what} (expected a JSON object, got {type(data).__name__}); {fix}.")
    return data


def non_finite_path(obj: Any, where: str = "") -> str | None:
    """Where the first NaN or infinite float in a JSON-like value is (`a.b[2]`), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = non_finite_path(value, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found:
            return found
    return None


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces the folder `target` as a whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def hash_strings(parts: Iterator[str] | list[str] | tuple[str, ...]) -> str:
    """A stable hex digest of a sequence of strings (length-prefixed, so boundaries count)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """`file_sha256`, remembered per (path, size, mtime) for this process: page corpora hash each
    page file for cache keys and fingerprints, and a PDF's pages share one file."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
