"""CondaDependencies: a managed environment's packages (azureml.core.conda_dependencies).

The same object as azureml's: a conda environment specification (name,
channels, conda packages, a ``pip:`` list) that can be created in memory
(``CondaDependencies.create``), edited (``add_pip_package``,
``add_conda_package``, ``add_channel``, ``set_python_version``, ...) or loaded
from a conda environment YAML file (``CondaDependencies(path)``), and that
serializes back to that YAML.

Where amld differs from azureml, and why:

- azureml adds ``azureml-defaults`` (its run-time packages) to every spec;
  amld does not, because its runs need nothing besides the script's own
  packages (``Run.get_context`` comes from amld itself). Nothing the user
  asked for is dropped.
- The daemon builds the spec as a venv of the requested Python with the pip
  packages. Conda packages other than ``python`` and ``pip`` need a conda
  tool in the daemon's configuration (``environments.conda_path`` in
  amld.yaml); without one the submit is refused with a message naming them.
- ``create(python_version=None)`` means the python3 of the machine that
  builds the environment (azureml pins a version of its own).
"""

import copy

from amld.exceptions import UserErrorException

_DEFAULT_NAME = "project_environment"


def _package_name(spec):
    """"numpy=1.26" → "numpy" (conda's and pip's version operators)."""
    for i, ch in enumerate(spec):
        if ch in "=<>!~ [;@":
            return spec[:i].strip().lower()
    return spec.strip().lower()


class CondaDependencies:
    """A conda environment specification, as azureml's CondaDependencies.

    :param conda_dependencies_file_path: a conda environment YAML file to
        load; None starts an empty spec (no packages, no channels).
    """

    def __init__(self, conda_dependencies_file_path=None, _underlying_structure=None):
        """Loads the file, or starts empty."""
        if conda_dependencies_file_path is not None and _underlying_structure is not None:
            raise UserErrorException("give a file or a structure, not both")
        if conda_dependencies_file_path is not None:
            _underlying_structure = _load_yaml(conda_dependencies_file_path)
        self._name = _DEFAULT_NAME
        self._channels = []
        self._conda = []
        self._pip = []
        self._pip_options = []
        if _underlying_structure is not None:
            self._read(_underlying_structure, conda_dependencies_file_path or "<structure>")

    def _read(self, data, source):
        if not isinstance(data, dict):
            raise UserErrorException("%s: a conda environment file is a mapping with "
                                     "'dependencies' (and optionally 'name', 'channels')" % source)
        unknown = sorted(set(data) - {"name", "channels", "dependencies", "prefix", "variables"})
        if unknown:
            raise UserErrorException("%s: unknown keys %s; a conda environment file has name, "
                                     "channels and dependencies" % (source, ", ".join(unknown)))
        if data.get("variables"):
            raise UserErrorException("%s: 'variables' is not supported; set "
                                     "Environment.environment_variables instead" % source)
        self._name = str(data.get("name") or _DEFAULT_NAME)
        self._channels = [str(c) for c in (data.get("channels") or [])]
        for item in data.get("dependencies") or []:
            if isinstance(item, dict):
                if set(item) != {"pip"}:
                    raise UserErrorException("%s: a mapping among dependencies must be the "
                                             "'pip:' list, got %s" % (source, sorted(item)))
                for line in item["pip"] or []:
                    line = str(line).strip()
                    if line.startswith("-"):
                        self._pip_options.append(line)
                    elif line:
                        self._pip.append(line)
            else:
                self._conda.append(str(item).strip())

    @staticmethod
    def create(pip_indexurl=None, pip_packages=None, conda_packages=None, python_version=None,
               pin_sdk_version=True):
        """A spec with these packages (azureml's CondaDependencies.create).

        :param pip_indexurl: an index URL for pip (``--index-url``).
        :param pip_packages: pip requirements, e.g. ["numpy==1.26", "alpha"].
        :param conda_packages: conda packages, e.g. ["scipy"].
        :param python_version: "3.11"; None: the building machine's python3.
        :param pin_sdk_version: accepted for compatibility; amld adds no SDK package.
        """
        cd = CondaDependencies()
        if python_version:
            cd.set_python_version(python_version)
        for package in conda_packages or []:
            cd.add_conda_package(package)
        for package in pip_packages or []:
            cd.add_pip_package(package)
        if pip_indexurl:
            cd.set_pip_option("--index-url " + pip_indexurl)
        return cd

    @staticmethod
    def merge_requirements(requirements):
        """Requirements with duplicates removed, first kept (azureml's helper)."""
        seen, merged = set(), []
        for r in requirements:
            if r not in seen:
                seen.add(r)
                merged.append(r)
        return merged

    def add_pip_package(self, pip_package):
        """Adds a pip requirement; one for the same package replaces it."""
        name = _package_name(pip_package)
        self._pip = [p for p in self._pip if _package_name(p) != name] + [pip_package.strip()]

    def remove_pip_package(self, pip_package):
        """Removes the pip requirement of that package."""
        name = _package_name(pip_package)
        self._pip = [p for p in self._pip if _package_name(p) != name]

    def add_conda_package(self, conda_package):
        """Adds a conda package; one for the same package replaces it."""
        name = _package_name(conda_package)
        self._conda = [p for p in self._conda if _package_name(p) != name] + [
            conda_package.strip()]

    def remove_conda_package(self, conda_package):
        """Removes the conda package of that name."""
        name = _package_name(conda_package)
        self._conda = [p for p in self._conda if _package_name(p) != name]

    def add_channel(self, channel):
        """Adds a conda channel (kept in order, once)."""
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_channel(self, channel):
        """Removes a conda channel."""
        self._channels = [c for c in self._channels if c != channel]

    def set_pip_option(self, pip_option):
        """Adds a pip option line ("--index-url URL", "--find-links DIR", "-e /path");
        an option of the same name replaces the earlier one, except repeatable ones."""
        option = pip_option.strip()
        name = option.split()[0].split("=")[0]
        if name not in ("--extra-index-url", "--find-links", "-f", "-e", "--editable",
                        "--trusted-host"):
            self._pip_options = [o for o in self._pip_options
                                 if o.split()[0].split("=")[0] != name]
        self._pip_options.append(option)

    def set_python_version(self, version):
        """Sets the Python version (the conda package python=VERSION)."""
        self.add_conda_package("python=%s" % version)

    def get_python_version(self):
        """The Python version asked for, or None."""
        for p in self._conda:
            if _package_name(p) == "python":
                version = p[len("python"):].lstrip("=").strip()
                return version or None
        return None

    @property
    def conda_packages(self):
        """The conda packages (python included), in order."""
        return iter(list(self._conda))

    @property
    def pip_packages(self):
        """The pip requirements, in order."""
        return iter(list(self._pip))

    @property
    def conda_channels(self):
        """The conda channels, in order."""
        return iter(list(self._channels))

    @property
    def pip_options(self):
        """The pip option lines."""
        return iter(list(self._pip_options))

    def _as_dict(self):
        deps = list(self._conda)
        pip = list(self._pip_options) + list(self._pip)
        if pip:
            if not any(_package_name(p) == "pip" for p in deps):
                deps.append("pip")
            deps.append({"pip": pip})
        data = {"name": self._name, "dependencies": deps}
        if self._channels:
            data["channels"] = list(self._channels)
        return data

    def serialize_to_string(self):
        """The spec as conda environment YAML."""
        lines = ["name: %s" % self._name]
        data = self._as_dict()
        if "channels" in data:
            lines.append("channels:")
            lines.extend("  - %s" % c for c in data["channels"])
        lines.append("dependencies:")
        for d in data["dependencies"]:
            if isinstance(d, dict):
                lines.append("  - pip:")
                lines.extend("    - %s" % p for p in d["pip"])
            else:
                lines.append("  - %s" % d)
        return "\n".join(lines) + "\n"

    def save(self, path=None):
        """Writes the YAML to ``path`` (azureml's save_to_file takes a folder and name)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def _fill_proto(self, proto):
        """Puts the spec into an amld.v1.Environment: conda packages, channels, pip lines."""
        proto.conda_packages.extend(self._conda)
        proto.conda_channels.extend(self._channels)
        proto.pip_requirements.extend(list(self._pip_options) + list(self._pip))

    def __eq__(self, other):
        """Same packages, channels and options."""
        return isinstance(other, CondaDependencies) and self._as_dict() == other._as_dict()

    def __deepcopy__(self, memo):
        """A copy whose lists are its own."""
        c = CondaDependencies()
        c.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return c

    def __repr__(self):
        """The YAML."""
        return self.serialize_to_string()


def _load_yaml(path):
    try:
        import yaml
    except ImportError:
        raise UserErrorException("reading %s needs PyYAML (pip install pyyaml)" % path) from None
    with open(path, encoding="utf-8") as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise UserErrorException("%s is not valid YAML: %s" % (path, e)) from None
