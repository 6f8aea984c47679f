"""azureml.core on amld: the same names, from amld.core."""
from amld.core import *  # noqa: F401,F403
from amld.core import __all__  # noqa: F401
