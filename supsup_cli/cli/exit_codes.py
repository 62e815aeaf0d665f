"""Exit codes: a contract with users' scripts, listed in the README. Never renumber one."""

from __future__ import annotations

from supsup_cli.core import errors

OK = 0
INTERNAL = 1
USAGE = 2
INTERRUPTED = 130
CLOSED_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away

BY_ERROR: dict[type[errors.SupsupError], int] = {
    errors.InvalidArgument: USAGE,
    errors.ArchiveNotFound: 3,
    errors.NotAnArchive: 4,
    errors.ArchiveCorrupt: 5,
    errors.VersionTooNew: 6,
    errors.WeightsMismatch: 7,
    errors.ArchiveLocked: 8,
    errors.ConcurrentChange: 8,
    errors.InputNotFound: 3,
    errors.BadInput: 9,
    errors.UnknownTask: 10,
    errors.NoTasks: 10,
    errors.DataUnavailable: 11,
    errors.ArchiveExists: 12,
    errors.DuplicateTask: 12,
    errors.DiskFull: 13,
    errors.MissingExtra: 14,
    errors.QualityGateFailed: 15,
}


def for_error(error: errors.SupsupError) -> int:
    for kind in type(error).__mro__:
        if kind in BY_ERROR:
            return BY_ERROR[kind]
    return INTERNAL
