"""azureml.core.compute.remote on amld: this module is amld.core.compute.remote."""
import sys

import amld.core.compute.remote

sys.modules[__name__] = amld.core.compute.remote
