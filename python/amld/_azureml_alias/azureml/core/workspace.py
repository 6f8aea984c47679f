"""azureml.core.workspace on amld: this module is amld.core.workspace itself."""
import sys

import amld.core.workspace

sys.modules[__name__] = amld.core.workspace
