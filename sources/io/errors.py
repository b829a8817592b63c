"""The whole-source error, at the bottom of sources/ so that the readers in io/ can raise it too."""


class SourceError(RuntimeError):
    """A source cannot be read at all (wrong root, no recognisable layout); message says what to do."""
