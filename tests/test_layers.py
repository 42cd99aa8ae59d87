"""The layers import downward only: cli → report/executors → harness → kernels → variants/data → registry/costs.

Each module's imports of kanbench are read from its source (ast). A module may import its own layer or a lower
one; the registry reaches variants and kernels only through ``importlib.import_module`` (its lazy plugin load,
not an import statement), and imports under ``if TYPE_CHECKING:`` are types, not arrows."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [  # lowest first: (module prefix, layer)
    ("kanbench.costs", 0), ("kanbench.registry", 0), ("kanbench", 0),
    ("kanbench.variants", 1), ("kanbench.data", 1),
    ("kanbench.kernels", 2), ("kanbench.peers", 2),
    ("kanbench.harness", 3),
    ("kanbench.report", 4), ("kanbench.executors", 4),
    ("kanbench.cli", 5), ("kanbench.cli_run", 5), ("kanbench.cli_flags", 5), ("kanbench.cli_plan", 5),
]


def layer_of(module: str) -> int:
    matches = [(len(prefix), layer) for prefix, layer in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1]


def modules() -> list[tuple[str, Path]]:
    found = [("kanbench." + ".".join(p.relative_to(ROOT / "kanbench").with_suffix("").parts), p)
             for p in (ROOT / "kanbench").rglob("*.py")]
    found += [("kanbench.kernels." + p.stem, p) for p in (ROOT / "kernels").glob("*.py")]
    return [(name.removesuffix(".__init__"), path) for name, path in found]


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks hold types, not run-time arrows
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n == "kanbench" or n.startswith("kanbench.")]


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_import_from_a_lower_layer_to_a_higher_one(module, path):
    upward = [target for target in imports(path) if layer_of(target) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports higher layers: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from kanbench.report import make_report\n")
    assert layer_of(imports(planted)[0]) > layer_of("kanbench.harness.runner")
