"""Model: registered, versioned models (azureml.core.Model) over the daemon's Models service.

A model version is a set of files in the daemon's content-addressed store
under a name and a version number (1, 2, …): registering the same name again
makes the next version, and files with the same content share their bytes.

* ``Model.register(ws, model_path, model_name)`` uploads a local file or
  folder and registers it;
* ``run.register_model(model_name, model_path)`` registers a run's stored
  file or folder (inside the run: when it ends) and records the run;
* ``Model(ws, name, version=None)`` finds one (the latest by default),
  ``Model.list(ws, name=…)`` lists them, ``model.download(target_dir)``
  writes its files.
"""

import datetime
import os

from amld.exceptions import (
    NotFoundException,
    UnsupportedOptionError,
    UserErrorException,
    WebserviceException,
)


def _model_metadata(doing, tags, properties, model_framework, model_framework_version,
                    description, datasets, sample_input_dataset, sample_output_dataset,
                    resource_configuration, kwargs):
    """Tags, properties and description of a registration; refuses what amld has no use for."""
    unsupported = sorted(kwargs) + [name for name, value in (
        ("datasets", datasets), ("sample_input_dataset", sample_input_dataset),
        ("sample_output_dataset", sample_output_dataset),
        ("resource_configuration", resource_configuration)) if value is not None]
    if unsupported:
        raise UnsupportedOptionError("%s(%s): amld has no datasets or deployment "
                                     "configurations" % (doing, ", ".join(unsupported)))
    props = {str(k): str(v) for k, v in (properties or {}).items()}
    # azureml keeps the framework as model attributes; amld keeps them as properties.
    if model_framework is not None:
        props["model_framework"] = str(model_framework)
    if model_framework_version is not None:
        props["model_framework_version"] = str(model_framework_version)
    return {"tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "properties": props,
            "description": "" if description is None else str(description)}


def _models_pb2():
    from amld.v1 import models_pb2
    return models_pb2


class _NoTime:
    seconds = 0
    nanos = 0


class _PendingModel:
    """The amld.v1.Model fields a pending Model reads, without protobuf."""

    version = 0
    source_path = ""
    single_file = False
    files = ()
    created_time = _NoTime()

    def __init__(self, name, run_id, tags, properties, description):
        self.name, self.run_id, self.tags = name, run_id, tags
        self.properties, self.description = properties, description


class Model:
    """A registered model version (azureml.core.Model).

    ``Model(workspace, name, version=None)`` looks one up: the latest
    version when ``version`` is None; WebserviceException when there is none.
    ``id`` ("name:version") may be given instead of name and version.
    """

    def __init__(self, workspace, name=None, id=None, tags=None, properties=None, version=None,
                 run_id=None, model_framework=None, expand=True, **kwargs):
        """Look up the model ``name`` (or ``id``) in ``workspace``."""
        if kwargs:
            raise UnsupportedOptionError("Model(%s): amld does not support these options"
                                         % ", ".join(sorted(kwargs)))
        self._workspace = workspace
        self._proto = None
        if workspace is None and name is None and id is None:
            return  # Model._of / _pending fill it in
        if id is not None:
            name, _, v = str(id).partition(":")
            if v:
                version = int(v)
        if not name:
            raise UserErrorException("Model: give a name (or an id \"name:version\")")
        if tags is not None or properties is not None or run_id is not None or (
                model_framework is not None):
            # azureml filters the lookup by these; the latest version that matches wins.
            found = Model.list(workspace, name=name, tags=tags, properties=properties,
                               run_id=run_id, model_framework=model_framework)
            found = [m for m in found if version is None or m.version == version]
            if not found:
                raise WebserviceException("ModelNotFound: no version of model %s matches the "
                                          "given filters" % name)
            self._proto = found[0]._proto
            return
        client = workspace._daemon()
        try:
            self._proto = client.call(
                client.models.GetModel,
                _models_pb2().GetModelRequest(name=str(name), version=int(version or 0)),
                "look up model " + str(name))
        except NotFoundException as e:
            raise WebserviceException("ModelNotFound: %s" % e) from None

    @staticmethod
    def _of(workspace, proto):
        model = Model(None)
        model._workspace = workspace
        model._proto = proto
        return model

    @staticmethod
    def _pending(workspace, name, run_id, meta):
        """The Model a run registers when it ends (inside the run: not registered yet).

        Its fields are a plain stand-in for amld.v1.Model: a run on an SSH
        host or Slurm node may have no protobuf."""
        proto = _PendingModel(name=name, run_id=run_id, tags=dict(meta["tags"]),
                              properties=dict(meta["properties"]),
                              description=meta["description"])
        return Model._of(workspace, proto)

    # --- registering ---------------------------------------------------------

    @staticmethod
    def register(workspace, model_path, model_name, tags=None, properties=None,
                 description=None, datasets=None, model_framework=None,
                 model_framework_version=None, child_paths=None, sample_input_dataset=None,
                 sample_output_dataset=None, resource_configuration=None, **kwargs):
        """Upload the local file or folder ``model_path`` and register it as the next version
        of ``model_name``. ``child_paths``: only these files of the folder."""
        meta = _model_metadata("Model.register", tags, properties, model_framework,
                               model_framework_version, description, datasets,
                               sample_input_dataset, sample_output_dataset,
                               resource_configuration, kwargs)
        from amld.core._cas import upload_files
        path = os.fspath(model_path)
        if os.path.isfile(path):
            if child_paths is not None:
                raise UserErrorException("Model.register: child_paths is for a folder; %s is a "
                                         "file" % path)
            pairs, single = [(os.path.basename(path), path)], True
        elif os.path.isdir(path):
            pairs, single = [], False
            wanted = None if child_paths is None else {
                os.path.normpath(p).replace(os.sep, "/") for p in child_paths}
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for f in sorted(files):
                    full = os.path.join(folder, f)
                    rel = os.path.relpath(full, path).replace(os.sep, "/")
                    if wanted is None or rel in wanted:
                        pairs.append((rel, full))
            if not pairs:
                raise UserErrorException("Model.register: %s holds no files to register" % path)
        else:
            raise UserErrorException("Model.register: %s does not exist" % path)
        client = workspace._daemon()
        digests = upload_files(client, [p for _, p in pairs])
        m = _models_pb2()
        files = [m.ModelFile(path=rel, digest=d) for (rel, _), d in zip(pairs, digests)]
        proto = client.call(
            client.models.RegisterModel,
            m.RegisterModelRequest(name=str(model_name), files=files,
                                   source_path=os.path.abspath(path), single_file=single,
                                   tags=meta["tags"], properties=meta["properties"],
                                   description=meta["description"]),
            "register model " + str(model_name))
        print("Registering model %s" % model_name)
        return Model._of(workspace, proto)

    @staticmethod
    def list(workspace, name=None, tags=None, properties=None, run_id=None, latest=False,
             model_framework=None, **kwargs):
        """Registered model versions, by name and newest version first, as a list of Model.

        :param tags: only models with these tags: a list of keys, or of
            [key, value] pairs (azureml's forms), or a dict.
        :param properties: the same, for properties.
        :param latest: only the latest version of each model.
        """
        if kwargs:
            raise UnsupportedOptionError("Model.list(%s): amld does not support these options"
                                         % ", ".join(sorted(kwargs)))
        client = workspace._daemon()
        response = client.call(
            client.models.ListModels,
            _models_pb2().ListModelsRequest(name=name or "", latest_only=bool(latest),
                                            run_id=run_id or ""),
            "list models")
        found = []
        for proto in response.models:
            if not (_labels_match(proto.tags, tags) and _labels_match(proto.properties, properties)):
                continue
            if model_framework is not None and proto.properties.get(
                    "model_framework") != str(model_framework):
                continue
            found.append(Model._of(workspace, proto))
        return found

    # --- reading -------------------------------------------------------------

    @property
    def name(self):
        """The model's name."""
        return self._proto.name

    @property
    def version(self):
        """The version number; None for a model a run registers when it ends."""
        return self._proto.version or None

    @property
    def id(self):
        """"name:version", as azureml's."""
        return "%s:%s" % (self.name, self.version)

    @property
    def workspace(self):
        """The Workspace the model is registered in."""
        return self._workspace

    @property
    def tags(self):
        """The model's tags, as a dict."""
        return dict(self._proto.tags)

    @property
    def properties(self):
        """The model's properties, as a dict (model_framework among them when given)."""
        return dict(self._proto.properties)

    @property
    def description(self):
        """The description given at registration, or None."""
        return self._proto.description or None

    @property
    def run_id(self):
        """The id of the run that produced the model, or None."""
        return self._proto.run_id or None

    @property
    def run(self):
        """The Run that produced the model, or None."""
        if not self._proto.run_id:
            return None
        from amld.core.run import Run
        return Run.get(self._workspace, self._proto.run_id)

    @property
    def created_time(self):
        """When the version was registered (UTC datetime), or None before."""
        t = self._proto.created_time
        if t.seconds == 0 and t.nanos == 0:
            return None
        return datetime.datetime.fromtimestamp(t.seconds + t.nanos / 1e9,
                                               tz=datetime.timezone.utc)

    @property
    def model_framework(self):
        """The framework given at registration, or None."""
        return self._proto.properties.get("model_framework")

    @property
    def model_framework_version(self):
        """The framework version given at registration, or None."""
        return self._proto.properties.get("model_framework_version")

    @property
    def url(self):
        """Where the model came from: the run's artifact path or the registering client's path."""
        return self._proto.source_path or None

    def get_file_names(self):
        """The model's files, relative to its root."""
        return [f.path for f in self._proto.files]

    def serialize(self):
        """A dict of the model's fields (azureml's Model.serialize shape, in part)."""
        return {"id": self.id, "name": self.name, "version": self.version, "tags": self.tags,
                "properties": self.properties, "description": self.description,
                "runId": self.run_id, "url": self.url,
                "createdTime": self.created_time.isoformat() if self.created_time else None}

    def download(self, target_dir=".", exist_ok=False, exists_ok=None):
        """Write the model's files under ``target_dir``; returns the path of the file (a
        one-file model) or of the folder holding them (named as the registered folder).

        An existing file is replaced only with ``exist_ok=True``
        (WebserviceException otherwise, as in azureml).
        """
        if exists_ok is not None:
            exist_ok = exists_ok
        if not self._proto.version:
            raise WebserviceException("model %s is registered when its run ends; look it up "
                                      "then with Model(ws, %r)" % (self.name, self.name))
        from amld.core._cas import download_blob
        from amld.core._run_files import _safe_join
        m = _models_pb2()
        client = self._workspace._daemon()
        target_dir = os.fspath(target_dir)
        if self._proto.single_file:
            root = target_dir
            result = os.path.join(target_dir, self._proto.files[0].path)
        else:
            base = os.path.basename(self._proto.source_path.rstrip("/")) or self.name
            root = os.path.join(target_dir, base)
            result = root
        if not exist_ok:
            for f in self._proto.files:
                dest = _safe_join(root, f.path)
                if os.path.exists(dest):
                    raise WebserviceException(
                        "File already exists: %s; pass exist_ok=True to replace it" % dest)
        for f in self._proto.files:
            dest = _safe_join(root, f.path)
            download_blob(
                client,
                lambda offset, f=f: client.models.DownloadModelFile(m.DownloadModelFileRequest(
                    name=self.name, version=self._proto.version, path=f.path, offset=offset)),
                f.digest, dest, "download %s of model %s" % (f.path, self.id))
        return result

    def __repr__(self):
        return "Model(workspace=%r, name=%s, id=%s, version=%s, tags=%s, properties=%s)" % (
            self._workspace, self.name, self.id, self.version, self.tags, self.properties)


def _labels_match(have, wanted):
    """azureml's filter forms: a list of keys or of [key, value] pairs, or a dict."""
    if not wanted:
        return True
    if isinstance(wanted, str):
        return wanted in have
    items = wanted.items() if isinstance(wanted, dict) else wanted
    for item in items:
        if isinstance(item, (list, tuple)):
            key, value = item[0], item[1] if len(item) > 1 else None
        else:
            key, value = item, None
        if key not in have or (value is not None and have[key] != str(value)):
            return False
    return True
