"""Reading the user's YAML (space files, ensemble recipes, ``--set`` values) safely and boundedly.

``yaml.safe_load`` never runs code, but a few hundred bytes of nested aliases stand for billions of
nodes once anything walks them (a "billion laughs" document). Files are capped in bytes and
documents in nodes, counted as aliases expand, before anything else looks at them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError

MAX_BYTES = 1 * 2**20
MAX_NODES = 100_000


def read_yaml(path: Path, what: str):
    """The parsed document of file ``path`` (a ``what``: "space file", "ensemble recipe")."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {what}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UserError(f"{path}: {size:,} bytes is too large for a {what} (at most {MAX_BYTES:,})")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str):
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{where}: not valid YAML{at}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deeply") from None
    check_size(value, where)
    return value


def check_size(value, where: str) -> None:
    """Refuse a document of more than MAX_NODES nodes, counting every alias where it is used."""
    stack, seen = [value], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise UserError(f"{where}: the document expands to more than {MAX_NODES:,} values (aliases?)")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
