"""amld's stand-in for the azureml package (azureml-core v1): ``azureml.core``,
``azureml.core.compute``, ``azureml.train.hyperdrive`` and ``azureml.exceptions``
resolve to amld's SDK, so a script written for Azure ML runs against amld
unchanged. Put on a run's Python path by the daemon (unless its environment
opts out) or, on the submitting side, by ``python3 -m amld.azureml_alias install``.
It shadows an installed azureml-core: uninstall the alias to reach that one.
"""
try:
    import amld.core  # noqa: F401  (the SDK must be importable)
except ImportError as e:
    raise ImportError(
        "azureml here is amld's alias of its SDK, but the amld package is not importable in "
        "this Python (%s); install it (pip install <amld>/python) in the run's environment" % e
    ) from None
