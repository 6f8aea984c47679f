"""Environment: the software a run runs with (azureml.core.Environment).

amld runs scripts with an interpreter the machine already has: a
*user-managed* environment (``python.user_managed_dependencies = True``),
optionally with ``python.interpreter_path`` and ``environment_variables``.
Managed environments (conda, pip requirements) and container images are
passed to the daemon, which refuses them by name until it supports them;
nothing set here is ignored.
"""

import copy

from amld.exceptions import NotFoundException, UnsupportedOptionError, UserErrorException

# amld's curated environments, by name: the executor's python3 as it is.
# AzureML-Minimal is Azure ML's smallest curated environment (Python and
# azureml-defaults in a container); amld's stand-in is the python3 of the
# machine the run runs on, so code that asks for it runs unchanged.
_CURATED = ("AzureML-Minimal", "amld-python3")
_CURATED_VERSION = "1"


class PythonSection:
    """The Python part of an Environment (azureml.core.environment.PythonSection).

    :ivar user_managed_dependencies: True: run with the interpreter as it is
        (the only kind amld runs yet). False (azureml's default) asks for a
        managed environment, which amld refuses at submit.
    :ivar interpreter_path: the interpreter to run the script with; None means
        ``python3`` from the executor's PATH.
    :ivar conda_dependencies: azureml's CondaDependencies; amld has no conda
        support, so setting it is refused at submit.
    """

    def __init__(self):
        """azureml's defaults, except interpreter_path (None: the executor's python3)."""
        self.user_managed_dependencies = False
        self.interpreter_path = None
        self.conda_dependencies = None

    def __repr__(self):
        """The section's fields."""
        return "PythonSection(user_managed_dependencies=%r, interpreter_path=%r)" % (
            self.user_managed_dependencies, self.interpreter_path)


class DockerSection:
    """The container part of an Environment (azureml.core.environment.DockerSection).

    Setting ``base_image`` (or ``enabled``) asks for a container; the daemon
    refuses that by name until it supports containers.
    """

    def __init__(self):
        """No container: enabled False, no base image, no Dockerfile."""
        self.enabled = False
        self.base_image = None
        self.base_dockerfile = None

    def __repr__(self):
        """The section's fields."""
        return "DockerSection(enabled=%r, base_image=%r)" % (self.enabled, self.base_image)


class Environment:
    """A named software environment for runs.

    :param name: the environment's name, e.g. "user-managed-env".
    """

    def __init__(self, name, **kwargs):
        """An environment with azureml's defaults (set python.user_managed_dependencies)."""
        if kwargs:
            raise UnsupportedOptionError("Environment(%s): amld does not support these options"
                                         % ", ".join(sorted(kwargs)))
        if not isinstance(name, str) or not name:
            raise UserErrorException("an Environment needs a non-empty name")
        self.name = name
        self.version = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables = {}
        self._pip_requirements = []

    @staticmethod
    def get(workspace, name, version=None):
        """A curated environment of the workspace by name, as azureml's Environment.get.

        amld's curated environments are user-managed: "AzureML-Minimal" and
        "amld-python3" both run scripts with the executor machine's python3.
        Other names raise NotFoundException listing the ones there are.
        """
        if name not in _CURATED:
            raise NotFoundException(
                "environment %r is not in this workspace; amld has the curated environments %s. "
                "For your own interpreter, use Environment(name) with "
                "python.user_managed_dependencies = True (and python.interpreter_path)"
                % (name, ", ".join(_CURATED)), code="NOT_FOUND")
        if version is not None and str(version) != _CURATED_VERSION:
            raise NotFoundException("environment %r has only version %s, not %r"
                                    % (name, _CURATED_VERSION, version), code="NOT_FOUND")
        env = Environment(name)
        env.version = _CURATED_VERSION
        env.python.user_managed_dependencies = True
        return env

    @staticmethod
    def list(workspace):
        """The environments of the workspace (the curated ones), as a dict of name → Environment."""
        return {name: Environment.get(workspace, name) for name in _CURATED}

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        """An environment from a pip requirements file (managed; refused at submit for now)."""
        if pip_version is not None:
            raise UnsupportedOptionError("Environment.from_pip_requirements: pip_version is not "
                                         "supported by amld")
        env = Environment(name)
        with open(file_path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    env._pip_requirements.append(line)
        return env

    def register(self, workspace):
        """Not available: amld has no environment registry yet (pass the Environment itself)."""
        raise UnsupportedOptionError(
            "Environment.register: amld has no environment registry yet; pass the Environment "
            "object to ScriptRunConfig(environment=...) instead")

    def clone(self, new_name):
        """A copy of this environment under a new name."""
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    def _to_proto(self):
        """The amld.v1.Environment; UnsupportedOptionError for what amld cannot express."""
        from amld.v1 import runs_pb2
        if self.python.conda_dependencies is not None:
            raise UnsupportedOptionError(
                "environment %r sets python.conda_dependencies: amld does not build conda "
                "environments; use a user-managed environment (python.user_managed_dependencies "
                "= True) whose interpreter has the packages" % self.name)
        if self.docker.base_dockerfile:
            raise UnsupportedOptionError(
                "environment %r sets docker.base_dockerfile: amld does not build images"
                % self.name)
        image = self.docker.base_image
        if self.docker.enabled and not image:
            raise UnsupportedOptionError(
                "environment %r sets docker.enabled without docker.base_image: amld has no "
                "default image; set docker.base_image or leave docker disabled" % self.name)
        managed = not self.python.user_managed_dependencies
        if managed and not self._pip_requirements and not image:
            raise UnsupportedOptionError(
                "environment %r has python.user_managed_dependencies = False (a managed "
                "environment, which amld does not build yet): set "
                "myenv.python.user_managed_dependencies = True to run with the interpreter as it "
                "is" % self.name)
        proto = runs_pb2.Environment(
            name=self.name,
            version=self.version or "",
            user_managed_dependencies=bool(self.python.user_managed_dependencies),
            interpreter_path=self.python.interpreter_path or "",
            pip_requirements=list(self._pip_requirements),
            docker_base_image=image or "",
        )
        for key, value in (self.environment_variables or {}).items():
            if not isinstance(key, str):
                raise UserErrorException("environment %r: variable names must be strings, got %r"
                                         % (self.name, key))
            proto.environment_variables[key] = str(value)
        return proto

    def __repr__(self):
        """The environment's name, version and sections."""
        return ("Environment(name=%r, version=%r, python=%r, docker=%r, environment_variables=%r)"
                % (self.name, self.version, self.python, self.docker,
                   self.environment_variables))
