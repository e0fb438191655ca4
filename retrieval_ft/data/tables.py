"""Product catalogs and other tables: JSONL, CSV, TSV or parquet files with a column mapping.

A dataset spec (YAML, or the same dict in Python) names the files and which columns hold what:

    corpus:
      path: products.csv
      id: sku
      template: "{title}. Brand: {brand}. Color: {color}. {description}"
    queries: {path: queries.jsonl, id: qid, text: query}
    qrels:
      test: qrels/test.tsv                 # BEIR TSV or TREC qrels
      train: {path: judgments.csv, query_id: qid, doc_id: sku, score: grade}

Paths are relative to the spec file's folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import did_you_mean
from ..errors import ConfigError, DataError
from .build import CORPUS_FIELDS, QUERY_FIELDS, Fields, UnknownIds, build_corpus, build_qrels, build_queries
from .dataset import IRDataset
from .records import Record, read_jsonl, read_qrels, read_table

SPEC_KEYS = {"corpus", "queries", "qrels"}
TABLE_KEYS = {"path", "id", "text", "title", "template", "image", "delimiter"}
QRELS_KEYS = {"path", "query_id", "doc_id", "score", "delimiter"}
_OPTIONAL_NAMES = {"title", "template", "image"}


def read_records(path: Path, delimiter: str | None = None) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return read_jsonl(path)
    if suffix in {".csv", ".tsv", ".tab"}:
        return read_table(path, delimiter)
    if suffix == ".parquet":
        from .hf import read_parquet

        return read_parquet(path)
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .jsonl, .csv, .tsv or .parquet.")


def _check_keys(section: str, given: Mapping[str, Any], allowed: set[str], spec_path: Path) -> None:
    for key in given:
        if key not in allowed:
            hint = did_you_mean(key, allowed, f" Allowed: {', '.join(sorted(allowed))}.")
            raise DataError(f"{spec_path}: unknown key {key!r} in {section}.{hint}")


def _check_values(section: str, given: Mapping[str, Any], spec_path: Path) -> None:
    """Each key of a table section holds what it names: a field name, a list of them (text), or a
    one-character delimiter; None switches off title, template and image."""
    for key, value in given.items():
        if key in _OPTIONAL_NAMES and value is None or key == "path":
            continue
        if key == "text" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            continue
        if key == "delimiter" and not (isinstance(value, str) and len(value) == 1):
            raise DataError(f"{spec_path}: {section}.delimiter must be one character, e.g. ',' or '\\t'; got {value!r}.")
        if not isinstance(value, str):
            what = "a column name or a list of them" if key == "text" else "a format string" if key == "template" \
                else "a column name"
            raise DataError(f"{spec_path}: {section}.{key} must be {what}; got {value!r}.")


def _check_section(section: str, given: Mapping[str, Any], allowed: set[str], spec_path: Path) -> None:
    _check_keys(section, given, allowed, spec_path)
    _check_values(section, given, spec_path)


def _fields(section: str, given: Mapping[str, Any], defaults: Fields, spec_path: Path) -> Fields:
    """The columns a table section names; a bad template is a DataError naming the spec."""
    try:
        return Fields.from_mapping(given, defaults)
    except ConfigError as exc:
        raise DataError(f"{spec_path}: {section}.{exc}") from None


def _table(section: str, value: Any, root: Path, spec_path: Path) -> tuple[Path, Mapping[str, Any]]:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, Mapping) or "path" not in value:
        raise DataError(f"{spec_path}: {section} must be a file path or a mapping with a 'path' key.")
    path = root / str(value["path"])
    if Path(str(value["path"])).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise DataError(
            f"{spec_path}: {section} path {value['path']!r} leaves the dataset folder {root}; paths must be relative "
            "to the spec and stay inside its folder (copy or link the file there)."
        )
    return path, value


def _judgments(path: Path, spec: Mapping[str, Any]) -> Iterator[tuple[int, str, str, Any]]:
    """Judgments from a qrels file, or from a table whose columns the spec names."""
    cols = {k: spec[k] for k in ("query_id", "doc_id", "score") if k in spec}
    if not cols and path.suffix.lower() not in {".jsonl", ".ndjson", ".csv", ".parquet"}:
        yield from read_qrels(path)
        return
    q = cols.get("query_id", "query-id")
    d = cols.get("doc_id", "corpus-id")
    s = cols.get("score", "score")
    for line, rec in read_records(path, spec.get("delimiter")):
        for name in (q, d, s):
            if name not in rec:
                raise DataError(
                    f"{path}:{line}: missing column {name!r} (present: {', '.join(map(str, rec))}); "
                    "name the columns with query_id, doc_id and score."
                )
        yield line, str(rec[q]), str(rec[d]), rec[s]


def load_spec(spec: Mapping[str, Any], root: str | Path, spec_path: str | Path = "<spec>",
              unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    """Load a dataset described by a spec mapping (see the module docstring)."""
    root, spec_path = Path(root), Path(spec_path)
    if not isinstance(spec, Mapping):
        raise DataError(f"{spec_path}: a dataset spec must be a mapping with corpus, queries and qrels.")
    _check_keys("the dataset spec", spec, SPEC_KEYS, spec_path)
    for key in ("corpus", "queries", "qrels"):
        if key not in spec:
            raise DataError(f"{spec_path}: missing {key!r}; a dataset spec needs corpus, queries and qrels.")

    corpus_path, corpus_spec = _table("corpus", spec["corpus"], root, spec_path)
    _check_section("corpus", corpus_spec, TABLE_KEYS, spec_path)
    corpus = build_corpus(read_records(corpus_path, corpus_spec.get("delimiter")), corpus_path,
                          _fields("corpus", corpus_spec, CORPUS_FIELDS, spec_path))

    queries_path, queries_spec = _table("queries", spec["queries"], root, spec_path)
    _check_section("queries", queries_spec, TABLE_KEYS, spec_path)
    queries = build_queries(read_records(queries_path, queries_spec.get("delimiter")), queries_path,
                            _fields("queries", queries_spec, QUERY_FIELDS, spec_path))

    if not isinstance(spec["qrels"], Mapping) or not spec["qrels"]:
        raise DataError(f"{spec_path}: qrels must map split names to files, e.g. {{test: qrels/test.tsv}}.")
    qrels, dropped = {}, 0
    for split, value in spec["qrels"].items():
        path, qspec = _table(f"qrels.{split}", value, root, spec_path)
        _check_section(f"qrels.{split}", qspec, QRELS_KEYS, spec_path)
        qrels[str(split)], n = build_qrels(_judgments(path, qspec), path, corpus, queries, UnknownIds(unknown_ids))
        dropped += n
    return IRDataset(corpus=corpus, queries=queries, qrels=qrels, source=str(spec_path), dropped_judgments=dropped)


def load_spec_file(path: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid YAML dataset spec ({exc}).") from None
    return load_spec(spec, path.parent, path, unknown_ids)
