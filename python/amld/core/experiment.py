"""Experiment: a named group of runs, and where runs are submitted (azureml.core.Experiment)."""

import os
import re

from amld.core.script_run_config import ScriptRunConfig
from amld.exceptions import NotFoundException, UnsupportedOptionError, UserErrorException

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Experiment:
    """A named group of runs in a workspace; created on the daemon by the first submit.

    :param workspace: the Workspace.
    :param name: letters, digits, "-", "_" and "."; 1 to 128 characters, the
        first a letter or digit.
    """

    def __init__(self, workspace, name, _skip_name_validation=False, **kwargs):
        """Refer to the experiment ``name`` of ``workspace``; nothing is sent yet."""
        if kwargs:
            raise UnsupportedOptionError("Experiment(%s): amld does not support these options"
                                         % ", ".join(sorted(kwargs)))
        if not _skip_name_validation and (not isinstance(name, str) or not _NAME.match(name)):
            raise UserErrorException(
                "experiment name %r is not valid: use 1 to 128 letters, digits, '-', '_' or '.', "
                "starting with a letter or digit"
                % (name,))
        self._workspace = workspace
        self._name = name

    @property
    def name(self):
        """The experiment's name."""
        return self._name

    @property
    def id(self):
        """The experiment's id (its name: names are unique in a workspace)."""
        return self._name

    @property
    def workspace(self):
        """The Workspace holding the experiment."""
        return self._workspace

    def submit(self, config, tags=None, **kwargs):
        """Snapshot the source folder, submit the run and return its Run (not waiting for it).

        The snapshot is made by ``aml snapshot create`` (see amld.core._snapshot):
        .amlignore/.gitignore rules apply, only files the daemon lacks are
        uploaded, and the folder's git state is recorded with the run.

        :param config: a ScriptRunConfig, or an amld.train.hyperdrive
            HyperDriveConfig (a sweep: returns a HyperDriveRun).
        :param tags: a dict of tags for the run (values become strings).
        """
        from amld.core.run import Run
        from amld.v1 import runs_pb2
        if kwargs:
            raise UnsupportedOptionError("Experiment.submit(%s): amld does not support these "
                                         "options" % ", ".join(sorted(kwargs)))
        sweep = None
        if type(config).__name__ == "HyperDriveConfig":
            from amld.train.hyperdrive import HyperDriveConfig
            if isinstance(config, HyperDriveConfig):
                sweep, config = config, config.run_config
        if not isinstance(config, ScriptRunConfig):
            raise UnsupportedOptionError(
                "Experiment.submit: amld submits ScriptRunConfig and HyperDriveConfig objects "
                "only, got %s" % type(config).__name__)
        run_config = self._run_config(config, tags)
        if sweep is not None:
            sweep._spec(run_config.sweep)
        client = self._workspace._daemon()
        response = client.call(client.runs.SubmitRun,
                               runs_pb2.SubmitRunRequest(config=run_config),
                               "submit the sweep" if sweep is not None else "submit the run")
        if sweep is not None:
            from amld.train.hyperdrive import HyperDriveRun
            return HyperDriveRun(self, response.run.id, hyperdrive_config=sweep,
                                 _run_proto=response.run)
        return Run(self, response.run.id, _run_proto=response.run)

    def _run_config(self, config, tags):
        """The RunConfig proto of a ScriptRunConfig, its source folder snapshotted."""
        from amld.core import _snapshot
        run_config = config._to_proto(self._name)
        source = os.fspath(config.source_directory)
        if not os.path.isdir(source):
            raise UserErrorException("source_directory %s does not exist or is not a folder"
                                     % source)
        if run_config.script and not os.path.isfile(os.path.join(source, run_config.script)):
            raise UserErrorException("the script %s does not exist in %s: give its path relative "
                                     "to source_directory" % (run_config.script, source))
        for key, value in (tags or {}).items():
            run_config.tags[str(key)] = str(value)
        client = self._workspace._daemon()
        info = client.get_info()
        snapshot = _snapshot.create_snapshot(client.socket_path, source, daemon_pid=info.pid)
        run_config.snapshot_root.CopyFrom(snapshot.root)
        if snapshot.git is not None:
            run_config.git.CopyFrom(snapshot.git)
        from amld.core import _submitter_env
        _submitter_env.capture(run_config.submitter_environment)
        return run_config

    def start_logging(self, *args, outputs=None, snapshot_directory=None, display_name=None,
                      **kwargs):
        """Start an interactive run (a notebook's): RUNNING until its complete() or fail().

        It has no process: log, tag, upload_file and register_model go to
        the daemon directly. Returns the Run.
        """
        from amld.core.run import Run
        from amld.v1 import runs_pb2
        if args or kwargs or outputs is not None or snapshot_directory is not None:
            raise UnsupportedOptionError(
                "Experiment.start_logging: amld takes only display_name (an interactive run has "
                "no snapshot or outputs folder; upload files with run.upload_file)")
        config = runs_pb2.RunConfig(experiment_name=self._name, interactive=True,
                                    display_name="" if display_name is None else str(display_name))
        client = self._workspace._daemon()
        response = client.call(client.runs.SubmitRun, runs_pb2.SubmitRunRequest(config=config),
                               "start an interactive run")
        return Run(self, response.run.id, _run_proto=response.run)

    def get_runs(self, type=None, tags=None, properties=None, include_children=False):
        """The experiment's runs, newest first, as a generator of Run.

        :param tags: only runs with these tags: a dict (key → value), a list
            of keys, or one key.
        """
        from amld.core.run import Run
        from amld.v1 import runs_pb2
        if type is not None or properties is not None:
            raise UnsupportedOptionError("Experiment.get_runs: filtering by type or properties "
                                         "is not supported by amld")
        client = self._workspace._daemon()
        token = ""
        while True:
            request = runs_pb2.ListRunsRequest(experiment_name=self._name, page_size=100,
                                               page_token=token)
            page = client.call(client.runs.ListRuns, request, "list the runs of " + self._name)
            for run in page.runs:
                if not include_children and run.parent_run_id:
                    continue
                if _tags_match(run.tags, tags):
                    yield Run._of(self, run)
            token = page.next_page_token
            if not token:
                return

    @staticmethod
    def list(workspace, experiment_name=None, view_type=None, tags=None):
        """The workspace's experiments (only ``experiment_name`` when given), as a list."""
        if view_type is not None or tags is not None:
            raise UnsupportedOptionError("Experiment.list: view_type and tags are not supported "
                                         "by amld")
        from amld.v1 import experiments_pb2
        client = workspace._daemon()
        if experiment_name is not None:
            try:
                client.call(client.experiments.GetExperiment,
                            experiments_pb2.GetExperimentRequest(name=experiment_name),
                            "look up experiment " + experiment_name)
            except NotFoundException:
                return []
            return [Experiment(workspace, experiment_name)]
        response = client.call(client.experiments.ListExperiments,
                               experiments_pb2.ListExperimentsRequest(), "list experiments")
        return [Experiment(workspace, e.name) for e in response.experiments]

    def __repr__(self):
        """Name and workspace."""
        return "Experiment(Name: %s, Workspace: %s)" % (self._name, self._workspace.name)


def _tags_match(run_tags, wanted):
    if not wanted:
        return True
    if isinstance(wanted, str):
        return wanted in run_tags
    if isinstance(wanted, dict):
        return all(k in run_tags and run_tags[k] == str(v) for k, v in wanted.items())
    return all(k in run_tags for k in wanted)
