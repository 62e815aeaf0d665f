"""The library's exception types, all subclasses of SupsupError. The command line maps each to a
documented exit code (cli/exit_codes.py, README "Exit codes")."""

from __future__ import annotations


class SupsupError(Exception):
    """Base of every error the engine raises on purpose."""


class ArchiveNotFound(SupsupError):
    """No file at the archive's path (exit 3)."""


class ArchiveExists(SupsupError):
    """The archive to create is already there; pass force=True (--force) to overwrite it (exit 12)."""


class NotAnArchive(SupsupError):
    """The file is not a supsup archive at all (another format, or another program's HDF5)."""


class ArchiveCorrupt(SupsupError):
    """The file claims to be a supsup archive but fails validation (truncated, damaged, crafted)."""


class VersionTooNew(SupsupError):
    """The archive was written by a newer supsup, in a format version this one does not know (exit 6)."""


class WeightsMismatch(SupsupError):
    """The base weights regenerated from the seed do not hash to the stored SHA-256."""


class ArchiveLocked(SupsupError):
    """Another writer holds the archive's lock for longer than we were willing to wait."""


class ConcurrentChange(SupsupError):
    """Another writer changed the archive in a way that conflicts with this one's work."""


class UnknownTask(SupsupError):
    """No task has that index or name (exit 10)."""


class NoTasks(SupsupError):
    """The archive has no task yet, and the call needs one (exit 10)."""


class DuplicateTask(SupsupError):
    """A task of that name is already in the archive (exit 12)."""


class BadInput(SupsupError):
    """An input file (image, array) that cannot be read or has the wrong shape."""


class InputNotFound(BadInput):
    """An input file or folder that does not exist (exit 3)."""


class DataUnavailable(SupsupError):
    """A dataset that cannot be found, downloaded or verified."""


class InvalidArgument(SupsupError):
    """Arguments that parse but make no sense together (conflicting transforms, density out of range)."""


class ModuleRequired(InvalidArgument):
    """The archive's network is a module of the user's own: pass it (`module=`, --module) (exit 2)."""


class DiskFull(SupsupError):
    """The disk filled while writing; nothing committed was lost (exit 13)."""


class MissingExtra(SupsupError):
    """An optional dependency is not installed; the message names the extra that brings it (exit 14)."""


class QualityGateFailed(SupsupError):
    """A measured figure fell below the threshold the user set (benchmark --fail-under)."""
