"""Errors the amld SDK raises, named after azureml.exceptions where one fits.

Every error derives from :class:`AmldException`. Errors that come from the
daemon keep its message and carry the gRPC status code name in ``code``
(e.g. ``"NOT_FOUND"``), so a person reads what the daemon said and a program
can branch on the code.
"""


class AmldException(Exception):
    """Base of every amld SDK error (azureml's AzureMLException).

    :param message: what went wrong and what to do about it.
    :param code: the daemon's gRPC status code name, or None when the error
        was found by the SDK itself.
    """

    def __init__(self, message, code=None):
        """Keep the message and the code."""
        super().__init__(message)
        self.message = message
        self.code = code


class UserErrorException(AmldException):
    """The request was refused because of what it asked for (bad argument, missing file)."""


class NotFoundException(UserErrorException):
    """The run, experiment, file or environment asked for does not exist."""


class DaemonUnavailableException(AmldException):
    """No amld answers at the workspace's socket, or it stopped answering."""


class UnsupportedOptionError(AmldException, NotImplementedError):
    """An option this amld does not support yet was set; the message names it.

    Raised instead of ignoring the option, either by the SDK or from the
    daemon's UNIMPLEMENTED answer (distributed configurations, pip
    requirements, container images). Also a NotImplementedError.
    """


class ActivityFailedException(AmldException):
    """A run ended FAILED or CANCELED while being waited for (azureml's name).

    ``run_id``, ``status`` (e.g. ``"Failed"``), ``error`` (the daemon's reason)
    and ``log_tail`` (the last lines of user_logs/std_log.txt) say what happened.
    """

    def __init__(self, message, run_id=None, status=None, error=None, log_tail=""):
        """Keep the run's id, final status, error and the tail of its log."""
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.error = error
        self.log_tail = log_tail


class ExperimentExecutionException(AmldException):
    """Submitting or following a run could not go on (e.g. a wait was interrupted)."""


class RunEnvironmentException(AmldException):
    """Run.get_context(allow_offline=False) was called outside a run started by amld."""


class ComputeTargetException(UserErrorException):
    """A compute target could not be found, attached, created or removed (azureml's name).

    ``ComputeTarget(workspace=ws, name=n)`` raises it when no target has that
    name, so the samples' try/except-create pattern works unchanged.
    """


class WebserviceException(NotFoundException):
    """azureml's error of the model registry: ``Model(ws, name)`` of a name or version
    that is not registered, or a download over an existing file without exist_ok.
    """
