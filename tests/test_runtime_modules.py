"""Every module under cosa_guard/ serves the runtime; training-only code lives in training/.

A module is runtime when the import graph reaches it from an entry: the package itself, the
`cosa-guard` command and its sub-commands, or an import path the docs or README show. Edges are
the static imports of each module (those inside functions included: heavy parts load lazily)
and `importlib.import_module("cosa_guard....")` calls with a literal name. A corpus or trainer
that only `training/`, `benchmarks/` or the tests import is unreached, and fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Public homes named in docs/ without an import line there: the test helpers apps use for their own
# tests (fakes, tiny models, a server in a thread).
PUBLIC = ("cosa_guard.testing",)
_DOC_IMPORT = re.compile(r"^\s*(?:from\s+(cosa_guard[\w.]*)\s+import|import\s+(cosa_guard[\w.]*))", re.M)


def _modules(package: Path) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The cosa_guard modules `name` imports; a module also pulls in its parent packages."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)  # importlib.import_module("cosa_guard.x") and the like
    closed = set()
    for module in found & known:
        parts = module.split(".")
        closed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return closed & known


def _entries(known: set[str], documents: Sequence[Path]) -> set[str]:
    # The CLI loads every public module of cosa_guard/cli by name (pkgutil), so each one is an entry.
    cli = {m for m in known if m.startswith("cosa_guard.cli.") and not m.rpartition(".")[2].startswith("_")}
    documented = set()
    for doc in documents:
        for match in _DOC_IMPORT.finditer(doc.read_text(encoding="utf-8")):
            documented.add(match.group(1) or match.group(2))
    public = {m for m in known if any(m == p or m.startswith(f"{p}.") for p in PUBLIC)}
    return {"cosa_guard", "cosa_guard.__main__", "cosa_guard.cli", *cli, *public, *documented} & known


def unreached(package: Path, documents: Sequence[Path] = ()) -> list[str]:
    """The modules of `package` (a cosa_guard folder) that no entry reaches; `documents`: the docs."""
    modules = _modules(package)
    known = set(modules)
    seen: set[str] = set()
    todo = list(_entries(known, documents))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name, modules[name], known) - seen)
    return sorted(known - seen)


def test_every_cosa_guard_module_is_reached_from_a_runtime_entry() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert unreached(ROOT / "cosa_guard", documents) == []


def test_a_module_only_training_imports_is_caught(tmp_path: Path) -> None:
    package = tmp_path / "cosa_guard"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("from cosa_guard.guard import Guard\n", encoding="utf-8")
    (package / "guard.py").write_text(
        "def f():\n    import importlib\n    return importlib.import_module('cosa_guard.lazy')\n",
        encoding="utf-8",
    )
    (package / "lazy.py").write_text("", encoding="utf-8")
    (package / "cli" / "__init__.py").write_text("", encoding="utf-8")
    (package / "cli" / "run.py").write_text("from cosa_guard import trained\n", encoding="utf-8")
    (package / "trained.py").write_text("", encoding="utf-8")
    (package / "corpus.py").write_text("from cosa_guard import trained\n", encoding="utf-8")
    assert unreached(package) == ["cosa_guard.corpus"]
