"""What counts as the user's error, and the command line's exit statuses.

The command line exits with :data:`EXIT_USER` and one line naming the problem and the fix when an
error is the user's to fix (a bad flag, config value, file or folder), and with
:data:`EXIT_INTERNAL` and the traceback when it is a bug. Library code signals a user error with
:class:`UserError` (a ``ValueError``), or with a ``ValueError`` / ``FileNotFoundError`` naming the
argument, as it always has; :func:`is_user_error` decides.
"""

from __future__ import annotations

import errno

__all__ = [
    "EXIT_GATE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USER",
    "SetupError",
    "UserError",
    "describe_error",
    "is_user_error",
]

EXIT_OK = 0
"""Everything went as asked."""
EXIT_GATE = 1
"""A ``--fail-if`` condition holds (the audit itself worked)."""
EXIT_USER = 2
"""Bad input: a flag, config value, file or folder the user can fix; one line says how."""
EXIT_INTERNAL = 3
"""A bug in fairmetric (or a library under it): the traceback is printed, please report it."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C, 128 + SIGINT)."""


class UserError(ValueError):
    """Bad input the user can fix; the message names the input and the fix."""


class SetupError(UserError, RuntimeError):
    """A launch or environment problem the user can fix (a process started the wrong way, a
    device that is not there); also a ``RuntimeError``, which such errors were before."""


# OSErrors about the user's files, folders and machine rather than fairmetric's code
_USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EACCES",
        "EPERM",
        "ENOENT",
        "ENOTDIR",
        "EISDIR",
        "EEXIST",
        "EROFS",
        "ENOSPC",
        "EDQUOT",
        "ENAMETOOLONG",
        "ELOOP",
        "ENOTEMPTY",
        "EXDEV",
        "EMFILE",
        "ENFILE",
    )
    if hasattr(errno, name)
)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's to fix (exit status 2) rather than a bug (status 3).

    User errors: ``ValueError`` (this library's convention for bad input, :class:`UserError`
    included, and ``json.JSONDecodeError``), a YAML error (syntax, or a tag the safe loader
    refuses), a non-finite training loss (``FloatingPointError``: the learning rate or a term's
    weight is too high), running out of memory (host or GPU: the batch or the data is too large
    for the machine), and ``OSError`` about the user's files and machine (a missing file, a
    folder that cannot be written, a full disk).
    """
    if isinstance(exc, (ValueError, FloatingPointError)) or _out_of_memory(exc):
        return True
    if isinstance(exc, OSError):
        return isinstance(
            exc,
            (
                FileNotFoundError,
                FileExistsError,
                PermissionError,
                NotADirectoryError,
                IsADirectoryError,
            ),
        ) or (exc.errno in _USER_ERRNOS)
    try:
        import yaml
    except ImportError:  # pragma: no cover - a core dependency
        return False
    return isinstance(exc, yaml.YAMLError)


def _out_of_memory(exc: BaseException) -> bool:
    """``MemoryError`` or torch's ``OutOfMemoryError`` (CUDA), without importing torch."""
    return isinstance(exc, MemoryError) or any(
        cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__
    )


def _os_message(exc: OSError) -> str:
    """An ``OSError`` as one sentence with the likely fix (its own message when it has one)."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    hint = {
        errno.EACCES: "choose a location you may read and write, or change its permissions",
        errno.EPERM: "choose a location you may read and write, or change its permissions",
        errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
        errno.EISDIR: "this is a folder; give a file",
        errno.EROFS: "the file system is read-only; choose another location",
        errno.ENOSPC: "the disk is full; free space or choose another location",
    }.get(exc.errno or 0)
    return f"{where}: {exc.strerror}" + (f"; {hint}" if hint else "")


def describe_error(exc: BaseException) -> str:
    """The one line the command line prints for a user error (without the ``error:`` prefix)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = _os_message(exc)  # raised by the OS itself: add the likely fix
    elif _out_of_memory(exc):
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        text = (
            f"out of memory ({first}); lower the batch size (train.batch_size, "
            "train.eval_batch_size, --batch-size), the image size or the model, or use a machine "
            "with more memory"
        )
    else:
        text = str(exc)
        if not isinstance(exc, (ValueError, OSError, FloatingPointError)):
            text = f"invalid YAML: {text}"  # the only other kind left that is_user_error accepts
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
