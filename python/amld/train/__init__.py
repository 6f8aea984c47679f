"""The azureml.train API on amld: hyperparameter sweeps (amld.train.hyperdrive)."""
