"""azureml.core.run on amld: this module is amld.core.run itself."""
import sys

import amld.core.run

sys.modules[__name__] = amld.core.run
