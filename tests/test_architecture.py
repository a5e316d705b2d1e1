"""The shape of the code, read from its source (no database, no broker): which package may
import which, no import cycles (function-level imports count), named SQL that exists and is
used, no SQL written inline in Python, and the guard that keeps tests/unit database-free."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from shared.db import Queries

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "services", "devstack", "opsctl")
"""The product's packages: the import graph spans them."""
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/__init__.py"))

KNOWN_CYCLES: set[frozenset[str]] = set()  # the list may only shrink (console i18n: fixed)
"""Import cycles found before this test existed: a cycle not here fails, and so does an entry
here that is no longer a cycle (take it out)."""

KNOWN_PRIVATE_IMPORTS: set[str] = set()  # the list may only shrink (plans.timers: fixed)
"""Modules that imported another module's private (`_name`) names when this test was written."""

KNOWN_INLINE_SQL: set[str] = set()  # the list may only shrink (console sessions: fixed)
"""Modules that wrote SQL inline when this test was written: one not here fails, and so does
an entry here whose module no longer does (take it out)."""

GENERATES_SQL = {"shared.outbox"}
"""Modules whose Python makes SQL for .sql files to include: the outbox, from the events'
models (`insert_events_sql`), so that events built in SQL have one source."""

KNOWN_UNUSED_QUERIES: set[str] = set()
"""`file.sql:name` of named queries nothing used when this test was written."""


# --- reading the source -----------------------------------------------------------------


def module_name(path: Path) -> str:
    """`shared/events/base.py` -> `shared.events.base`; a package's `__init__` -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def product_modules() -> dict[str, Path]:
    """Every module of the product's packages, by name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@cache
def syntax(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_from(name: str, node: ast.ImportFrom, *, is_package: bool = False) -> str:
    """The absolute module of a `from ... import` in module `name` (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(name: str, path: Path) -> set[str]:
    """The product modules `name` imports anywhere in its source: at the top, in functions,
    under `if TYPE_CHECKING:`."""
    return imports_in(syntax(path), name, is_package=path.name == "__init__.py")


def imports_in(tree: ast.Module, name: str, *, is_package: bool = False) -> set[str]:
    """The product modules a module's syntax tree imports. `from a import b` counts as
    importing `a.b` when that is a module, else `a`; `import a.b.c` as its longest prefix
    that is a product module."""
    known = product_modules()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(next(([".".join(parts[:i])] for i in range(len(parts), 0, -1)
                                   if ".".join(parts[:i]) in known), []))
        elif isinstance(node, ast.ImportFrom):
            base = imported_from(name, node, is_package=is_package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.update([full] if full in known else [base] if base in known else [])
    found.discard(name)
    return found


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the product modules it imports."""
    return {name: frozenset(imports(name, path)) for name, path in product_modules().items()}


def cycles(graph: dict[str, frozenset[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next((w for w in edges if w not in index or w in on_stack), None)
            if nxt is not None:
                if nxt in index:
                    low[node] = min(low[node], index[nxt])
                else:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


# --- imports ----------------------------------------------------------------------------


def test_the_cycle_finder_finds_cycles_through_any_number_of_modules():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a", "d"}),
             "d": frozenset(), "e": frozenset({"f"}), "f": frozenset({"e"}), "g": frozenset({"g"})}
    assert cycles(graph) == {frozenset({"a", "b", "c"}), frozenset({"e", "f"})}


def test_imports_are_read_anywhere_in_a_module_relative_ones_included():
    tree = ast.parse("import shared.events.base\nfrom . import booking\nimport json\n"
                     "def f():\n    from ..outbox import enqueue\n"
                     "if True:\n    from services.booking import store\n")
    assert imports_in(tree, "shared.events.x") == {
        "shared.events.base", "shared.events.booking", "shared.outbox", "services.booking.store"}
    assert imports_in(ast.parse("from . import base"), "shared.events", is_package=True) == {
        "shared.events.base"}


def test_the_import_graph_has_no_cycles_counting_function_level_imports():
    found = cycles(import_graph())
    new = sorted(sorted(c) for c in found - KNOWN_CYCLES)
    assert not new, f"import cycles: {new}"
    gone = sorted(sorted(c) for c in KNOWN_CYCLES - found)
    assert not gone, f"no longer cycles, take them out of KNOWN_CYCLES: {gone}"


def test_shared_never_imports_services_or_devstack():
    wrong = {name: sorted(d for d in deps if d.startswith(("services.", "devstack.")))
             for name, deps in import_graph().items() if name.startswith("shared")}
    assert {n: d for n, d in wrong.items() if d} == {}


def test_the_services_never_import_dev_only_code():
    wrong = {name: sorted(d for d in deps if d.startswith(("devstack.", "opsctl.")))
             for name, deps in import_graph().items() if name.startswith("services")}
    assert {n: d for n, d in wrong.items() if d} == {}


def test_services_never_import_each_other():
    crossing = {}
    for name, deps in import_graph().items():
        if name.startswith("services."):
            own = name.split(".")[1]
            other = sorted(d for d in deps if d.startswith("services.") and d.split(".")[1] != own)
            if other:
                crossing[name] = other
    assert crossing == {}
    assert {"booking", "console", "notifier", "plans"} <= set(SERVICES)


def test_the_product_never_imports_the_tests_or_the_benchmarks():
    bad = {p: sorted(m for m in _modules_named(p) if m.split(".")[0] in ("tests", "bench"))
           for p in product_modules().values()}
    assert {str(p.relative_to(ROOT)): m for p, m in bad.items() if m} == {}


def private_imports(tree: ast.Module) -> list[str]:
    """`module._name` of the private names a module imports from another."""
    return [f"{node.module}.{alias.name}" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]


def test_no_module_imports_another_modules_private_names():
    found = {name: private_imports(syntax(path)) for name, path in product_modules().items()}
    offenders = {name for name, names in found.items() if names}
    assert {n: found[n] for n in sorted(offenders - KNOWN_PRIVATE_IMPORTS)} == {}
    assert sorted(KNOWN_PRIVATE_IMPORTS - offenders) == [], "fixed: take them out of the list"
    assert private_imports(ast.parse("from a import _b, c\nfrom __future__ import annotations")) \
        == ["a._b"]


def _modules_named(path: Path) -> Iterator[str]:
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module


# --- named SQL --------------------------------------------------------------------------


def sql_files() -> list[Path]:
    """Every file of named queries (migrations are not)."""
    return sorted(p for pkg in ("shared", "services") for p in (ROOT / pkg).rglob("*.sql")
                  if "migrations" not in p.parts)


def importable(name: str) -> ModuleType | None:
    """The product module, imported (entry points `__main__` are not: they run)."""
    if name not in product_modules() or name.endswith("__main__"):
        return None
    return importlib.import_module(name)


@cache
def loaded_queries() -> dict[Path, Queries]:
    """The `Queries` objects the product's modules load, by file."""
    found: dict[Path, Queries] = {}
    for name in product_modules():
        module = importable(name)
        for value in vars(module).values() if module else ():
            if isinstance(value, Queries):
                found[value.path.resolve()] = value
    return found


@dataclass
class QueryUse:
    """Where Python reads a named query (`Q.name`, `module.Q.name`, `getattr(Q, "name")`)."""

    where: str
    queries: Queries
    name: str


@dataclass
class Scope:
    """What names in one source file stand for: `Queries` objects and product modules."""

    queries: dict[str, Queries] = field(default_factory=dict)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def resolve(self, node: ast.expr) -> object:
        if isinstance(node, ast.Name):
            return self.queries.get(node.id) or self.modules.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            if isinstance(owner, ModuleType):
                return getattr(owner, node.attr, None)
        return None


def scope_of(tree: ast.Module, name: str | None) -> Scope:
    """The names a file binds to queries or modules: its own globals when it is a product
    module (`name`), and what any of its imports (at any level) bring from product modules."""
    scope = Scope()
    module = importable(name) if name else None
    for key, value in vars(module).items() if module else ():
        if isinstance(value, Queries):
            scope.queries[key] = value
    is_package = bool(module and module.__name__ == getattr(module, "__package__", None))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = importable(imported_from(name or "", node, is_package=is_package))
            for alias in node.names if source else ():
                value = getattr(source, alias.name, None) or importable(f"{source.__name__}.{alias.name}")
                if isinstance(value, Queries):
                    scope.queries[alias.asname or alias.name] = value
                elif isinstance(value, ModuleType):
                    scope.modules[alias.asname or alias.name] = value
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and importable(alias.name):
                    scope.modules[alias.asname] = importlib.import_module(alias.name)
    return scope


def query_uses(tree: ast.Module, where: str, name: str | None = None) -> Iterator[QueryUse]:
    """Where a file's source reads named queries (`where`: its path, for messages)."""
    scope = scope_of(tree, name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = scope.resolve(node.value)
            if isinstance(owner, Queries) and node.attr not in ("names", "path"):
                yield QueryUse(f"{where}:{node.lineno}", owner, node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "getattr" and len(node.args) >= 2:
            owner = scope.resolve(node.args[0])
            if isinstance(owner, Queries) and isinstance(node.args[1], ast.Constant):
                yield QueryUse(f"{where}:{node.lineno}", owner, str(node.args[1].value))


def file_query_uses(path: Path, name: str | None = None) -> list[QueryUse]:
    return list(query_uses(syntax(path), str(path.relative_to(ROOT)), name))


def python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


@cache
def product_query_uses() -> list[QueryUse]:
    """Query uses in the product and the benchmarks (the tests' uses do not make a query used)."""
    files = [(p, module_name(p)) for p in python_files(*PACKAGES)] + \
            [(p, None) for p in python_files("bench")]
    return [use for path, name in files for use in file_query_uses(path, name)]


def test_every_file_of_named_queries_is_loaded_by_the_code():
    assert sorted(str(p.relative_to(ROOT)) for p in sql_files()
                  if p.resolve() not in loaded_queries()) == []


def test_every_named_query_the_code_reads_exists_in_the_file_its_queries_load():
    uses = product_query_uses() + [u for p in python_files("tests") for u in file_query_uses(p)]
    missing = [f"{u.where}: {u.queries.path.name} has no query {u.name!r}" for u in uses
               if u.name not in u.queries.names()]
    assert missing == []


def test_every_named_query_is_used():
    used = {(u.queries.path.resolve(), u.name) for u in product_query_uses()}
    unused = {f"{path.relative_to(ROOT)}:{name}" for path, queries in loaded_queries().items()
              for name in queries.names() if (path, name) not in used}
    assert sorted(unused - KNOWN_UNUSED_QUERIES) == []
    assert sorted(KNOWN_UNUSED_QUERIES - unused) == [], "used now: take them out of the list"


def test_named_queries_are_found_through_aliases_modules_and_function_level_imports():
    from shared import outbox

    tree = ast.parse("import shared.outbox as ob\nfrom shared.outbox import Q as OUTBOX\n"
                     "from shared import outbox\n"
                     "def f():\n    from shared.outbox import Q\n    return Q.mark_sent, Q.names()\n"
                     "x = OUTBOX.claim_unsent, ob.Q.insert_rows, outbox.Q.record_failure\n"
                     "y = getattr(OUTBOX, 'take_relay_lock'), OUTBOX.nope, json.dumps\n")
    uses = [(u.where, u.queries is outbox.Q, u.name) for u in query_uses(tree, "m.py")]
    assert sorted(uses) == [("m.py:6", True, "mark_sent"), ("m.py:7", True, "claim_unsent"),
                            ("m.py:7", True, "insert_rows"), ("m.py:7", True, "record_failure"),
                            ("m.py:8", True, "nope"), ("m.py:8", True, "take_relay_lock")]


# --- SQL in Python ----------------------------------------------------------------------

_SQL = re.compile(r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS"
                  r"|CREATE\s|ALTER\s|DROP\s|TRUNCATE\s|COPY\s|LOCK\s|LISTEN\s|NOTIFY\s)")
"""The start of a SQL statement (in capitals, as the code writes SQL)."""


def inline_sql(path: Path) -> list[int]:
    """Lines of string literals (f-strings too) in a module that are SQL statements."""
    lines: set[int] = set()
    for node in ast.walk(syntax(path)):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and \
                isinstance(node.values[0], ast.Constant):
            text = str(node.values[0].value)
        if text and _SQL.match(text):
            lines.add(node.lineno)
    return sorted(lines)


def test_sql_is_written_in_sql_files_not_in_python():
    found = {name for name, path in product_modules().items()
             if name.startswith(("shared", "services")) and name not in GENERATES_SQL
             and inline_sql(path)}
    assert sorted(found - KNOWN_INLINE_SQL) == [], "move this SQL into the module's .sql file"
    assert sorted(KNOWN_INLINE_SQL - found) == [], "no inline SQL left: take them out of the list"


def test_sql_in_a_python_string_is_found_and_prose_is_not(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('A = "SELECT 1"\nB = f"UPDATE t SET a = {1}"\nC = "Select a slot."\n'
                    '"""With us as before."""\nD = "WITH x AS (SELECT 1) SELECT 2"\n')
    assert inline_sql(path) == [1, 2, 5]


# --- tests/unit stays free of infrastructure --------------------------------------------


def test_a_unit_test_asking_for_the_database_fails_before_starting_it(tmp_path):
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n"
                                         "asyncio_default_fixture_loop_scope = session\n")
    (tmp_path / "tests" / "unit" / "test_rules.py").write_text(
        "def test_needs_nothing():\n    pass\n\n"
        "def test_asks_for_a_connection(db):\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/unit/test_rules.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed, 1 error" in run.stdout
    assert "asks for db, infra: unit tests run without PostgreSQL or the broker" in run.stdout


@pytest.mark.parametrize("where, fixtures, asked", [
    ("unit/test_x.py", ["tmp_path", "spine", "infra", "namespace"], ["infra", "spine"]),
    ("unit/test_x.py", ["tmp_path", "monkeypatch"], []),
    ("test_x.py", ["db", "infra"], []),
])
def test_only_unit_tests_are_held_to_needing_no_infrastructure(where, fixtures, asked):
    from tests.conftest import infrastructure_asked_by_unit_test

    assert infrastructure_asked_by_unit_test(ROOT / "tests" / where, fixtures) == asked
