"""ComputeTarget: the base class, lookup by name, list, attach, create, delete.

As in azureml, ``ComputeTarget(workspace, name)`` returns an instance of the
subclass that matches the target's kind; each subclass registers the proto
field it stands for (``_KIND``) in ``_CLASSES``.
"""

from amld.exceptions import ComputeTargetException, NotFoundException, UserErrorException

_CLASSES = {}  # proto oneof name ("local", "ssh", "slurm") → subclass


def _register(cls):
    _CLASSES[cls._KIND] = cls
    return cls


def _stub(workspace):
    return workspace._daemon().compute


def _call(workspace, method, request, doing):
    """A ComputeTargets call; the daemon's refusals become ComputeTargetException."""
    try:
        return workspace._daemon().call(method, request, doing)
    except (NotFoundException, UserErrorException) as e:
        raise ComputeTargetException(e.message, code=e.code) from None


def _from_proto(workspace, target):
    kind = target.WhichOneof("kind")
    cls = _CLASSES.get(kind)
    if cls is None:
        raise ComputeTargetException(
            "compute target %r is of a kind (%s) this SDK does not know: update the amld "
            "SDK to the daemon's version" % (target.name, kind))
    obj = object.__new__(cls)
    obj._init(workspace, target)
    return obj


class ComputeTarget:
    """A named compute target of the workspace's daemon (azureml.core.compute.ComputeTarget).

    :param workspace: the Workspace.
    :param name: the target's name.
    :raises ComputeTargetException: when the daemon has no target of that name.
    """

    _KIND = None
    _TYPE = None

    def __new__(cls, workspace, name):
        """Look the target up; return an instance of the subclass of its kind."""
        from amld.v1 import compute_pb2
        target = _call(workspace, _stub(workspace).GetComputeTarget,
                       compute_pb2.GetComputeTargetRequest(name=name),
                       "get compute target %s" % name)
        obj = _from_proto(workspace, target)
        if cls is not ComputeTarget and not isinstance(obj, cls):
            raise ComputeTargetException(
                "compute target %r is a %s, not a %s" % (name, type(obj).__name__, cls.__name__))
        return obj

    def __init__(self, workspace, name):
        """Everything is done by __new__ (azureml's constructor retrieves the target)."""

    def _init(self, workspace, target):
        self.workspace = workspace
        self.name = target.name
        self._proto = target

    @property
    def type(self):
        """The target's kind, e.g. "VirtualMachine" (SSH), "Slurm" or "local"."""
        return self._TYPE

    @property
    def provisioning_state(self):
        """Always "Succeeded": an attached target exists as soon as it is defined."""
        return "Succeeded"

    @property
    def created_on(self):
        """When the target was defined (a datetime in UTC), None for "local"."""
        if not self._proto.HasField("created_time"):
            return None
        return self._proto.created_time.ToDatetime()

    @staticmethod
    def list(workspace):
        """Every target of the workspace, "local" included, sorted by name."""
        from amld.v1 import compute_pb2
        response = _call(workspace, _stub(workspace).ListComputeTargets,
                         compute_pb2.ListComputeTargetsRequest(), "list compute targets")
        return [_from_proto(workspace, t) for t in response.targets]

    @staticmethod
    def attach(workspace, name, attach_configuration):
        """Define a target from an attach configuration; returns it.

        :param attach_configuration: from RemoteCompute.attach_configuration (SSH) or
            SlurmCompute.attach_configuration.
        :raises ComputeTargetException: when the name is taken or a setting is refused.
        """
        to_proto = getattr(attach_configuration, "_to_target", None)
        if to_proto is None:
            raise ComputeTargetException(
                "cannot attach %r from a %s: use RemoteCompute.attach_configuration(...) for an "
                "SSH host or SlurmCompute.attach_configuration(...) for a Slurm cluster"
                % (name, type(attach_configuration).__name__))
        from amld.v1 import compute_pb2
        target = _call(workspace, _stub(workspace).CreateComputeTarget,
                       compute_pb2.CreateComputeTargetRequest(target=to_proto(name)),
                       "attach compute target %s" % name)
        return _from_proto(workspace, target)

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        """Provision a target. amld has no cloud to provision from, so only attach works.

        :raises ComputeTargetException: always, naming the equivalent to attach instead.
        """
        hint = getattr(provisioning_configuration, "_refusal", None)
        raise ComputeTargetException(
            hint(name) if hint else
            "cannot create compute target %r: amld provisions no machines; attach an existing "
            "one with ComputeTarget.attach (RemoteCompute or SlurmCompute)" % name)

    def wait_for_completion(self, show_output=False, min_node_count=None,
                            timeout_in_minutes=20, is_delete_operation=False):
        """Return at once: a defined target needs no provisioning (azureml waits for it)."""
        if show_output:
            print("Compute target %s: %s" % (self.name, self.provisioning_state))

    def get_status(self):
        """The provisioning state ("Succeeded")."""
        return self.provisioning_state

    def serialize(self):
        """The target as a dict (the daemon's record)."""
        from google.protobuf import json_format
        return json_format.MessageToDict(self._proto, preserving_proto_field_name=True)

    def _remove(self):
        from amld.v1 import compute_pb2
        _call(self.workspace, _stub(self.workspace).DeleteComputeTarget,
              compute_pb2.DeleteComputeTargetRequest(name=self.name),
              "remove compute target %s" % self.name)

    def delete(self):
        """Remove a provisioned target; attached ones (every amld target) are detached instead."""
        raise ComputeTargetException(
            "delete is not supported for a %s: it was attached, so use detach(), which forgets "
            "the target and leaves the machine as it is" % type(self).__name__)

    def detach(self):
        """Forget the target; the machine is left as it is. Refused while a run uses it."""
        self._remove()

    def __repr__(self):
        """Name and type."""
        return "%s(workspace=%r, name=%r)" % (type(self).__name__, self.workspace, self.name)

    def __eq__(self, other):
        """Same workspace, same definition."""
        return (isinstance(other, ComputeTarget) and other.workspace == self.workspace
                and other._proto == self._proto)

    def __hash__(self):
        """Hash of the name."""
        return hash(self.name)


@_register
class LocalCompute(ComputeTarget):
    """This machine: the built-in target "local", which can be neither attached nor detached."""

    _KIND = "local"
    _TYPE = "local"

    def detach(self):
        """Refused: "local" always exists."""
        raise ComputeTargetException('the compute target "local" is built in and cannot be '
                                     "detached")
