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
