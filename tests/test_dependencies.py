"""The declared runtime dependencies are exactly what the package imports."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "crdtsync").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"crdtsync"}


def test_every_runtime_dependency_is_imported() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
        for d in project["dependencies"]
    }
    optional = {
        d.split(">")[0].split("=")[0].split("[")[0].strip().lower()
        for group in project.get("optional-dependencies", {}).values()
        for d in group
    }
    imported = imported_top_level_modules()
    assert declared <= imported, f"declared but never imported: {declared - imported}"
    assert imported <= declared | optional, f"imported but not declared: {imported - declared}"
