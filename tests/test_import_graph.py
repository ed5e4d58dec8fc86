"""The import graph of ``common``: no cycles, adapters never import phantom writers, light packages.

Every module of ``common`` is parsed with ``ast`` and every import statement counts, including those
inside functions, so an import moved into a function to dodge a cycle is still an edge of the graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "common"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module and package of ``common``."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_names(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(dotted target, line, inside a function)`` of every import in the file (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            found += [(f"{base}.{alias.name}", node.lineno, id(node) in in_function) for alias in node.names]
    return found


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest module of ``common`` that ``target`` (a module or a name in one) lies in."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ``common`` it imports (no self-edges)."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in _imported_names(name, path):
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                graph[name].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_is_built_from_all_imports(tmp_path: Path) -> None:
    """The parser sees absolute, relative and function-level imports (else the cycle test proves nothing)."""
    graph = import_graph()
    assert "common.data.splits" in graph["common.data.datalist"]
    assert "common.data.brats" in graph["common.data.phantoms.brats"]
    assert "common.data" in graph["common"]  # ``from . import data``
    assert "common.labels" in graph["common.data.brats"]
    sample = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(sample) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    module = tmp_path / "mod.py"
    module.write_text("import os\nfrom .sib import x\n\ndef f():\n    from ..up import y\n")
    assert _imported_names("common.pkg.mod", module) == [
        ("os", 1, False),
        ("common.pkg.sib.x", 2, False),
        ("common.up.y", 5, True),
    ]


def test_no_import_cycle_in_common() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_phantom_writers_depend_on_adapters_never_the_reverse() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("common.data") and not name.startswith("common.data.phantoms"):
            assert not {t for t in targets if t.startswith("common.data.phantoms")}, name


def test_no_function_level_imports_in_common_data() -> None:
    """Imports inside functions are how cycles get hidden; the data package has none."""
    modules = module_files()
    inside = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for name, path in modules.items()
        if name.startswith("common.data")
        for target, line, in_function in _imported_names(name, path)
        if in_function
    ]
    assert not inside, inside


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("statement", ["import common.metrics", "import common"])
def test_importing_common_needs_no_h5py(statement: str) -> None:
    """With h5py unavailable, ``common`` and its metrics import, and the Figshare reader stays unloaded.

    MONAI itself imports h5py when it is installed (``monai.apps.reconstruction.fastmri_reader`` does an
    ``optional_import``), so the check blocks h5py rather than looking for it after a plain import.
    """
    result = _run(
        f"""
        import sys

        class NoH5py:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "h5py":
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
                return None

        sys.meta_path.insert(0, NoH5py())
        {statement}
        import common.data.brats, common.data.datalist, common.data.inference_inputs
        unwanted = ("h5py", "common.data.figshare_mat")
        loaded = sorted(m for m in sys.modules if m in unwanted or m.startswith("h5py."))
        print(loaded)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_plain_import_of_common_metrics_does_not_load_the_figshare_reader() -> None:
    result = _run(
        """
        import sys
        import common.metrics
        print("common.data.figshare_mat" in sys.modules, "common.data.figshare" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False False"
