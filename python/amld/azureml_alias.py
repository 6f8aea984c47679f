"""The opt-in azureml alias for the submitting side: ``from azureml.core import ...`` in a
notebook resolves to amld's SDK, so the notebook runs unchanged.

    python3 -m amld.azureml_alias install     # a .pth file in this Python's site-packages
    python3 -m amld.azureml_alias uninstall
    python3 -m amld.azureml_alias path        # the folder to put on PYTHONPATH instead

What it shadows: the packages ``azureml``, ``azureml.core`` (and its modules
run, model, workspace, experiment, environment, runconfig, script_run_config,
conda_dependencies, compute_target, compute), ``azureml.train.hyperdrive`` and
``azureml.exceptions``. An installed azureml-core (or any other azureml.*
package: azureml-mlflow, azureml-dataprep) is hidden while the alias comes
first on the path; uninstall the alias to reach it again. Inside runs, the
daemon puts the same folder on the run's PYTHONPATH unless the run's
environment sets ``amld_azureml_alias = False``.
"""

import os
import site
import sys

PTH_NAME = "amld-azureml-alias.pth"


def alias_dir():
    """The folder holding amld's ``azureml`` package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_azureml_alias")


def _pth_path():
    folders = site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if sys.prefix == sys.base_prefix and os.access(folders[0] if folders else "/", os.W_OK):
        return os.path.join(folders[0], PTH_NAME)
    if sys.prefix != sys.base_prefix and folders:  # a virtual environment
        return os.path.join(folders[0], PTH_NAME)
    return os.path.join(site.getusersitepackages(), PTH_NAME)


def install():
    """Write the .pth file that puts the alias on this Python's path; returns its path."""
    path = _pth_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(alias_dir() + "\n")
    return path


def uninstall():
    """Remove the .pth file; returns its path, or None when there was none."""
    for folder in list(site.getsitepackages()) + [site.getusersitepackages()]:
        path = os.path.join(folder, PTH_NAME)
        if os.path.exists(path):
            os.unlink(path)
            return path
    return None


def main(argv):
    """`python3 -m amld.azureml_alias install|uninstall|path`; returns the exit code."""
    if argv == ["install"]:
        print("installed %s: `import azureml` now gives amld's alias (%s)"
              % (install(), alias_dir()))
    elif argv == ["uninstall"]:
        path = uninstall()
        print("removed %s" % path if path else "the alias was not installed")
    elif argv == ["path"]:
        print(alias_dir())
    else:
        print(__doc__.strip())
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
