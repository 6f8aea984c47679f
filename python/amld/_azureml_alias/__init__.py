"""The folder put on Python's path to make ``import azureml`` amld's alias (see amld.azureml_alias)."""
