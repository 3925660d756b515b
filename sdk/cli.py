"""The ``anyedge`` command line: it assembles the features' commands and runs them.

Every feature package adds its own subcommands from its ``cli.py`` (``add_parsers(sub)``);
:func:`_subcommand_hooks` lists them, one line each. This module owns only what all commands
share at run time (``anyedge --help`` shows it to users):

* A failure is ONE line on stderr, ``anyedge: error: ...``, and a documented exit code
  (:data:`EXIT_CODES`, defined in :mod:`anyedge.cli_common`); ``-v``/``--verbose`` anywhere on
  the line adds the traceback.
* While a command runs, only anyedge's own output reaches stdout: file descriptor 1 points at
  stderr, so progress bars and log lines of third-party libraries (NNCF, OpenVINO, tqdm, C
  libraries) land on stderr, and ``--json`` output stays pure JSON.
* SIGINT/SIGTERM raise in the command so it cleans up; a second one ends the process at once.
* Sub-parsers made with ``sub.add_parser`` get the same one-line usage errors and example epilogs.

Adding a command: write ``<feature>/cli.py`` with ``add_parsers(sub)`` (import helpers from
:mod:`anyedge.cli_args` and :mod:`anyedge.cli_common`, never from this module) and add one line
to :func:`_subcommand_hooks`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import traceback
from typing import Any, Callable, Iterator, Sequence, TextIO

from .cli_common import (EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_PIPE, EXIT_TERMINATED,
                         EXIT_USAGE, error_exit_code, one_line)
from .errors import AnyEdgeError

__all__ = ["main", "build_parser", "EXIT_CODES"]

_EPILOG = """\
examples:
  anyedge models
  anyedge detect photo.jpg --model scrfd-500m --json
  anyedge run --source 0 --model blazeface-short
  anyedge convert scrfd-500m --target arm-cpu --calib images/ --out scrfd.zip
  anyedge har classify RacketSports_TEST.ts --model bnn-racketsports

-v/--verbose may be given anywhere on the line; it logs progress and shows tracebacks.
With --json, stdout carries only JSON; progress and third-party logs go to stderr.

exit codes:
""" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


class _Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps multi-line text (examples, exit codes) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) and epilogs kept as written.

    Sub-parsers made with ``add_subparsers().add_parser`` are of this class too (argparse uses
    the parent's class), so the hooks' subcommands behave the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The full ``anyedge`` parser, hooks' subcommands included."""
    from . import __version__

    ap = _Parser(prog="anyedge", description="Run face and activity models on edge devices.", epilog=_EPILOG)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log progress (downloads, conversion) and show tracebacks; accepted anywhere")
    ap.add_argument("--version", action="version", version=f"anyedge {__version__}",
                    help="print anyedge's version and exit")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for hook in _subcommand_hooks():
        hook(sub)
    return ap


def _subcommand_hooks() -> list[Callable[[Any], None]]:
    """Every feature's ``add_parsers(sub)``, in ``anyedge --help`` order: one line each.

    Imported here, when the parser is built, so ``import anyedge.cli`` stays light; a feature
    that fails to import fails the whole command line loudly rather than silently lacking.
    """
    from .apps.cli import add_parsers as export_c  # export-c
    from .bench.cli import add_parsers as bench  # bench
    from .converters.cli import add_parsers as convert  # convert, targets, inspect
    from .detection.cli import add_parsers as detection  # detect, demo
    from .har.cli import add_parsers as har  # har
    from .live.cli import add_parsers as live  # run
    from .recognition.cli import add_parsers as recognition  # verify, calibrate-threshold, gallery
    from .registry.cli import add_parsers as models  # models
    from .signing.cli import add_parsers as signing  # keys new, sign

    return [models, detection, convert, har, recognition, live, export_c, bench, signing]


# -- running a command ----------------------------------------------------------------------
class _ResultsOnlyStdout(io.TextIOBase):
    """``sys.stdout`` while a command runs: writes from anyedge's code reach the real stdout,
    writes from any other module (a library's progress bar or log handler bound to
    ``sys.stdout``) go to stderr. C-level writes to fd 1 already go to stderr (see :func:`_run`).
    """

    def __init__(self, results: TextIO, other: TextIO) -> None:
        self._results = results
        self._other = other

    def _target(self) -> TextIO:
        f = sys._getframe(2)  # the frame that called write() (print() is C and adds no frame)
        for _ in range(3):  # json.dump(obj, sys.stdout) and the like sit one frame deeper
            if f is None:
                break
            if _module_of(f.f_globals).split(".")[0] == "anyedge":
                return self._results
            f = f.f_back
        return self._other

    def write(self, s: str) -> int:  # type: ignore[override]
        target = self._target()
        if target is not self._results:
            return target.write(s)
        with _writing_stdout():
            return target.write(s)

    def writelines(self, lines: Any) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with _writing_stdout():
            self._results.flush()
        self._other.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._results.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._results.encoding


def _module_of(g: dict[str, Any]) -> str:
    """A frame's module name; ``python -m anyedge.cli`` runs as ``__main__`` with the real name in its spec."""
    name = str(g.get("__name__", ""))
    if name == "__main__":
        spec = g.get("__spec__")
        name = str(getattr(spec, "name", "") or "")
    return name


class _StdoutError(Exception):
    """The results could not be written to stdout (closed, full, an I/O error); a broken pipe is not one."""


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _StdoutError(f"cannot write to stdout: {e.strerror or e}") from e


class _Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread by the signal handler).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way
    (a remedy loop, an engine wrapper, a third-party library) can take it for a failed step.
    """


def _on_signal(signum: int, frame: Any) -> None:
    """The first SIGINT/SIGTERM raises, so the command cleans up on its way out.

    A second one (the clean-up hangs, or a library swallowed the first) ends the process at once:
    one line, 130 or 143. While the one-line report is written, signals are ignored (:func:`_quiet`).
    """
    from . import _exit_on_signal

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _exit_on_signal)
    if signum == signal.SIGTERM:
        raise _Terminated()
    raise KeyboardInterrupt()


def _quiet(previous: dict[int, Any]) -> None:
    """Ignore SIGINT/SIGTERM (only where main() installed its handling)."""
    for s in previous:
        signal.signal(s, signal.SIG_IGN)


def _run(args: argparse.Namespace) -> int:
    """Run a parsed command with fd 1 pointing at stderr and results routed to the real stdout."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced (tests capturing in-process)
        return int(args.func(args) or 0)
    sys.stdout.flush()
    saved = os.dup(fd)
    results = open(saved, "w", encoding=sys.stdout.encoding or "utf-8", errors="replace",  # noqa: SIM115
                   buffering=1, closefd=True)
    original = sys.stdout
    os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = _ResultsOnlyStdout(results, sys.stderr)
    done = False
    try:
        code = int(args.func(args) or 0)
        done = True
        return code
    finally:
        sys.stdout = original
        try:
            original.flush()
        finally:
            os.dup2(saved, fd)
            try:
                with _writing_stdout():
                    results.close()
            except BrokenPipeError:
                pass
            except _StdoutError:
                if done:  # else the error already on its way says more
                    raise


def _split_verbose(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Take ``-v``/``--verbose`` from anywhere before a ``--``."""
    rest: list[str] = []
    verbose = False
    for i, tok in enumerate(argv):
        if tok == "--":
            rest.extend(argv[i:])
            break
        if tok in ("-v", "--verbose"):
            verbose = True
        else:
            rest.append(tok)
    return rest, verbose


def _silence_stdout() -> None:
    """After a broken pipe or a failed write: point stdout at /dev/null so the exit flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1 if sys.stdout is None else sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _report(line: str) -> None:
    """The one line a failed command prints on stderr (nothing, when stderr itself is gone)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (AttributeError, OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anyedge`` command; returns the exit code (see :data:`EXIT_CODES`)."""
    from .signing.cli import trust_scope

    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, _on_signal)
    except ValueError:  # not the main thread
        pass
    verbose = False
    code, line = EXIT_OK, ""
    try:
        try:
            try:
                if sys.stdout is None:  # started with stdout closed (>&-): fd 1 may be reused by any file opened
                    _silence_stdout()
                    raise _StdoutError("stdout is closed; give the output somewhere to go (e.g. >/dev/null)")
                argv, verbose = _split_verbose(list(sys.argv[1:] if argv is None else argv))
                args = build_parser().parse_args(argv)
                args.verbose = verbose
                logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                                    format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
                with trust_scope(args):  # --trust KEYS: $ANYEDGE_TRUSTED_KEYS for this command
                    code = _run(args)
                sys.stdout.flush()
            except BrokenPipeError:
                _silence_stdout()
                code = EXIT_PIPE
            except AnyEdgeError as e:
                if verbose:
                    traceback.print_exc()
                code, line = error_exit_code(e), f"anyedge: error: {one_line(e)}"
            except _StdoutError as e:
                if verbose:
                    traceback.print_exc()
                _silence_stdout()
                code, line = EXIT_PIPE, f"anyedge: error: {e}"
            except Exception as e:  # noqa: BLE001 - the last line of defence: one line, exit 1
                if verbose:
                    traceback.print_exc()
                hint = "" if verbose else " (run with -v for the traceback)"
                code, line = EXIT_PARTIAL, f"anyedge: error: {type(e).__name__}: {one_line(e)}{hint}"
        except KeyboardInterrupt:  # also while an error above was being handled
            code, line = EXIT_INTERRUPTED, "anyedge: interrupted"
        except _Terminated:
            code, line = EXIT_TERMINATED, "anyedge: terminated"
        finally:
            _quiet(previous)
        if line:
            _report(line)
    finally:  # also when argparse exits (--help, a usage error)
        for s, h in previous.items():
            signal.signal(s, h)
    return code


if __name__ == "__main__":
    sys.exit(main())
