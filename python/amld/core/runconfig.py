"""Run configuration pieces (azureml.core.runconfig).

The distributed job configurations — MpiConfiguration, PyTorchConfiguration
and TensorflowConfiguration — with azureml's parameters, and a
RunConfiguration carrying what a ScriptRunConfig's ``run_config`` carries in
amld: the compute target, the environment, the time limit, and (azureml v1's
older way) the framework, communicator and node_count that make a run
distributed with its ``mpi``, ``pytorch`` or ``tensorflow`` configuration.
The daemon runs distributed configurations on one machine on the local and
SSH targets (each process's output in user_logs/std_log_process_<rank>.txt)
and on several nodes on Slurm targets, and refuses more nodes elsewhere by
name (UNIMPLEMENTED); they are never dropped.
"""

from amld.core.environment import Environment
from amld.exceptions import UnsupportedOptionError, UserErrorException


def _positive(owner, field, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserErrorException("%s.%s must be an integer of at least %d, got %r"
                                 % (owner, field, minimum, value))
    return value


class MpiConfiguration:
    """An MPI job: the script is started by mpirun (azureml MpiConfiguration).

    :param process_count_per_node: processes on each node.
    :param node_count: nodes.
    """

    def __init__(self, process_count_per_node=1, node_count=1):
        """azureml's defaults: one process on one node."""
        self.process_count_per_node = process_count_per_node
        self.node_count = node_count

    def _to_proto(self):
        """The amld.v1.DistributedConfig."""
        from amld.v1 import runs_pb2
        return runs_pb2.DistributedConfig(mpi=runs_pb2.MpiConfiguration(
            process_count_per_node=_positive("MpiConfiguration", "process_count_per_node",
                                             self.process_count_per_node),
            node_count=_positive("MpiConfiguration", "node_count", self.node_count)))

    def __repr__(self):
        """The configuration's fields."""
        return "MpiConfiguration(process_count_per_node=%r, node_count=%r)" % (
            self.process_count_per_node, self.node_count)


class PyTorchConfiguration:
    """A PyTorch distributed job (azureml PyTorchConfiguration).

    Each process gets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK
    and NODE_RANK.

    :param communication_backend: "Nccl" or "Gloo" (any case).
    :param process_count: total processes; None means node_count.
    :param node_count: nodes.
    """

    def __init__(self, communication_backend="Nccl", process_count=None, node_count=1):
        """azureml's defaults: NCCL, one process per node, one node."""
        self.communication_backend = communication_backend
        self.process_count = process_count
        self.node_count = node_count

    def _to_proto(self):
        """The amld.v1.DistributedConfig."""
        from amld.v1 import runs_pb2
        backend = str(self.communication_backend or "Nccl").lower()
        if backend not in ("nccl", "gloo"):
            raise UserErrorException("PyTorchConfiguration.communication_backend must be "
                                     "\"Nccl\" or \"Gloo\", got %r" % self.communication_backend)
        nodes = _positive("PyTorchConfiguration", "node_count", self.node_count)
        processes = nodes if self.process_count is None else self.process_count
        return runs_pb2.DistributedConfig(pytorch=runs_pb2.PyTorchConfiguration(
            communication_backend=backend,
            process_count=_positive("PyTorchConfiguration", "process_count", processes),
            node_count=nodes))

    def __repr__(self):
        """The configuration's fields."""
        return "PyTorchConfiguration(communication_backend=%r, process_count=%r, node_count=%r)" % (
            self.communication_backend, self.process_count, self.node_count)


class TensorflowConfiguration:
    """A TensorFlow parameter-server job (azureml TensorflowConfiguration); processes get TF_CONFIG.

    :param worker_count: worker tasks.
    :param parameter_server_count: parameter-server tasks.
    """

    def __init__(self, worker_count=1, parameter_server_count=1):
        """azureml's defaults: one worker, one parameter server."""
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count

    def _to_proto(self):
        """The amld.v1.DistributedConfig."""
        from amld.v1 import runs_pb2
        return runs_pb2.DistributedConfig(tensorflow=runs_pb2.TensorflowConfiguration(
            worker_count=_positive("TensorflowConfiguration", "worker_count", self.worker_count),
            parameter_server_count=_positive("TensorflowConfiguration", "parameter_server_count",
                                             self.parameter_server_count, minimum=0)))

    def __repr__(self):
        """The configuration's fields."""
        return "TensorflowConfiguration(worker_count=%r, parameter_server_count=%r)" % (
            self.worker_count, self.parameter_server_count)


def default_environment():
    """The environment of a run that names none: user-managed, the executor's python3."""
    env = Environment("amld-default")
    env.python.user_managed_dependencies = True
    return env


# azureml RunConfiguration fields amld does not act on, and what to do instead.
_UNSUPPORTED_FIELDS = {
    "docker": "amld does not run containers yet",
    "environment_variables": "set run_config.environment.environment_variables instead",
    "history": "amld always keeps a run's outputs/, logs/ and snapshot",
    "data": "amld has no datasets", "data_references": "amld has no datastores",
    "output_data": "amld has no datasets", "datacaches": "amld has no datastores",
    "source_directory_data_store": "amld has no datastores",
    "amlcompute": "amld provisions no clusters; name a compute target in run_config.target",
    "kubernetescompute": "amld has no Kubernetes targets",
    "spark": "amld does not run Spark", "hdi": "amld does not run HDInsight",
    "paralleltask": "amld has no parallel-run steps",
    "services": "amld does not start services beside a run",
    "credential_passthrough": "runs run as their submitter's user",
    "priority": "amld's priority is -100..100: use `aml run submit --priority`",
}


# azureml's communicators (RunConfiguration.communicator), by lower-case name → the distributed
# configuration they start. ScriptRunConfig(distributed_job_config=...) sets them as azureml does.
_MPI_COMMUNICATORS = ("intelmpi", "openmpi", "mpi")
_PYTORCH_COMMUNICATORS = ("nccl", "gloo")
_FRAMEWORKS = ("python", "pytorch", "tensorflow")


def _lower(value):
    return str(value).lower() if value is not None else None


def _count(field, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise UserErrorException("RunConfiguration.%s must be a non-negative integer or None, "
                                 "got %r" % (field, value))
    return value


class RunConfiguration:
    """Where and with what a script runs (the parts of azureml's RunConfiguration amld uses).

    :ivar target: the compute target's name; "local" runs on the daemon's machine.
    :ivar environment: the Environment; by default user-managed with the
        executor's python3 (set ``environment.python.interpreter_path`` for another).
    :ivar node_count: nodes of a distributed run (azureml's precedence: this, not the
        ``mpi``/``pytorch`` configuration's own node_count, which must agree).
    :ivar framework: "Python" (default), "PyTorch" or "TensorFlow".
    :ivar communicator: "None" (default: one process), "IntelMpi"/"OpenMpi"/"Mpi" (mpirun with
        ``mpi.process_count_per_node`` processes on each of ``node_count`` nodes), "Nccl"/"Gloo"
        with framework "PyTorch" (``pytorch.process_count`` processes), or "ParameterServer"
        with framework "TensorFlow" (``tensorflow``'s workers and parameter servers) — the
        same runs ScriptRunConfig(distributed_job_config=...) makes.
    :ivar mpi: an MpiConfiguration; :ivar pytorch: a PyTorchConfiguration;
    :ivar tensorflow: a TensorflowConfiguration (azureml's defaults).
    :ivar max_run_duration_seconds: the run is canceled after this long (None: no limit).
    :ivar gpus: (amld) GPUs the run gets to itself, through CUDA_VISIBLE_DEVICES;
        None means the daemon's default (amld.yaml ``runs.default_gpus``, else 0).
    :ivar cpus: (amld) CPU slots the run holds; None means 1.

    Other azureml fields (docker, data, history, ...) raise
    UnsupportedOptionError saying what amld does instead; unknown names raise
    UserErrorException: nothing set is silently ignored.
    """

    _FIELDS = frozenset(("script", "arguments", "command", "target", "environment", "node_count",
                         "max_run_duration_seconds", "framework", "communicator", "gpus", "cpus",
                         "mpi", "pytorch", "tensorflow"))

    def __init__(self, script=None, arguments=None, framework=None, communicator=None,
                 conda_dependencies=None, _history_enabled=None, _path=None, _name=None,
                 command=None):
        """A local, single-node configuration with the default environment.

        conda_dependencies, and a framework or communicator amld cannot run
        ("PySpark", "ParallelTask", ...), raise.
        """
        if conda_dependencies is not None:
            raise UnsupportedOptionError("RunConfiguration(conda_dependencies=...): amld does not "
                                         "build conda environments")
        self.framework = framework
        self.communicator = communicator
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.target = "local"
        self.environment = default_environment()
        self.node_count = 1
        self.mpi = MpiConfiguration()
        self.pytorch = PyTorchConfiguration()
        self.tensorflow = TensorflowConfiguration()
        self.max_run_duration_seconds = None
        self.gpus = None
        self.cpus = None

    def __setattr__(self, name, value):
        """Keep the fields amld uses; refuse the rest by name."""
        if name == "framework" and value is not None and _lower(value) not in _FRAMEWORKS:
            raise UnsupportedOptionError("RunConfiguration(framework=%r): amld runs Python "
                                         "scripts or commands (framework \"Python\", "
                                         "\"PyTorch\" or \"TensorFlow\") only" % value)
        if name == "communicator" and value is not None and _lower(value) not in (
                ("none", "parameterserver") + _MPI_COMMUNICATORS + _PYTORCH_COMMUNICATORS):
            raise UnsupportedOptionError(
                "RunConfiguration(communicator=%r): amld runs \"None\", \"IntelMpi\", "
                "\"OpenMpi\", \"Mpi\", \"Nccl\", \"Gloo\" and \"ParameterServer\"" % value)
        for field, kind in (("mpi", MpiConfiguration), ("pytorch", PyTorchConfiguration),
                            ("tensorflow", TensorflowConfiguration)):
            if name == field and not isinstance(value, kind):
                raise UserErrorException("RunConfiguration.%s must be a %s, got %s"
                                         % (field, kind.__name__, type(value).__name__))
        if name in ("gpus", "cpus"):
            value = _count(name, value)
        if name in _UNSUPPORTED_FIELDS:
            raise UnsupportedOptionError("RunConfiguration.%s: %s" % (name,
                                                                     _UNSUPPORTED_FIELDS[name]))
        if name not in self._FIELDS and not name.startswith("_"):
            raise UserErrorException("RunConfiguration has no field %r; amld's holds %s"
                                     % (name, ", ".join(sorted(self._FIELDS))))
        object.__setattr__(self, name, value)

    def _distributed(self):
        """The distributed configuration framework, communicator and node_count ask for, as
        azureml reads them (ScriptRunConfig(distributed_job_config=X) sets them from X); None
        for one process. Refuses, naming the fields, what does not map."""
        communicator = _lower(self.communicator) or "none"
        framework = _lower(self.framework) or "python"
        nodes = self.node_count if self.node_count is not None else 1
        if communicator == "none":
            if nodes != 1:
                raise UnsupportedOptionError(
                    "run_config.node_count=%r with communicator \"None\": a run on several "
                    "nodes needs a communicator (e.g. \"IntelMpi\" with run_config.mpi, or "
                    "framework \"PyTorch\" with \"Nccl\"/\"Gloo\"), or give "
                    "ScriptRunConfig(distributed_job_config=...)" % nodes)
            return None

        def same_nodes(field, config):
            if config.node_count not in (1, nodes):
                raise UserErrorException(
                    "run_config.%s.node_count=%r but run_config.node_count=%r: azureml runs "
                    "run_config.node_count nodes; set both to the same number"
                    % (field, config.node_count, nodes))

        if communicator in _MPI_COMMUNICATORS:
            same_nodes("mpi", self.mpi)
            return MpiConfiguration(process_count_per_node=self.mpi.process_count_per_node,
                                    node_count=nodes)
        if communicator in _PYTORCH_COMMUNICATORS:
            if framework != "pytorch":
                raise UnsupportedOptionError(
                    "run_config.communicator=%r with framework %r: the %s backend is PyTorch's; "
                    "set run_config.framework = \"PyTorch\"" % (self.communicator,
                                                                 self.framework or "Python",
                                                                 self.communicator))
            same_nodes("pytorch", self.pytorch)
            return PyTorchConfiguration(communication_backend=self.communicator,
                                        process_count=self.pytorch.process_count,
                                        node_count=nodes)
        # "parameterserver"
        if framework != "tensorflow":
            raise UnsupportedOptionError(
                "run_config.communicator=\"ParameterServer\" with framework %r: amld runs "
                "parameter servers for TensorFlow only; set run_config.framework = "
                "\"TensorFlow\"" % (self.framework or "Python"))
        return TensorflowConfiguration(
            worker_count=self.tensorflow.worker_count,
            parameter_server_count=self.tensorflow.parameter_server_count)

    def __getattr__(self, name):
        """Reading an azureml field amld does not act on says so (e.g. run_config.docker)."""
        if name in _UNSUPPORTED_FIELDS:
            raise UnsupportedOptionError("RunConfiguration.%s: %s" % (name,
                                                                     _UNSUPPORTED_FIELDS[name]))
        raise AttributeError("RunConfiguration has no field %r" % name)

    def __repr__(self):
        """The configuration's target and environment."""
        return "RunConfiguration(target=%r, environment=%r)" % (self.target, self.environment)
