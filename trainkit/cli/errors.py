"""The command line's errors, shared by every command: one line on stderr each.

Two kinds of error, one family:

- :class:`ConfigError` and :class:`DataError` are ``ValueError`` s that the
  readers of configs and data files raise (they are usable without click);
- :class:`UserError` is what a command shows: ``error: <one line>`` on stderr
  and exit status 2. :class:`SweepError` (a sweep's input or storage) and
  :class:`TrainingFailed` (exit status 1) are user errors too.

:func:`handle_errors` wraps a command: it adds ``--debug`` and turns a
``ValueError``, ``TypeError`` or ``OSError`` (``ConfigError`` and
``DataError`` among them) into a :class:`UserError`, and a
``FloatingPointError`` into :class:`TrainingFailed`.

>>> one_line(ValueError("run.toml: training.algo:\\n  unknown  optimizer"))
'run.toml: training.algo: unknown optimizer'
>>> issubclass(SweepError, UserError)
True
"""

import functools

import click

__all__ = [
    "ConfigError",
    "DataError",
    "SweepError",
    "TrainingFailed",
    "UserError",
    "handle_errors",
    "one_line",
]


class ConfigError(ValueError):
    """A bad configuration; the message is one line: file, key, value, what is allowed."""


class DataError(ValueError):
    """Bad or missing data; ``key`` is the ``[data]`` key it concerns, if any."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


class UserError(click.ClickException):
    """A problem with the user's input: one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class SweepError(UserError):
    """A problem with a sweep's input or its storage: one line, exit status 2."""


class TrainingFailed(UserError):
    """Training itself failed (a non-finite loss under nan_policy='raise'): exit status 1."""

    exit_code = 1


def one_line(error):
    """The message of a library exception, as one line.

    An ``OSError`` with a file name reads ``FILE: reason``; any other error
    its message with runs of white space (new lines too) made one space.
    """
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror[0].lower()}{error.strerror[1:]}"
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def handle_errors(function):
    """Add ``--debug`` and turn user errors into :class:`UserError` (exit status 2)."""

    @click.option("--debug", is_flag=True, help="Show the traceback of an error.")
    @functools.wraps(function)
    def wrapper(*args, debug=False, **kwargs):
        context = click.get_current_context()
        debug = debug or bool(context.find_root().params.get("debug"))
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (ValueError, TypeError, OSError) as error:  # ConfigError, DataError too
            if debug:
                raise
            raise UserError(one_line(error)) from error
        except FloatingPointError as error:
            if debug:
                raise
            raise TrainingFailed(one_line(error)) from error

    return wrapper
