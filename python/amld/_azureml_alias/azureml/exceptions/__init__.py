"""azureml.exceptions on amld: the same exception classes as amld.exceptions."""
from amld.exceptions import *  # noqa: F401,F403
