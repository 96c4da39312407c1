"""Reading the user's YAML (space files, ensemble recipes, ``--set`` values) safely and boundedly.

``yaml.safe_load`` never runs code, but a few hundred bytes of nested aliases stand for billions of
nodes once anything walks them (a "billion laughs" document). Files are capped in bytes and
documents in nodes, counted as aliases expand, before anything else looks at them.

A mapping that gives one key twice says two things, and PyYAML would silently keep the last: it
is refused, naming the key and both lines. Keys merged in with ``<<`` may be overridden, as YAML
means them to be.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import UserError

MAX_BYTES = 1 * 2**20
MAX_NODES = 100_000


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first_line: int, line: int):
        where = f"twice on line {line}" if line == first_line else f"on lines {first_line} and {line}"
        super().__init__(f"key {key!r} is given {where}; give it once")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (plain data, nothing executed) that refuses a duplicate key."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # <<: merged keys may be overridden
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:  # as a dict compares keys: 1, 1.0 and true are one key
                    raise DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML refuses it below
                continue
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str):
    """The parsed document of file ``path`` (a ``what``: "space file", "ensemble recipe")."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {what}")
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
        value = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKey as e:
        raise UserError(f"{where}: {e}") from None
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
