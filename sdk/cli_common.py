"""What every ``anyedge`` command shares: exit codes and one-line error text.

Feature commands (``detection/cli.py``, ``live/cli.py``, ...) import from here, never from
:mod:`anyedge.cli`, which only assembles them; argument types live in :mod:`anyedge.cli_args`.
"""

from __future__ import annotations

from .errors import DownloadError, LicenceNotAcceptedError

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_LICENCE", "EXIT_DOWNLOAD", "EXIT_INTERRUPTED",
           "EXIT_PIPE", "EXIT_TERMINATED", "EXIT_CODES", "error_exit_code", "one_line"]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_TERMINATED = 0, 1, 2, 130, 141, 143
EXIT_LICENCE, EXIT_DOWNLOAD = 3, 4
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_PARTIAL: "some inputs failed (the others were processed), or an unexpected internal error",
    EXIT_USAGE: "bad usage or an anyedge error: unknown model, unreadable input, refused bundle, "
                "missing engine, failed conversion",
    EXIT_LICENCE: "a model's licence must be accepted before it is fetched (anyedge models fetch NAME "
                  "--accept-licence, or ANYEDGE_ACCEPT_LICENCE=1)",
    EXIT_DOWNLOAD: "a model could not be downloaded: HTTP error, timeout, no connection, or wrong bytes served",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (anyedge run: Ctrl-C is the normal stop and exits 0)",
    EXIT_PIPE: "stdout was closed early (e.g. piped into head), or is closed or full; nothing else went wrong",
    EXIT_TERMINATED: "terminated by SIGTERM (anyedge run: a clean stop, exits 0)",
}


def error_exit_code(error: BaseException) -> int:
    """The exit code of a command that failed with the anyedge error ``error``."""
    if isinstance(error, LicenceNotAcceptedError):
        return EXIT_LICENCE
    if isinstance(error, DownloadError):
        return EXIT_DOWNLOAD
    return EXIT_USAGE


def one_line(text: object) -> str:
    """``text`` as one line: its non-blank lines joined with ``"; "`` (error messages stay one line)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
