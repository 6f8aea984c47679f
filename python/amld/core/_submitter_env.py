"""The submitter's environment for its runs (RunConfig.submitter_environment).

The rules of ``aml run submit`` (client/submitter_env.h): a run on the local target starts from
the environment it was submitted from, less names that look like secrets (containing SECRET,
PASSWORD, PASSWD, TOKEN, CREDENTIAL or PRIVATE, or ending in _KEY or _PASS), what describes the
submitting shell (PWD, OLDPWD, SHLVL, _, COLUMNS, LINES) and AMLD_* (the run's own). Its
interpreter is this process's (``sys.executable``): Azure ML's user-managed environment means
"your current Python environment". ``AMLD_NO_SUBMITTER_ENV=1`` sends nothing: the run gets the
daemon's environment and python3 from its PATH, as ``aml run submit --daemon-env`` does.

A run's working folder is its own, so relative folders in the path lists (``PATH_LIST_VARIABLES``:
PATH, PYTHONPATH, LD_LIBRARY_PATH, ...) are made absolute against the submitter's working folder
(``PYTHONPATH=build/python`` means the submitter's build/python); empty entries stay as they are.
"""

import os
import sys

_SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "PRIVATE")
_SHELL_ONLY = frozenset(("PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES"))
# Values that are ':'-separated folder lists (client/submitter_env.h kPathListVariables).
PATH_LIST_VARIABLES = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",
                       "PKG_CONFIG_PATH", "MANPATH")


def looks_like_secret(name):
    """Whether a variable's name looks like it holds a secret."""
    upper = name.upper()
    return (any(word in upper for word in _SECRET_WORDS) or upper.endswith("_KEY")
            or upper.endswith("_PASS") or upper == "KEY")


def absolute_path_list(value, cwd):
    """``value`` (a ':'-separated folder list) with relative, non-empty entries made absolute
    against ``cwd`` and normalized."""
    if not cwd:
        return value
    return ":".join(entry if not entry or entry.startswith("/")
                    else os.path.normpath(os.path.join(cwd, entry))
                    for entry in value.split(":"))


def capture(message, environ=None, python=None, cwd=None):
    """Fill a SubmitterEnvironment message from ``environ`` (default: os.environ), as submitted
    from ``cwd`` (default: the working folder)."""
    environ = os.environ if environ is None else environ
    if cwd is None:
        try:
            cwd = os.getcwd()
        except OSError:  # the working folder was removed: leave relative entries as they are
            cwd = ""
    if environ.get("AMLD_NO_SUBMITTER_ENV", "") not in ("", "0"):
        return
    message.SetInParent()
    left_out = set()
    for name, value in environ.items():
        if (not name or "=" in name or "\0" in value or name.startswith("AMLD_")
                or name in _SHELL_ONLY or looks_like_secret(name)):
            left_out.add(name)
            continue
        message.variables[name] = (absolute_path_list(value, cwd) if name in PATH_LIST_VARIABLES
                                   else value)
    message.left_out.extend(sorted(left_out))
    message.python = sys.executable if python is None else python
