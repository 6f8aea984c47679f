"""azureml.core.compute.amlcompute on amld: this module is amld.core.compute.amlcompute."""
import sys

import amld.core.compute.amlcompute

sys.modules[__name__] = amld.core.compute.amlcompute
