"""azureml.core.environment on amld: this module is amld.core.environment itself."""
import sys

import amld.core.environment

sys.modules[__name__] = amld.core.environment
