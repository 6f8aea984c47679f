"""Environment: the software a run runs with (azureml.core.Environment).

Two kinds, as in azureml: a *user-managed* environment
(``python.user_managed_dependencies = True``) runs the script with an
interpreter the machine already has (``python.interpreter_path``); a
*managed* one (``python.conda_dependencies``, from
``Environment.from_pip_requirements`` or ``from_conda_specification``) is
built by the daemon once per spec into a cached venv, and every run with the
same spec reuses it. Container images are passed to the daemon, which
refuses them by name; nothing set here is ignored.
"""

import copy

from amld.exceptions import UnsupportedOptionError, UserErrorException

class PythonSection:
    """The Python part of an Environment (azureml.core.environment.PythonSection).

    :ivar user_managed_dependencies: True: run with the interpreter as it is
        (the only kind amld runs yet). False (azureml's default) asks for a
        managed environment, which amld refuses at submit.
    :ivar interpreter_path: the interpreter to run the script with; None means
        ``python3`` from the executor's PATH.
    :ivar conda_dependencies: the packages of a managed environment
        (amld.core.conda_dependencies.CondaDependencies), built by the daemon.
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
        # amld's own: False keeps amld's azureml alias off the run's PYTHONPATH (for a script
        # that needs the real azureml-core; see amld.azureml_alias).
        self.amld_azureml_alias = True

    @staticmethod
    def get(workspace, name, version=None):
        """A registered or curated environment of the workspace (azureml's Environment.get).

        ``version`` None means the latest. Curated environments ship with
        amld ("AzureML-Minimal" and "amld-python3": the run machine's python3
        as it is). An unknown name raises NotFoundException listing the
        environments there are.
        """
        from amld.v1 import environments_pb2
        client = workspace._daemon()
        found = client.call(client.environments.GetEnvironment,
                            environments_pb2.GetEnvironmentRequest(
                                name=name, version="" if version is None else str(version)),
                            "get environment %r" % name)
        return Environment._from_proto(found.environment)

    @staticmethod
    def list(workspace):
        """The environments of the workspace, curated and registered (latest version each),
        as a dict of name → Environment."""
        from amld.v1 import environments_pb2
        client = workspace._daemon()
        response = client.call(client.environments.ListEnvironments,
                               environments_pb2.ListEnvironmentsRequest(), "list environments")
        return {e.environment.name: Environment._from_proto(e.environment)
                for e in response.environments}

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        """A managed environment with the requirements of a pip requirements file.

        As in azureml, the lines become the pip part of
        ``python.conda_dependencies``; option lines (``--index-url``,
        ``--find-links``, ``-e /abs/path``) are kept as pip options. The
        daemon builds it with the python3 of its machine (set a version with
        ``env.python.conda_dependencies.set_python_version("3.11")``).
        ``pip_version`` pins pip itself ("23.2").
        """
        from amld.core.conda_dependencies import CondaDependencies
        env = Environment(name)
        cd = CondaDependencies()
        with open(file_path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("-"):
                    cd.set_pip_option(line)
                else:
                    cd._pip.append(line)
        if pip_version is not None:
            cd.add_conda_package("pip=%s" % pip_version)
        env.python.conda_dependencies = cd
        return env

    @staticmethod
    def from_conda_specification(name, file_path):
        """A managed environment from a conda environment YAML file (name, channels,
        dependencies with an optional ``pip:`` list), as azureml's."""
        from amld.core.conda_dependencies import CondaDependencies
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(conda_dependencies_file_path=file_path)
        return env

    def register(self, workspace):
        """Stores this environment in the workspace under its name; returns it with its
        version set (azureml's register). A new name gets version 1, a changed
        environment the next version; one equal to a version already there gets
        that version back."""
        from amld.v1 import environments_pb2
        client = workspace._daemon()
        registered = client.call(client.environments.RegisterEnvironment,
                                 environments_pb2.RegisterEnvironmentRequest(
                                     environment=self._to_proto()),
                                 "register environment %r" % self.name)
        return Environment._from_proto(registered.environment)

    @staticmethod
    def _from_proto(proto):
        """The Environment an amld.v1.Environment describes."""
        from amld.core.conda_dependencies import CondaDependencies
        env = Environment(proto.name)
        env.version = proto.version or None
        env.python.user_managed_dependencies = proto.user_managed_dependencies
        env.python.interpreter_path = proto.interpreter_path or None
        env.environment_variables = dict(proto.environment_variables)
        env.docker.base_image = proto.docker_base_image or None
        env.amld_azureml_alias = not proto.azureml_alias_off
        if proto.pip_requirements or proto.conda_packages or proto.python_version:
            cd = CondaDependencies()
            if proto.python_version:
                cd.set_python_version(proto.python_version)
            for package in proto.conda_packages:
                cd._conda.append(package)
            for channel in proto.conda_channels:
                cd.add_channel(channel)
            for line in proto.pip_requirements:
                (cd._pip_options if line.startswith("-") else cd._pip).append(line)
            env.python.conda_dependencies = cd
        return env

    def clone(self, new_name):
        """A copy of this environment under a new name."""
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    def _to_proto(self):
        """The amld.v1.Environment; UnsupportedOptionError for what amld cannot express."""
        from amld.v1 import runs_pb2
        from amld.core.conda_dependencies import CondaDependencies
        conda = self.python.conda_dependencies
        if conda is not None and not isinstance(conda, CondaDependencies):
            raise UserErrorException(
                "environment %r: python.conda_dependencies must be a CondaDependencies "
                "(amld.core.CondaDependencies), got %s" % (self.name, type(conda).__name__))
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
        if managed and conda is None and not image:
            raise UnsupportedOptionError(
                "environment %r has python.user_managed_dependencies = False (a managed "
                "environment) but no packages: give it python.conda_dependencies "
                "(CondaDependencies.create(pip_packages=[...])), or set "
                "myenv.python.user_managed_dependencies = True to run with the interpreter as it "
                "is" % self.name)
        proto = runs_pb2.Environment(
            name=self.name,
            version=self.version or "",
            user_managed_dependencies=bool(self.python.user_managed_dependencies),
            interpreter_path=self.python.interpreter_path or "",
            docker_base_image=image or "",
            azureml_alias_off=not getattr(self, "amld_azureml_alias", True),
        )
        if conda is not None:
            # Sent even for a user-managed environment: the daemon refuses
            # that mix by name rather than ignoring the packages.
            conda._fill_proto(proto)
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
