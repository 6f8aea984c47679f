"""azureml.core.script_run_config on amld: this module is amld.core.script_run_config itself."""
import sys

import amld.core.script_run_config

sys.modules[__name__] = amld.core.script_run_config
