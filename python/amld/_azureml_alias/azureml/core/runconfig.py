"""azureml.core.runconfig on amld: this module is amld.core.runconfig itself."""
import sys

import amld.core.runconfig

sys.modules[__name__] = amld.core.runconfig
