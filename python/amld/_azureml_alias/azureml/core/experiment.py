"""azureml.core.experiment on amld: this module is amld.core.experiment itself."""
import sys

import amld.core.experiment

sys.modules[__name__] = amld.core.experiment
