"""Which modules of ``common`` a bundle uses: its configs' references, closed over imports.

An edge is every import statement (those inside functions too), a string constant that names a module
(``"common.data.brats"`` in the data registry, ``"common.data.x:function"``) and a submodule a lazy (PEP 562)
package may load. The scan also collects the third-party packages the modules import, apart from those
imported under ``try``/``except ImportError`` (optional ones).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import PACKAGE, REPO, PackError

# ``common.x.y`` anywhere in a config string
_DOTTED_NAME = re.compile(rf"(?<![\w.]){PACKAGE}(?:\.[A-Za-z_]\w*)*")
# a whole string constant naming a module of common, optionally with ``:function``
_MODULE_STRING = re.compile(rf"{PACKAGE}(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?")


def module_files(package_dir: Path = REPO / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package under ``package_dir``."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _owner(dotted: str, modules: Mapping[str, Path]) -> str | None:
    """The longest module in ``modules`` that ``dotted`` (a module, or a name in one) lies in."""
    while dotted:
        if dotted in modules:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def _is_lazy_package(tree: ast.Module) -> bool:
    """A package ``__init__`` with a module-level ``__getattr__`` (PEP 562) that may import any submodule."""
    return any(isinstance(node, ast.FunctionDef) and node.name == "__getattr__" for node in tree.body)


def _optional_import_nodes(tree: ast.AST) -> set[int]:
    """ids of import statements inside ``try`` blocks that catch ImportError (optional dependencies)."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught.update(t.id for t in types if isinstance(t, ast.Name))
        if caught & {"ImportError", "ModuleNotFoundError", "Exception"}:
            for statement in node.body:
                optional.update(
                    id(n) for n in ast.walk(statement) if isinstance(n, (ast.Import, ast.ImportFrom))
                )
    return optional


@dataclass
class ModuleScan:
    """What one module of ``common`` depends on."""

    modules: set[str] = field(default_factory=set)  # modules of common
    third_party: set[str] = field(default_factory=set)  # top-level import names outside common and stdlib
    optional: set[str] = field(default_factory=set)  # third-party names imported under try/except ImportError


@dataclass
class ScanBuilder:
    """Sorts what the import statements and strings of one module point to into a :class:`ModuleScan`."""

    name: str
    path: Path
    modules: Mapping[str, Path]
    optional_nodes: set[int]
    result: ModuleScan = field(default_factory=ModuleScan)

    def internal(self, dotted: str, node: ast.AST) -> None:
        """A module of ``common``, or a name in one; anything else there is an error."""
        owner = _owner(dotted, self.modules)
        if owner is None:
            raise PackError(f"{self.path}:{node.lineno}: {dotted} is not a module of {PACKAGE}")
        self.result.modules.add(owner)

    def absolute(self, dotted: str, node: ast.AST) -> None:
        """An absolute import: of ``common``, of the standard library (ignored) or of a third party."""
        top = dotted.partition(".")[0]
        if top == PACKAGE:
            self.internal(dotted, node)
        elif top and top not in sys.stdlib_module_names:
            (self.result.optional if id(node) in self.optional_nodes else self.result.third_party).add(top)


def scan_module(name: str, path: Path, modules: Mapping[str, Path]) -> ModuleScan:
    """The modules of ``common`` and the third-party packages that module ``name`` may import."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise PackError(f"{path}: cannot parse: {err}") from err
    scan = ScanBuilder(name, path, modules, _optional_import_nodes(tree))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                scan.absolute(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
                for alias in node.names:
                    scan.internal(f"{base}.{alias.name}", node)
            elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                for alias in node.names:
                    scan.internal(f"{node.module}.{alias.name}", node)
            elif node.module != "__future__":
                scan.absolute(node.module or "", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _MODULE_STRING.fullmatch(node.value):  # "common.data.brats", "common.data.x:function"
                scan.internal(node.value.partition(":")[0], node)
            elif is_package and f"{name}.{node.value}" in modules and _is_lazy_package(tree):
                # a lazy package's submodule ("brats", "phantoms.brats")
                scan.internal(f"{name}.{node.value}", node)
    return scan.result


def config_references(value: object) -> set[str]:
    """Every dotted ``common...`` name in the strings (keys too) of a parsed config."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.group(0) for m in _DOTTED_NAME.finditer(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= config_references(key) | config_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= config_references(item)
    return found


def closure(roots: Iterable[str], modules: Mapping[str, Path]) -> tuple[set[str], ModuleScan]:
    """The modules ``roots`` need (parent packages, imports, named modules, transitively), and the
    third-party packages those import."""
    needed: set[str] = set()
    imports = ModuleScan()  # of every needed module; its `modules` stays empty
    todo = []
    for root in roots:
        owner = _owner(root, modules)
        if owner is None:
            raise PackError(f"{root} is not a module of {PACKAGE}")
        todo.append(owner)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)  # importing a.b.c runs a/__init__ and a/b/__init__
        scan = scan_module(name, modules[name], modules)
        imports.third_party |= scan.third_party
        imports.optional |= scan.optional
        todo.extend(scan.modules - needed)
    imports.optional -= imports.third_party  # optional in one module, required in another: required
    return needed, imports
