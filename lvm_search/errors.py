"""The one error type for mistakes a user can make (a bad file, a bad field, a bad flag).

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
    """A problem with the user's input. The message names the file and the field."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or Inf (a setting, usually lr, too large for the data)."""
