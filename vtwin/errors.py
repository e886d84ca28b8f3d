"""The virtual twin's user-facing errors (importable without TensorFlow)."""


class SnapshotError(ValueError):
    """A snapshot the twin cannot read (one clear message)."""


class RegistryError(ValueError):
    """A model reference or registry operation that cannot be done."""
