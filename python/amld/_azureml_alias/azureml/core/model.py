"""azureml.core.model on amld: this module is amld.core.model itself."""
import sys

import amld.core.model

sys.modules[__name__] = amld.core.model
