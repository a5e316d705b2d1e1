"""The code's form, checked with the rest of the suite: ruff (the rules in pyproject.toml)
and mypy (strict on shared/ and services/) find nothing, and no function of shared/ or
services/ runs longer than about 40 lines unless the list below says why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 40
"""A function's own lines at most: its signature and body, less its docstring and the
functions and classes defined inside it (they are measured on their own)."""

LONG_FUNCTIONS: dict[str, str] = {}
"""`path:function` -> why it is longer than MAX_LINES (a reason a reader would accept)."""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_finds_nothing():
    checked = run("ruff", "check", "--output-format", "concise", "--no-cache", ".")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mypy_strict_finds_nothing_in_shared_and_services():
    checked = run("mypy")  # files and flags: [tool.mypy] in pyproject.toml
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found" in checked.stdout


def own_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The lines of a function, less its docstring and what is defined inside it."""
    lines = set(range(fn.lineno, (fn.end_lineno or fn.lineno) + 1))
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        lines -= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef
                                         | ast.ClassDef):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines -= set(range(start, (node.end_lineno or node.lineno) + 1))
    return len(lines)


def long_functions(tree: ast.Module, where: str) -> dict[str, int]:
    """`where:function` -> own lines, of the functions longer than MAX_LINES."""
    return {f"{where}:{node.name}": own_lines(node) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and own_lines(node) > MAX_LINES}


def test_no_function_runs_longer_than_about_40_lines_without_a_reason():
    found: dict[str, int] = {}
    for path in sorted(p for folder in ("shared", "services") for p in (ROOT / folder).rglob("*.py")):
        found |= long_functions(ast.parse(path.read_text()), str(path.relative_to(ROOT)))
    assert {k: v for k, v in found.items() if k not in LONG_FUNCTIONS} == {}, \
        "split them, or say in LONG_FUNCTIONS why they are better whole"
    assert sorted(set(LONG_FUNCTIONS) - set(found)) == [], "short now: take them out of the list"


def test_a_functions_length_leaves_out_its_docstring_and_what_it_defines_inside():
    body = "\n".join(f"    x{i} = {i}" for i in range(39))
    inner = "\n".join(f"        y{i} = {i}" for i in range(39))
    source = (f'def f():\n    """Doc\n    string."""\n{body}\n'
              f"    def g():\n{inner}\n        return 1\n    return g\n")
    tree = ast.parse(source)
    f, g = tree.body[0], tree.body[0].body[-2]
    assert (own_lines(f), own_lines(g)) == (41, 41)
    assert long_functions(tree, "m.py") == {"m.py:f": 41, "m.py:g": 41}
    assert long_functions(ast.parse("def h():\n    return 1\n"), "m.py") == {}
