"""The package's layering, checked (issue 30): the README's Layout lists every module in the order
of its dependencies, and each module imports only those listed above it; on top of that order, the
contracts a reader relies on are spelled out one by one (only `search/` imports Ray, the trainer knows
no ensemble, models know no data). Read from the README and the code, so neither can drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lvm_search"
TRAINER = {"teacher", "warm_start", "train"}  # the trainer and what it starts from


def layout() -> list[str]:
    """The package's modules, top of the README's list first: `store` for a subpackage's line (its
    `__init__`), `store.runs` for a module inside it."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    names, package = [], None
    for m in re.finditer(r"^(  |    )(\w+)(\.py|/)\s", block, re.M):
        indent, name, kind = m.groups()
        if indent == "  ":
            package = name if kind == "/" else None
            names.append(name)
        else:
            assert package, f"{name}: indented under no subpackage in the README's Layout"
            names.append(f"{package}.{name}")
    return names


def present() -> set[str]:
    """Every module, subpackage and data folder of the package, as `layout` names them."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    return folders | {module_name(p) for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: Path = PACKAGE) -> tuple[set[str], bool]:
    """The package's modules a file imports (anywhere in it, lazy imports too; `from ..store import runs`
    is the module `store.runs`, `from ..models import x` the subpackage `models`), and whether it
    imports Ray."""
    here = list(path.relative_to(package).parent.parts)  # the subpackage the file is in
    ours, ray = set(), False

    def add(dotted: str, names: list[str]) -> None:
        if not dotted:  # `from . import __version__`: the package's face, not a module
            ours.update(n for n in names if not n.startswith("__"))
            return
        for n in names:  # `from .store import runs` names a module; `from .store import X`, the package
            if (package / dotted.replace(".", "/") / f"{n}.py").exists():
                ours.add(f"{dotted}.{n}")
            else:
                ours.add(dotted)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                ray |= alias.name.split(".")[0] == "ray"
                if alias.name.startswith("lvm_search."):
                    ours.add(alias.name.removeprefix("lvm_search."))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                ray |= module.split(".")[0] == "ray"
                if module == "lvm_search" or module.startswith("lvm_search."):
                    add(module.removeprefix("lvm_search").lstrip("."), [a.name for a in node.names])
                continue
            base = here[: len(here) - (node.level - 1)]
            add(".".join([*base, *module.split(".")] if module else base), [a.name for a in node.names])
    return ours, ray


def files() -> dict[str, Path]:
    """Module name -> its file (a subpackage's `__init__.py` for the subpackage)."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}


def test_the_readme_lists_every_module_of_the_package_once():
    listed = layout()
    assert len(listed) == len(set(listed))
    assert set(listed) == present()


def test_each_module_imports_only_those_above_it():
    """A subpackage's line stands for its `__init__`, which may also import its own modules."""
    order, wrong = layout(), []
    for i, name in enumerate(order):
        if name == "cli" or name not in files():  # the CLI is the top; samples/ is data
            continue
        allowed = set(order[:i]) | {name} | {m for m in order if m.startswith(f"{name}.")}
        path = files()[name]
        for imported in sorted(imports(path)[0] - allowed):
            wrong.append(f"{path.relative_to(ROOT)} imports {imported}, listed below it")
    assert not wrong, "\n".join(wrong)


def test_only_search_imports_ray_and_only_the_modules_the_readme_names():
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("## Layout", 1)[1].split("import Ray", 1)[0]
    named = {n.replace("/", ".") for n in re.findall(r"`(search/\w+)`", sentence)}
    importers = {name for name, path in files().items() if imports(path)[1]}
    assert importers == named and all(n.startswith("search.") for n in importers)


@pytest.mark.parametrize(
    "importer, forbidden",
    [
        (TRAINER, ("ensemble", "search", "report", "cli")),  # every trial loads the trainer: keep it lean
        ({"models"}, ("data", "scoring", *TRAINER, "ensemble", "search", "report")),  # a model is its weights
        ({"ensemble"}, ("search", "report", "cli")),  # ensembles build without Ray
    ],
)
def test_the_contracts_a_reader_relies_on(importer, forbidden):
    def inside(name: str, prefixes) -> bool:
        return any(name == p or name.startswith(f"{p}.") for p in prefixes)

    broken = [
        f"{name} imports {imported}"
        for name, path in files().items()
        if inside(name, importer)
        for imported in imports(path)[0]
        if inside(imported, forbidden)
    ]
    assert not broken, "\n".join(broken)


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    """The contract test itself: imports inside functions, from a subpackage, of a module through its
    subpackage, and of Ray, are seen."""
    (tmp_path / "store").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "store" / "runs.py").write_text("")
    (tmp_path / "errors.py").write_text("def f():\n    from .cli import main\n    import ray.tune\n")
    (tmp_path / "models" / "amn.py").write_text(
        "from ..data.windows import LVMData\nfrom .registry import x\nfrom ..store import runs\n"
        "from .. import __version__\nfrom ..models import build_model\n"
    )
    assert imports(tmp_path / "errors.py", tmp_path) == ({"cli"}, True)
    assert imports(tmp_path / "models" / "amn.py", tmp_path) == (
        {"data.windows", "models.registry", "store.runs", "models"},
        False,
    )


def test_every_function_fits_on_a_screen():
    """Issue 30: none over 80 lines (decorators aside), so a reader can hold each one."""
    long = [
        f"{path.relative_to(ROOT)}: {node.name} has {node.end_lineno - node.lineno + 1} lines"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80
    ]
    assert not long, "\n".join(long)
