"""The virtual twin's user-facing errors (importable without TensorFlow)."""


class SnapshotError(ValueError):
    """A snapshot the twin cannot read (one clear message)."""


class RegistryError(ValueError):
    """A model reference or registry operation that cannot be done."""


class IntervalError(ValueError):
    """An interval that cannot be given: a level outside (0, 1), or no calibration for it."""
