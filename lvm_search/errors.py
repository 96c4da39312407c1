"""The one error type for mistakes a user can make (a bad file, a bad field, a bad flag).

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""

import math


class UserError(ValueError):
    """A problem with the user's input. The message names the file and the field."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or Inf (a setting, usually lr, too large for the data)."""


def shown(value) -> str:
    """A value as a message quotes it: a 400-digit number is said to be one, not printed."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:16]}... ({len(text)} characters)"


def is_finite_number(value) -> bool:
    """A real number a float can hold: not a bool, NaN, Inf, nor an integer beyond float's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits
        return False


def reason(error: BaseException | str, limit: int = 160) -> str:
    """The first line of a library's error, for a message of ours: cut at a word boundary, with an
    ellipsis, when it is longer than ``limit`` (never in the middle of a word)."""
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else type(error).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(" ,;:") + "..."


def expected_kind(kind: type) -> str:
    """What a setting of type ``kind`` expects, in words ("an integer", not "a int")."""
    return {int: "an integer", float: "a number", bool: "true or false", str: "text", dict: "a mapping"}.get(
        kind, f"a {kind.__name__}"
    )
