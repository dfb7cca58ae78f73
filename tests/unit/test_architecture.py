"""The structure of issue 12, checked on the real tree under worker/.

Layering (the import-linter contracts in pyproject.toml), no import cycle, short
modules and functions, no writes to os.environ, and an up-to-date picture
(docs/architecture.dot). Each failure lists every violation, not just the first.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def worker_files() -> list[Path]:
    return sorted(WORKER.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --- layering -----------------------------------------------------------------


def test_import_contracts_hold():
    """`lint-imports` passes: layers, core imports only core, pure modules stay pure."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (pip install -e '.[test]')")
        exe = Path(found)
    run = subprocess.run(
        [str(exe), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, (
        "lint-imports: the contracts in pyproject.toml [tool.importlinter] are broken\n"
        + run.stdout
        + run.stderr
    )


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_each_cycle_and_only_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert strongly_connected(edges) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_cycles():
    """No cycle among our modules, counting imports inside functions and TYPE_CHECKING."""
    grimp = pytest.importorskip("grimp", reason="import-linter (grimp) is not installed")
    graph = grimp.build_graph("worker", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = strongly_connected(edges)

    def where(a: str, b: str) -> str:
        lines = sorted(d["line_number"] for d in graph.get_import_details(importer=a, imported=b))
        return f"{a} -> {b} (l.{', l.'.join(map(str, lines))})"

    report = []
    for component in cycles:
        members = set(component)
        inner = [where(a, b) for a in component for b in sorted(edges[a] & members)]
        report.append(
            f"cycle of {len(component)} modules: {', '.join(component)}\n    "
            + "\n    ".join(inner)
        )
    assert not cycles, f"{len(cycles)} import cycle(s) among worker modules:\n" + "\n".join(report)


# --- size -----------------------------------------------------------------------


def test_no_module_over_500_lines():
    # Migrations are not exempt: none is near the limit, and a long one can be split too.
    long = []
    for path in worker_files():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_MODULE_LINES:
            long.append(f"{rel(path)}: {count} lines")
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function and method, nested ones too, with a qualified name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of the body, docstring included (the signature is not counted)."""
    return node.end_lineno - node.body[0].lineno + 1


def test_no_function_over_60_lines():
    long = []
    for path in worker_files():
        for name, node in functions(parse(path)):
            length = function_length(node)
            if length > MAX_FUNCTION_LINES:
                long.append(f"{rel(path)}:{node.lineno}:{name}: {length} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


# --- os.environ -------------------------------------------------------------------

ENVIRON_WRITERS = {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
OS_WRITERS = {"putenv", "unsetenv"}


class EnvironWrites(ast.NodeVisitor):
    """Finds writes to os.environ in one module.

    Writes through a name bound to os.environ itself in the same scope (`env =
    os.environ`, `env = env or os.environ`) count too; a copy (`dict(os.environ)`,
    `os.environ.copy()`, `{**os.environ}`) is a new dict and may be written.
    """

    def __init__(self) -> None:
        self.os_names = {"os"}
        self.environ_names: set[str] = set()
        self.writer_names: set[str] = set()  # putenv/unsetenv imported from os
        self.aliases: list[set[str]] = [set()]
        self.found: list[tuple[int, str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        self.os_names |= {a.asname or a.name for a in node.names if a.name == "os"}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "os":
            for a in node.names:
                if a.name in ("environ", "environb"):
                    self.environ_names.add(a.asname or a.name)
                elif a.name in OS_WRITERS:
                    self.writer_names.add(a.asname or a.name)

    def is_environ(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb"):
            return isinstance(node.value, ast.Name) and node.value.id in self.os_names
        if isinstance(node, ast.Name):
            return node.id in self.environ_names or node.id in self.aliases[-1]
        # `x if c else os.environ`, `x or os.environ`: the result may be os.environ itself
        if isinstance(node, ast.IfExp):
            return self.is_environ(node.body) or self.is_environ(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(self.is_environ(v) for v in node.values)
        return False

    def scoped(self, node: ast.AST) -> None:
        self.aliases.append(set())
        self.generic_visit(node)
        self.aliases.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = scoped

    def targets(self, targets: list[ast.expr], value: ast.AST | None, line: int) -> None:
        for target in targets:
            if isinstance(target, ast.Subscript) and self.is_environ(target.value):
                self.found.append((line, "item assignment"))
            elif isinstance(target, ast.Name) and value is not None:
                if self.is_environ(value):
                    self.aliases[-1].add(target.id)
                else:
                    self.aliases[-1].discard(target.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        self.targets(node.targets, node.value, node.lineno)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        if isinstance(node.target, ast.Subscript) and self.is_environ(node.target.value):
            self.found.append((node.lineno, "item assignment"))
        elif self.is_environ(node.target):
            self.found.append((node.lineno, "augmented assignment (|=)"))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        self.targets([node.target], node.value, node.lineno)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Subscript) and self.is_environ(target.value):
                self.found.append((node.lineno, "del"))

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in ENVIRON_WRITERS and self.is_environ(func.value):
                self.found.append((node.lineno, f".{func.attr}()"))
            elif (
                func.attr in OS_WRITERS
                and isinstance(func.value, ast.Name)
                and func.value.id in self.os_names
            ):
                self.found.append((node.lineno, f"os.{func.attr}()"))
        elif isinstance(func, ast.Name) and func.id in self.writer_names:
            self.found.append((node.lineno, f"{func.id}()"))


def environ_writes(tree: ast.AST) -> list[tuple[int, str]]:
    finder = EnvironWrites()
    finder.visit(tree)
    return sorted(finder.found)


def test_environ_write_finder_sees_each_kind_of_write():
    """The finder itself: each kind of write is seen, a copy and a read are not."""
    source = """
import os
from os import environ as E, putenv
os.environ["A"] = "1"
del os.environ["A"]
os.environ.update(A="1")
os.environ.setdefault("A", "1")
os.environ.pop("A", None)
os.environ.clear()
os.putenv("A", "1")
putenv("A", "1")
E["A"] = "1"
os.environ |= {"A": "1"}
def f(env=None):
    env = env if env is not None else os.environ
    env["A"] = "1"
def g():
    child = dict(os.environ)
    child["A"] = "1"
    copy = os.environ.copy()
    copy.update(A="1")
    merged = {**os.environ, "A": "1"}
    return os.environ.get("A"), child, copy, merged
def h(env):
    env["A"] = "1"
"""
    lines = [line for line, _ in environ_writes(ast.parse(source))]
    assert lines == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16]


def test_no_environ_writes():
    """Settings are read once; a child's environment is a new dict built by the supervisor."""
    writes = []
    for path in worker_files():
        for line, kind in environ_writes(parse(path)):
            writes.append(f"{rel(path)}:{line}: os.environ write ({kind})")
    assert not writes, "writes to os.environ under worker/:\n" + "\n".join(writes)


# --- the picture ------------------------------------------------------------------


def test_architecture_picture_is_up_to_date():
    pytest.importorskip("grimp", reason="import-linter (grimp) is not installed")
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "tools/architecture.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    expected = tool.render_dot(tool.build_graph(), tool.layers())
    committed = tool.DOT_PATH.read_text(encoding="utf-8") if tool.DOT_PATH.exists() else ""
    assert committed == expected, (
        f"{rel(tool.DOT_PATH)} does not match the imports in worker/; "
        f"regenerate it (and the SVG) with: {tool.REGENERATE}"
    )
