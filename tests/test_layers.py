"""Who may import whom: the data layer never imports the session layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.once  # the source tree only

PROJECT = Path(__file__).resolve().parent.parent
#: The data layer: models, services, repositories and the database helpers they use.
DATA_LAYER = [
    "chargepoints.models",
    "chargepoints.services",
    "chargepoints.repositories",
    "chargepoints.db",
    "chargepoints.timestamps",
    "transactions.models",
    "transactions.services",
    "transactions.repositories",
]
SESSION_LAYER = ("chargepoints.session", "chargepoints.ocpp16")
PROJECT_PACKAGES = ("chargepoints", "transactions", "plugins", "levity_site")


def module_path(module: str) -> Path | None:
    base = PROJECT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(module: str) -> set[str]:
    """Every module ``module`` imports, anywhere in it (functions too), relative ones resolved."""
    path = module_path(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None  # only a relative import names no module
                target = node.module
            found.add(target)
            # ``from package import module``
            found.update(
                f"{target}.{alias.name}" for alias in node.names if module_path(f"{target}.{alias.name}")
            )
    return found


def project_imports(module: str) -> dict[str, str]:
    """The project modules ``module`` reaches through imports, each with the module importing it."""
    reached: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for imported in imported_modules(current):
            if (
                imported.split(".")[0] in PROJECT_PACKAGES
                and imported not in reached
                and module_path(imported)
            ):
                reached[imported] = current
                todo.append(imported)
    return reached


@pytest.mark.parametrize("module", DATA_LAYER)
def test_the_data_layer_never_imports_the_session_layer(module):
    reached = project_imports(module)
    offending = {m: via for m, via in reached.items() if m.startswith(SESSION_LAYER)}
    assert offending == {}, f"{module} reaches the session layer: " + ", ".join(
        f"{via} imports {m}" for m, via in offending.items()
    )


def test_the_rule_sees_an_import_inside_a_function():
    # The rule checks what it says: a lazy import of the session layer is found too.
    reached = project_imports("chargepoints.session.base")
    assert "chargepoints.session.registry" in reached
