"""The shape of the package, checked: imports follow the documented flow, functions fit a screen,
modules stay small. The layer map below is the one the README's Layout section describes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "retrieval_ft"

# Each module's place in the flow: a module imports only modules of its own layer or of layers
# before it. Layer 0 is the torch-free foundation every stage may use (settings, errors, records,
# file helpers).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_io", "_launch", "_progress", "_records", "config", "results", "stamp"),
    ("data",),
    ("precision", "tiny_clip", "models"),
    ("encode",),
    ("index",),
    ("search", "shards"),
    ("serve",),  # one base model, many adapters (AdapterRetriever), and the HTTP service over it
    ("metrics",),
    ("train",),  # a package of its own: it uses encode, index and metrics for mining and dev sets
    ("compare",),
    ("gate",),
    ("report",),
    ("pipeline",),
    ("bench",),
    ("cli", "__main__", "__init__"),
]
TORCH_FREE = ("errors", "_io", "_launch", "_progress", "_records", "config", "results", "stamp", "metrics", "compare", "gate", "report")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _layer_of(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"retrieval_ft/{module}: not in the layer map of tests/test_architecture.py; "
                         "place it in the flow (and in the README's Layout section).")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node outside `if TYPE_CHECKING:` blocks (annotations only, never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _internal_imports(module: str, path: Path) -> set[str]:
    """Top-level package modules that `module` imports at run time (lazy imports included)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + (node.module.split(".") if node.module else [])
            if target:
                found.add(target[0])
            else:  # `from . import x`
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("retrieval_ft."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("retrieval_ft."))
    return found - {"__version__", module.split(".")[0]}


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_imports_follow_the_flow(module: str, path: Path) -> None:
    mine = _layer_of(module)
    against = sorted(t for t in _internal_imports(module, path) if _layer_of(t) > mine)
    assert not against, (f"retrieval_ft/{path.relative_to(PACKAGE)} imports {against}, which come later in the "
                         "flow (see the README's Layout section)")


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules_import_no_torch(module: str) -> None:
    paths = [p for m, p in _modules() if m.split(".")[0] == module]
    assert paths, module
    for path in paths:
        heavy = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            heavy.update(n for n in names if n.split(".")[0] in ("torch", "transformers", "sentence_transformers",
                                                                  "peft", "faiss"))
        assert not heavy, f"{path} imports {sorted(heavy)}"


def test_functions_fit_a_screen() -> None:
    long = []
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 80 lines (split them into named steps): " + "; ".join(long)


def test_modules_stay_small() -> None:
    big = [f"{path.relative_to(PACKAGE)} ({n} lines)" for _, path in _modules()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not big, "modules over 500 lines: " + "; ".join(big)


def test_the_checker_sees_a_lazy_import_against_the_flow(tmp_path: Path) -> None:
    """The import check reads imports inside functions too (the lazy ones are most of them)."""
    path = tmp_path / "metrics.py"
    path.write_text("def f():\n    from .train import finetune\n    return finetune\n")
    assert _internal_imports("metrics", path) == {"train"}
    assert _layer_of("train") > _layer_of("metrics")
