"""The one exception type the lab raises for conditions a user can act on."""


class LabError(RuntimeError):
    """A lab operation that cannot proceed; the message is one line for the user."""
