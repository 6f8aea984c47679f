"""azureml.train on amld (hyperdrive only)."""
