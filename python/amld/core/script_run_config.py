"""ScriptRunConfig: everything needed to submit a training run (azureml.core.ScriptRunConfig)."""

import logging
import os
import posixpath
import shlex

from amld.core.runconfig import (
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from amld.exceptions import UnsupportedOptionError, UserErrorException

_DISTRIBUTED_TYPES = (MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration)

# azureml's warnings, word for word, so logs read the same.
_IGNORED_WITH_RUN_CONFIG = (
    "If 'run_config' is specified, the following parameters will be ignored: 'compute_target', "
    "'environment', 'distributed_job_config', 'max_run_duration_seconds', and "
    "'docker_runtime_config'.")
_PRECEDENCE = {
    "script": "If 'script' has been provided here and a script file name has been specified in "
              "'run_config', 'script' provided in ScriptRunConfig initialization will take "
              "precedence.",
    "arguments": "If 'arguments' has been provided here and arguments have been specified in "
                 "'run_config', 'arguments' provided in ScriptRunConfig initialization will "
                 "take precedence.",
    "command": "If 'command' has been provided here and command has been specified in "
               "'run_config', 'command' provided in ScriptRunConfig initialization will take "
               "precedence.",
}


def _target_name(target):
    if target is None:
        return "local"
    if isinstance(target, str):
        return target or "local"
    name = getattr(target, "name", None)  # a ComputeTarget-like object
    if isinstance(name, str) and name:
        return name
    raise UserErrorException("compute_target must be a name like \"local\", got %r" % (target,))


def normalize_script_path(script):
    """The script relative to the source folder, '/'-separated, normalized ("./a//b.py" → "a/b.py").

    UserErrorException when it is absolute or leaves the source folder.
    """
    path = os.fspath(script).replace(os.sep, "/")
    if path.startswith("/"):
        raise UserErrorException("script %r is absolute: give it relative to source_directory"
                                 % script)
    normalized = posixpath.normpath(path)
    if normalized == ".." or normalized.startswith("../"):
        raise UserErrorException("script %r leaves source_directory: give a file inside it"
                                 % script)
    if normalized in ("", "."):
        raise UserErrorException("script %r names no file" % script)
    return normalized


class ScriptRunConfig:
    """A training run's configuration: source folder, script or command, arguments, environment.

    Same parameters as azureml's ScriptRunConfig. ``compute_target`` and
    ``environment`` are kept in ``run_config`` (``src.run_config.target``,
    ``src.run_config.environment``), as in azureml. Options amld does not
    support (``resume_from``, ``docker_runtime_config``) raise
    UnsupportedOptionError; distributed job configurations are passed to the
    daemon, which names them in its refusal until it runs them.

    :param source_directory: the local folder snapshotted for the run.
    :param script: the script to run, relative to source_directory.
    :param arguments: command-line arguments for the script (or appended to
        the command): a list, whose non-strings are passed as str(value), or
        a string, split as a shell would.
    :param run_config: a RunConfiguration; by default local with a
        user-managed python3.
    :param compute_target: a target name ("local" by default).
    :param environment: an Environment; by default user-managed python3.
    :param distributed_job_config: an MpiConfiguration, PyTorchConfiguration
        or TensorflowConfiguration.
    :param max_run_duration_seconds: the run is canceled (status Canceled,
        as azureml) after this long (default 2592000 s, 30 days, as azureml).
    :param command: a command to run instead of a script: a string (a shell
        command line) or a list (joined with spaces, as azureml does).
    """

    MAX_DURATION_SECONDS_DEFAULT = 2592000

    # What a ScriptRunConfig holds; setting anything else raises (amld would not use it).
    _FIELDS = frozenset(("source_directory", "script", "arguments", "command", "run_config",
                         "distributed_job_config"))

    def __init__(self, source_directory, script=None, arguments=None, run_config=None,
                 _telemetry_values=None, compute_target=None, environment=None,
                 distributed_job_config=None, resume_from=None,
                 max_run_duration_seconds=MAX_DURATION_SECONDS_DEFAULT, command=None,
                 docker_runtime_config=None):
        """Check and keep the configuration; nothing is read or sent until submit.

        As azureml's: with ``run_config``, the run_config's target,
        environment and time limit are used and ``compute_target``,
        ``environment``, ``distributed_job_config``,
        ``max_run_duration_seconds`` and ``docker_runtime_config`` are ignored
        with azureml's warning; ``script``, ``arguments`` and ``command`` given
        here win over the run_config's (with azureml's warning when both are set).
        """
        if resume_from is not None:
            raise UnsupportedOptionError("ScriptRunConfig(resume_from=...): amld does not resume "
                                         "runs from checkpoints in datastores")
        if script is not None and command is not None:
            raise UserErrorException("ScriptRunConfig: give either script or command, not both")
        self.source_directory = source_directory
        self.script = script
        self.command = command
        if isinstance(arguments, str):
            arguments = shlex.split(arguments)
        self.arguments = list(arguments or [])
        self.distributed_job_config = None
        if run_config is not None:
            if (max_run_duration_seconds != ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT or
                    any(x is not None for x in (compute_target, environment,
                                                distributed_job_config, docker_runtime_config))):
                logging.warning(_IGNORED_WITH_RUN_CONFIG)
            for field in ("script", "arguments", "command"):
                mine, theirs = getattr(self, field), getattr(run_config, field, None)
                if theirs and mine:
                    logging.warning(_PRECEDENCE[field])
                elif theirs:
                    setattr(self, field, list(theirs) if field == "arguments" else theirs)
            self.run_config = run_config
            return
        if docker_runtime_config is not None:
            raise UnsupportedOptionError("ScriptRunConfig(docker_runtime_config=...): amld does "
                                         "not run containers yet")
        if distributed_job_config is not None and not isinstance(distributed_job_config,
                                                                 _DISTRIBUTED_TYPES):
            raise UserErrorException(
                "distributed_job_config must be an MpiConfiguration, PyTorchConfiguration or "
                "TensorflowConfiguration (amld.core.runconfig), got %s"
                % type(distributed_job_config).__name__)
        self.run_config = RunConfiguration()
        self.run_config.target = compute_target if compute_target is not None else "local"
        if environment is not None:
            self.run_config.environment = environment
        self.run_config.max_run_duration_seconds = max_run_duration_seconds
        self.distributed_job_config = distributed_job_config
        if distributed_job_config is not None:
            # As azureml: the run_config says how the run is distributed.
            rc = self.run_config
            if isinstance(distributed_job_config, TensorflowConfiguration):
                rc.node_count = distributed_job_config.worker_count
                rc.tensorflow, rc.framework = distributed_job_config, "TensorFlow"
                rc.communicator = "ParameterServer"
            elif isinstance(distributed_job_config, MpiConfiguration):
                rc.node_count = distributed_job_config.node_count
                rc.mpi, rc.framework, rc.communicator = distributed_job_config, "Python", "IntelMpi"
            else:
                backend = distributed_job_config.communication_backend or "Nccl"
                if str(backend).lower() not in ("nccl", "gloo"):
                    raise UserErrorException("PyTorchConfiguration.communication_backend must be "
                                             "\"Nccl\" or \"Gloo\", got %r" % backend)
                rc.node_count = distributed_job_config.node_count
                rc.pytorch, rc.framework, rc.communicator = (distributed_job_config, "PyTorch",
                                                             backend)

    def __setattr__(self, name, value):
        """Refuse fields azureml's ScriptRunConfig lacks, rather than keep and ignore them."""
        if name not in self._FIELDS and not name.startswith("_"):
            raise UserErrorException(
                "ScriptRunConfig has no field %r (it holds %s; the target, environment and time "
                "limit are in .run_config)" % (name, ", ".join(sorted(self._FIELDS))))
        object.__setattr__(self, name, value)

    @property
    def max_run_duration_seconds(self):
        """The run's time limit: run_config.max_run_duration_seconds (None: no limit)."""
        return self.run_config.max_run_duration_seconds

    def _command_line(self):
        command = self.command if self.command is not None else self.run_config.command
        if command is None:
            return ""
        if isinstance(command, (list, tuple)):
            return " ".join(str(part) for part in command)
        return str(command)

    def _to_proto(self, experiment_name):
        """The amld.v1.RunConfig without the snapshot and git info (added at submit)."""
        from amld.v1 import runs_pb2
        script = self.script if self.script is not None else self.run_config.script
        command = self._command_line()
        if bool(script) == bool(command):
            raise UserErrorException("ScriptRunConfig: nothing to run; give script (a file in "
                                     "source_directory) or command" if not script else
                                     "ScriptRunConfig: give either script or command, not both")
        arguments = self.arguments
        duration = self.run_config.max_run_duration_seconds
        if duration is None:
            duration = 0  # azureml's RunConfiguration default: no limit
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise UserErrorException("max_run_duration_seconds must be a non-negative integer, "
                                     "got %r" % (duration,))
        distributed = self.run_config._distributed()
        environment = self.run_config.environment
        if environment is None:
            from amld.core.runconfig import default_environment
            environment = default_environment()
        config = runs_pb2.RunConfig(
            experiment_name=experiment_name,
            script=normalize_script_path(script) if script else "",
            command=command,
            arguments=[str(a) for a in arguments],
            environment=environment._to_proto(),
            compute_target=_target_name(self.run_config.target),
            max_run_duration_seconds=duration,
        )
        if distributed is not None:
            config.distributed.CopyFrom(distributed._to_proto())
        gpus, cpus = self.run_config.gpus, self.run_config.cpus
        if gpus is not None or cpus is not None:
            # Sent even as 0: an explicit "no GPU" is not the daemon's default_gpus.
            config.resources.CopyFrom(runs_pb2.ResourceRequest(cpus=cpus or 0, gpus=gpus or 0))
        return config

    def __repr__(self):
        """The main fields."""
        return ("ScriptRunConfig(source_directory=%r, script=%r, arguments=%r, command=%r, "
                "compute_target=%r, environment=%r)" % (
                    self.source_directory, self.script, self.arguments, self.command,
                    self.run_config.target, self.run_config.environment))
