"""Every exit code of `mmbot`, named once.

Codes 64-78 follow BSD sysexits.h so that scripts and CI can tell a typo from a
verdict: Click's own 2 for a usage error would read as WARN here, so the console
entry (`flows.cli:main`) maps every usage error to USAGE.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAIL = 1  # a gate said FAIL, or a command failed for a reason of its own
    WARN = 2  # a gate said WARN: usable, with a person's look
    USAGE = 64  # bad command line or settings: unknown option, missing argument, bad key
    DATA = 65  # input data unusable: not a journal, malformed market data, bad verdict file
    UNAVAILABLE = 69  # the artifact store (or another service) could not be reached or refused
    INTERRUPTED = 130  # Ctrl-C / abort (128 + SIGINT)
