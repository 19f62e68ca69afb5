"""One exception family for mistakes a user can fix (bad photo, missing file, no face, ...).

The CLI prints these as a single line and exits with status 2; anything else is a bug and keeps its
traceback. Messages say what is wrong *and* what to do about it.
"""


class Gen3DFaceError(Exception):
    """Base class of every user-facing error of gen3dface."""


class InputError(Gen3DFaceError):
    """A file or argument the user gave cannot be used (missing, unreadable, wrong kind, out of range)."""


class NoFaceError(Gen3DFaceError):
    """The photo was read, but no face could be found in it."""


class BackendUnavailable(Gen3DFaceError):
    """An optional component (model weights, package) is not installed or not present on disk."""


class OutputError(Gen3DFaceError):
    """An output location cannot be written."""
