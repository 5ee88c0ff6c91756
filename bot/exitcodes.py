"""Every exit code of `mmbot`, named once."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAIL = 1
    WARN = 2
    USAGE = 64
    DATA = 65
    UNAVAILABLE = 69
    INTERRUPTED = 130
