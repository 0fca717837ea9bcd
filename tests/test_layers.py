"""Dependencies flow one way: features <- training, features <- serving; never between the two."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "features": {"training", "serving", "simulator", "propensity_cli"},
    "training": {"serving", "simulator", "propensity_cli"},
    "serving": {"training", "simulator", "propensity_cli"},
    # The synthetic world writes for the contract; it never reaches into what ships above it.
    "simulator": {"training", "serving", "propensity_cli"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_imports():
    assert imported_packages(ROOT / "propensity_cli.py") >= {"features", "simulator", "typer"}


def test_the_check_sees_imports_inside_functions(tmp_path):
    """Imports in command bodies count: that is where the heavy (and the forbidden) ones hide."""
    module = tmp_path / "late.py"
    module.write_text("def run():\n    from simulator.oracle import OracleReference\n")
    assert imported_packages(module) == {"simulator"}


def test_serving_and_training_agree_on_task_and_registry_names():
    """Serving may not import training, so it repeats the names; this pins them together."""
    from serving import registry
    from training import tasks

    assert registry.TASKS == tasks.TASKS
    assert registry.CHAMPION == tasks.CHAMPION
    assert [registry.registered_name(t) for t in registry.TASKS] == [
        tasks.registered_name(t) for t in tasks.TASKS
    ]


def test_serving_uses_every_model_method_the_pyfunc_provides():
    """The numpy fast path serving requires exists on the logged model class."""
    import ast

    from serving.registry import FAST_PATH

    tree = ast.parse((ROOT / "training" / "pyfunc_model.py").read_text())
    methods = {n.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
               and c.name == "PropensityModel" for n in c.body if isinstance(n, ast.FunctionDef)}
    assert set(FAST_PATH) <= methods
