"""``common`` renamed ``scripts`` in vendored Python and in configs, and the checks that none is left.

Python: absolute imports of ``common`` (and the name ``import common.x`` binds), module paths in strings
and references in docstrings and comments; relative imports need nothing. Configs: ``common`` as a word in
expressions (``$import common``, ``$common.data.f(...)``), as a dotted reference elsewhere (``_target_``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Mapping

from . import PACKAGE, VENDORED, PackError

# ``common.x`` (a reference to a module or a name in one) and ``common`` as a whole word (an expression)
_DOTTED_REF = re.compile(rf"(?<![\w.]){PACKAGE}(?=\.[A-Za-z_])")
_WORD_REF = re.compile(rf"(?<![\w.]){PACKAGE}(?!\w)")
# in docstrings and comments also ``common.<package>`` and ``import common``
_TEXT_REF = re.compile(rf"(?<![\w.]){PACKAGE}(?=\.[A-Za-z_<])|(?<=import ){PACKAGE}(?!\w)")


def _line_offsets(source: str) -> list[int]:
    offsets, total = [], 0
    for line in source.splitlines(keepends=True):
        offsets.append(total)
        total += len(line)
    offsets.append(total)
    return offsets


def _text_tokens(source: str) -> Iterable[tokenize.TokenInfo]:
    """String (and f-string part) and comment tokens of ``source``."""
    kinds = {"STRING", "COMMENT", "FSTRING_MIDDLE"}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if tokenize.tok_name[token.type] in kinds:
            yield token


def rewrite_python(source: str, filename: str) -> str:
    """``source`` with its absolute imports of ``common`` (and the names they bind), the module paths in
    its strings and the references in its docstrings and comments renamed to ``scripts``."""
    tree = ast.parse(source, filename=filename)
    lines = source.splitlines(keepends=True)
    starts = _line_offsets(source)

    def char_offset(lineno: int, col_bytes: int) -> int:  # ast columns count UTF-8 bytes
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col_bytes].decode("utf-8"))

    positions: set[int] = set()
    binds_name = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    positions.add(char_offset(alias.lineno, alias.col_offset))
                    binds_name |= alias.asname is None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE or node.module.startswith(PACKAGE + "."):
                match = re.compile(r"from\s+").match(source, char_offset(node.lineno, node.col_offset))
                if match is None:
                    raise PackError(f"{filename}:{node.lineno}: cannot find the module name of this import")
                positions.add(match.end())
    if binds_name:  # `import common.x` binds the name `common`, used as common.x.y below
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == PACKAGE:
                positions.add(char_offset(node.lineno, node.col_offset))
    for token in _text_tokens(source):
        start = starts[token.start[0] - 1] + token.start[1]
        positions.update(start + m.start() for m in _TEXT_REF.finditer(token.string))

    out, last = [], 0
    for pos in sorted(positions):
        if source[pos : pos + len(PACKAGE)] != PACKAGE:
            line = source.count("\n", 0, pos) + 1
            raise PackError(f"{filename}:{line}: expected {PACKAGE!r} at a reference to rewrite")
        out += [source[last:pos], VENDORED]
        last = pos + len(PACKAGE)
    out.append(source[last:])
    return "".join(out)


def python_leftovers(source: str, filename: str) -> list[str]:
    """References to ``common`` left in (rewritten) Python source, one line each."""
    problems = []
    try:
        tree = ast.parse(source, filename=filename)
        compile(tree, filename, "exec")
    except SyntaxError as err:
        return [f"{filename}: not valid Python after rewriting: {err}"]
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and node.value == PACKAGE:
            problems.append(f"{filename}:{node.lineno}: the string {PACKAGE!r} (a module name?)")
        if any(n == PACKAGE or n.startswith(PACKAGE + ".") for n in names):
            problems.append(f"{filename}:{node.lineno}: imports {PACKAGE}")
    for token in _text_tokens(source):
        if _DOTTED_REF.search(token.string):
            problems.append(f"{filename}:{token.start[0]}: names {PACKAGE}.… in {token.string[:60]!r}")
    return problems


def rewrite_config(value: object) -> object:
    """A parsed config with ``common`` renamed to ``scripts``: as a word in expressions (``$import common``,
    ``$common.data.f(...)``), as a dotted reference elsewhere (``_target_``)."""
    if isinstance(value, str):
        return (_WORD_REF if value.startswith("$") else _DOTTED_REF).sub(VENDORED, value)
    if isinstance(value, Mapping):
        return {rewrite_config(k): rewrite_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_config(v) for v in value]
    return value


def config_leftovers(value: object, where: str = "") -> list[str]:
    """``#``-joined config ids whose strings still refer to ``common``."""
    if isinstance(value, str):
        pattern = _WORD_REF if value.startswith("$") else _DOTTED_REF
        return [f"{where or '<root>'}: {value[:80]!r}"] if pattern.search(value) else []
    found = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += config_leftovers(key, where) + config_leftovers(item, f"{where}#{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += config_leftovers(item, f"{where}#{i}")
    return found


def text_refers_to_package(text: str) -> bool:
    """Whether a file that is not rewritten (a config other than JSON) refers to ``common``."""
    return bool(_DOTTED_REF.search(text) or re.search(rf"\bimport\s+{PACKAGE}\b", text))
