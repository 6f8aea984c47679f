"""Tiny local packages as wheels: the offline package index of the managed-environment tests
(test_environments.py, the e2e tests' WriteEnvironmentJob) and of bench/env_bench.py.

    python3 tests/python/wheelhouse.py DIR [NAME...]    (default: amldtest-beta amldtest-alpha)

amldtest-alpha depends on amldtest-beta (alpha's hello() says "alpha sees beta 42");
amldtest-gamma stands alone. Built with `pip wheel` from sources written under DIR/src: no
network, no build isolation.
"""

import json
import os
import subprocess
import sys

# The system's Python has setuptools (the tests run with it); another one on PATH may not.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

PACKAGES = {
    "amldtest-beta": ("amldtest_beta", [], "def value():\n    return 41\n"),
    "amldtest-alpha": ("amldtest_alpha", ["amldtest-beta"],
                       "import amldtest_beta\n\ndef hello():\n"
                       "    return 'alpha sees beta %d' % (amldtest_beta.value() + 1)\n"),
    "amldtest-gamma": ("amldtest_gamma", [], "NAME = 'gamma'\n"),
}


def build_wheel(name, wheelhouse, root):
    """The wheel of package `name` into `wheelhouse`, from its source written under root/src."""
    module, deps, code = PACKAGES[name]
    src = os.path.join(root, "src", name)
    os.makedirs(os.path.join(src, module))
    with open(os.path.join(src, module, "__init__.py"), "w") as f:
        f.write(code)
    with open(os.path.join(src, "pyproject.toml"), "w") as f:
        f.write('[build-system]\nrequires = ["setuptools"]\nbuild-backend = '
                '"setuptools.build_meta"\n\n[project]\nname = "%s"\nversion = "1.0"\n'
                'dependencies = %s\n\n[tool.setuptools]\npackages = ["%s"]\n'
                % (name, json.dumps(deps), module))
    subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-index",
                    "--no-build-isolation", "--disable-pip-version-check", "-q",
                    "-w", wheelhouse, src], check=True, capture_output=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for package in sys.argv[2:] or ["amldtest-beta", "amldtest-alpha"]:
        build_wheel(package, sys.argv[1], sys.argv[1])
