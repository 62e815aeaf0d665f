"""The layers of the package import only downward (issue 27): the core never imports torch, the
engine (tensors in, tensors out) never imports the archive, HDF5, the API, the command line or the
benchmark, and nothing imports the command line or the benchmark but themselves."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "supsup_cli"

LAYERS = ("core", "archive", "data", "engine", "api", "cli", "benchmark")


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "supsup_cli":
        return "external:" + parts[0]
    if len(parts) == 1 or parts[1] == "__main__":
        return "package"
    return parts[1] if parts[1] in LAYERS else "unassigned:" + parts[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "supsup_cli":  # its modules, or __version__
            found |= {f"supsup_cli.{alias.name}" for alias in node.names if alias.name != "__version__"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


ALLOWED = {  # what each layer may import, besides itself and the standard library
    "core": {"external:numpy", "package"},
    "archive": {"core", "external:h5py", "external:numpy", "external:filelock", "package"},
    "data": {"core", "external:numpy", "external:scipy", "external:PIL", "package"},
    "engine": {"core", "data", "external:torch", "external:numpy", "external:scipy"},
}


def test_every_module_belongs_to_a_layer_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert not loose and folders == sorted(LAYERS), (loose, folders)
    for layer in LAYERS:  # each folder says what it holds and what it may import
        assert "import" in (PACKAGE / layer / "__init__.py").read_text().split('"""')[1], layer


def test_layers_import_only_downward():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        module = "supsup_cli." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).replace(".__init__", "")
        layer = _layer(module)
        for imported in _imports(path):
            target = _layer(imported)
            if target == layer or not (target.startswith("external:") or "supsup_cli" in imported):
                continue
            if target.startswith("external:") and target.split(":")[1] in _STANDARD:
                continue
            if layer in ALLOWED and target not in ALLOWED[layer]:
                wrong.append(f"{module} ({layer}) imports {imported} ({target})")
            if target in ("cli", "benchmark") and layer not in ("cli", "benchmark", "package"):
                wrong.append(f"{module} ({layer}) imports {imported} ({target})")
    assert not wrong, "\n".join(sorted(wrong))


_STANDARD = sys.stdlib_module_names
