"""The dependency rule (DESIGN.md): ``api -> projections -> domain``, ``api -> domain``.

``domain/`` is the pure model: no web framework, database driver, NATS, HTTP client,
server, logging setup, and no configuration read from the environment.
``projections/`` never reaches back into ``api/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_DOMAIN = (
    "litestar",
    "psycopg",
    "psycopg_pool",
    "nats",
    "uvicorn",
    "httpx",
    "sqlite3",
    "logging.config",
)
ENVIRONMENT_READERS = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})


def python_files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module a file imports, relative imports resolved, ``from a import b`` as a.b too."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def domain_violations(
    source: str, filename: str = "domain/x.py", module: str = "domain.x"
) -> list[str]:
    tree = ast.parse(source, filename)
    problems = [
        f"{filename}:{line}: imports {name}"
        for line, name in imported_modules(tree, module, filename.endswith("__init__.py"))
        if any(within(name, f) for f in FORBIDDEN_IN_DOMAIN)
    ]
    # Names bound to the os module (import os, import os as o) and environment reads via them.
    os_names = {
        alias.asname or "os"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os" or (alias.asname is None and alias.name.startswith("os."))
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            problems += [
                f"{filename}:{node.lineno}: imports os.{a.name}"
                for a in node.names
                if a.name in ENVIRONMENT_READERS or a.name == "*"
            ]
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_READERS
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            problems.append(f"{filename}:{node.lineno}: reads os.{node.attr}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"basicConfig", "dictConfig", "fileConfig"}
            and isinstance(node.value, ast.Name)
            and node.value.id in {"logging", "config"}
        ):
            problems.append(f"{filename}:{node.lineno}: configures logging ({node.attr})")
    return problems


def test_domain_imports_no_adapters_and_reads_no_environment() -> None:
    problems: list[str] = []
    for path in python_files("domain"):
        rel = str(path.relative_to(REPO))
        problems += domain_violations(path.read_text(), rel, module_of(path))
    assert not problems, "domain/ must stay pure:\n" + "\n".join(problems)


def test_projections_import_nothing_from_api() -> None:
    problems = []
    for path in python_files("projections"):
        tree = ast.parse(path.read_text(), str(path))
        module = module_of(path)
        for line, name in imported_modules(tree, module, path.name == "__init__.py"):
            if within(name, "api"):
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not problems, "projections/ may not depend on api/:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import psycopg",
        "from psycopg_pool import ConnectionPool",
        "import litestar.exceptions as le",
        "from nats.js import api",
        "import uvicorn",
        "import httpx",
        "import sqlite3",
        "import logging.config",
        "from logging import config",
        "import os\nX = os.environ['A']",
        "import os as o\nX = o.getenv('A')",
        "import os.path\nX = os.environ.get('A')",
        "from os import environ",
        "from os import getenv as g",
        "import importlib\nimportlib.import_module('psycopg')",
        "import logging\nlogging.basicConfig()",
    ],
)
def test_the_checker_catches_each_kind_of_violation(source: str) -> None:
    assert domain_violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import logging\nlog = logging.getLogger(__name__)",
        "import os.path\nP = os.path.join('a', 'b')",
        "from eventsourcing.domain import Aggregate",
        "import msgspec",
        "from domain.errors import NotFound",
        "NATS = 'nats'",
    ],
)
def test_the_checker_allows_what_the_domain_may_use(source: str) -> None:
    assert domain_violations(source) == [], source


def test_immutable_aggregates_never_change() -> None:
    """Aggregates marked IMMUTABLE are cached across commands and processes: they must
    have their creation event only (no method records a second event)."""
    import inspect

    from domain.batches import BatchNumber, CodeBatch
    from domain.catalog import Product

    for cls in (Product, CodeBatch, BatchNumber):
        assert cls.IMMUTABLE
        source = inspect.getsource(cls)
        assert "trigger_event" not in source, f"{cls.__name__} records changes"


def test_the_command_line_loads_no_web_framework_until_a_command_needs_it() -> None:
    """``siyu project`` and ``siyu replay`` start once per worker process; the HTTP layer
    (litestar) and the command handlers were most of their start-up."""
    import subprocess
    import sys

    probe = (
        "import sys, api.cli; api.cli.build_parser().parse_args(['project', '--once']); "
        "print(sorted(m for m in ('litestar', 'uvicorn', 'domain.handlers.orders') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
