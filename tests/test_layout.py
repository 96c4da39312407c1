"""The README's Layout is a contract: each module imports only those listed above it (the CLI aside),
and only the modules it names import Ray. Read from the README, so the list and the code cannot drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lvm_search"


def layout() -> list[str]:
    """The package's modules and subpackages in the README's order (top of the list first)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    return [m.group(1) for m in re.finditer(r"^  (\w+)(?:\.py|/)\s", block, re.M)]


def ray_importers_named() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("## Layout", 1)[1].split("are the only ones that import Ray", 1)[0]
    return set(re.findall(r"`(\w+)`", sentence))


def imports(path: Path, package: Path = PACKAGE) -> tuple[set[str], bool]:
    """The package's modules a file imports (anywhere in it, lazy imports too), and whether it imports Ray."""
    tree = ast.parse(path.read_text())
    inside = path.parent != package  # a file of a subpackage: `..x` is the package's module x
    ours, ray = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                ray |= alias.name.split(".")[0] == "ray"
                if alias.name.startswith("lvm_search."):
                    ours.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            ray |= node.level == 0 and module.split(".")[0] == "ray"
            top_level = node.level == 1 + inside or (node.level == 0 and module.startswith("lvm_search"))
            if not top_level:
                continue
            name = module.removeprefix("lvm_search").lstrip(".").split(".")[0]
            # `from . import __version__` is the package's face, not a module
            ours |= {name} if name else {a.name for a in node.names if not a.name.startswith("__")}
    return ours, ray


def files_of(name: str) -> list[Path]:
    folder = PACKAGE / name
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{name}.py"]


def test_the_readme_lists_every_module_of_the_package():
    listed = set(layout())
    present = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert listed == present


def test_each_module_imports_only_those_above_it():
    order = layout()
    wrong = []
    for i, name in enumerate(order):
        if name == "cli":
            continue
        allowed = set(order[:i]) | {name}
        for path in files_of(name):
            for imported in imports(path)[0] - allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}, listed below it")
    assert not wrong, "\n".join(wrong)


def test_only_the_modules_the_readme_names_import_ray():
    importers = {name for name in layout() for path in files_of(name) if imports(path)[1]}
    assert importers == ray_importers_named()


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    """The contract test itself: imports inside functions and from a subpackage are seen."""
    (tmp_path / "models").mkdir()
    (tmp_path / "errors.py").write_text("def f():\n    from .cli import main\n    import ray.tune\n")
    (tmp_path / "models" / "amn.py").write_text("from ..data import LVMData\nfrom .registry import x\n")
    assert imports(tmp_path / "errors.py", tmp_path) == ({"cli"}, True)
    assert imports(tmp_path / "models" / "amn.py", tmp_path) == ({"data"}, False)
