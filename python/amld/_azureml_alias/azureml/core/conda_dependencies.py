"""azureml.core.conda_dependencies on amld: this module is amld.core.conda_dependencies itself."""
import sys

import amld.core.conda_dependencies

sys.modules[__name__] = amld.core.conda_dependencies
