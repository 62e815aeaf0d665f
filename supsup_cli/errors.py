"""The engine's exception types. The CLI maps each to a documented exit code."""

from __future__ import annotations


class SupsupError(Exception):
    """Base of every error the engine raises on purpose."""


class ArchiveNotFound(SupsupError):
    pass


class ArchiveExists(SupsupError):
    pass


class NotAnArchive(SupsupError):
    """The file is not a supsup archive at all (another format, or another program's HDF5)."""


class ArchiveCorrupt(SupsupError):
    """The file claims to be a supsup archive but fails validation (truncated, damaged, crafted)."""


class VersionTooNew(SupsupError):
    pass


class WeightsMismatch(SupsupError):
    """The base weights regenerated from the seed do not hash to the stored SHA-256."""


class ArchiveLocked(SupsupError):
    """Another writer holds the archive's lock for longer than we were willing to wait."""


class ConcurrentChange(SupsupError):
    """Another writer changed the archive in a way that conflicts with this one's work."""


class UnknownTask(SupsupError):
    pass


class NoTasks(SupsupError):
    pass


class DuplicateTask(SupsupError):
    pass


class BadInput(SupsupError):
    """An input file (image, array) that cannot be read or has the wrong shape."""


class InputNotFound(BadInput):
    pass


class DataUnavailable(SupsupError):
    """A dataset that cannot be found, downloaded or verified."""


class InvalidArgument(SupsupError):
    """Arguments that parse but make no sense together (conflicting transforms, density out of range)."""


class DiskFull(SupsupError):
    pass


class QualityGateFailed(SupsupError):
    """A measured figure fell below the threshold the user set (benchmark --fail-under)."""
