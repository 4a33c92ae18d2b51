"""The package's structure: imports run one way, modules stay a size a maintainer can read.

Every ``hw2`` module's imports of other ``hw2`` modules -- at the top and inside
functions alike -- form a graph that must have no cycle, and follow the layers
below: a module imports only from its own layer or the ones before it. A module
that became a package keeps its public names.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hw2"

#: The layers, from the bottom up; a module may import from its layer and below.
LAYERS = [
    ["hw2"],  # only __version__; it imports nothing
    ["hw2._checks", "hw2._figures", "hw2._io", "hw2._progress", "hw2.stats"],
    ["hw2.layers", "hw2.grad_check", "hw2.grad_compare", "hw2.optimizers",
     "hw2.checkpoint"],
    ["hw2.training"],
    ["hw2.data"],
    ["hw2.cnn"],
    ["hw2.notebook"],
    ["hw2.experiments"],
    ["hw2.plot", "hw2.report", "hw2.answers"],
]
#: The most lines a module may have (the issue's "about 500").
MAX_LINES = 520


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The hw2 modules ``path`` imports (``from hw2 import x`` counts as hw2.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # from hw2 import _checks: the module hw2._checks; from hw2.cnn import
            # ConvClassifier: the package hw2.cnn.
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("hw2"):
                found.add(name)
    return found


def layer_of(name: str) -> int:
    for i, layer in reversed(list(enumerate(LAYERS))):
        if any(name == top or (top != "hw2" and name.startswith(top + "."))
               for top in layer):
            return i
    raise AssertionError(f"{name} is in no layer of LAYERS")


def test_imports_form_no_cycle_and_follow_the_layers():
    mods = modules()
    graph = {name: imports(path, set(mods)) - {name} for name, path in mods.items()}
    # A package's __init__ imports its modules; they never import the package back
    # (the top package hw2 imports none: its modules may read hw2.__version__).
    assert graph["hw2"] == set(), graph["hw2"]
    for name, targets in graph.items():
        for target in targets:
            assert target == "hw2" or not (name.startswith(target + ".")
                                           and target in mods), (
                f"{name} imports its own package {target}: a cycle through __init__")
            assert layer_of(target) <= layer_of(name), (
                f"{name} (layer {layer_of(name)}) imports {target} "
                f"(layer {layer_of(target)}), a later layer")
    # No cycle at all (depth-first search).
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, target])}")
            if not state.get(target):
                visit(target, [*path, target])
        state[node] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [name])


@pytest.mark.parametrize("package, order", [
    ("hw2.data", ["base", "sources", "cache", "batches", "datasets"]),
    ("hw2.cnn", ["shapes", "plain", "residual", "yourcodenet"]),
    ("hw2.experiments", ["config", "grid", "results", "claims", "device", "runner",
                         "sweep", "executors", "slurm", "cli"]),
])
def test_a_package_s_modules_import_only_those_before_them(package, order):
    mods = modules()
    for i, short in enumerate(order):
        name = f"{package}.{short}"
        for target in imports(mods[name], set(mods)):
            if target.startswith(package + "."):
                other = target[len(package) + 1:].split(".")[0]
                assert other in order[:i] or (name, other) == (
                    "hw2.experiments.slurm", "executors"), (
                    f"{name} imports {target}, which comes after it")


def test_no_module_is_too_long_to_read():
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    too_long = {name: n for name, n in long.items() if n > MAX_LINES}
    # A longer module says why in its docstring ("Why one module of ...").
    for name in too_long:
        assert "Why one module of" in modules()[name].read_text()[:4000], (
            f"{name} has {too_long[name]} lines and its docstring does not say why")
    assert set(too_long) <= {"hw2.layers", "hw2.training"}, too_long


#: The public names of the modules that became packages, as the single modules
#: hw2/cnn.py and hw2/data.py defined them: each still imports from the package.
FORMER_MODULE_NAMES = {
    "hw2.cnn": ["ACTIVATIONS", "POOLINGS", "DEFAULT_CONV_PARAMS", "DEFAULT_POOLING_PARAMS",
                "conv_output_size", "feature_map_shape", "receptive_field",
                "count_parameters", "ConvClassifier", "ResidualBlock",
                "ResidualBottleneckBlock", "ResNetClassifier", "ConvBN", "BasicUnit",
                "YourCodeNet"],
    "hw2.data": ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR10_COUNTS",
                 "ENV_SOURCE", "ENV_CACHE", "DataError", "DataUnavailableError",
                 "CorruptDataError", "DataWarning", "CIFAR10", "cache_dir", "load_cifar10",
                 "class_balanced_indices", "train_val_indices", "CIFAR10Dataset",
                 "cifar10_datasets", "augment_batch", "GPUBatches"],
}


@pytest.mark.parametrize("package", sorted(FORMER_MODULE_NAMES))
def test_the_public_names_of_a_split_module_import_as_before(package):
    module = importlib.import_module(package)
    names = FORMER_MODULE_NAMES[package]
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package} no longer has {missing}"
    unlisted = [name for name in names if name not in module.__all__]
    assert not unlisted, f"{package}.__all__ leaves out {unlisted}"
