"""azureml.core.compute_target on amld: this module is amld.core.compute_target itself."""
import sys

import amld.core.compute_target

sys.modules[__name__] = amld.core.compute_target
