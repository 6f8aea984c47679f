"""A run's stored files, read from outside it: list them, download one or many.

Downloads go to "<destination>.part", are checked against the stored file's
SHA-256 and renamed into place; a dropped connection resumes at the offset
reached.
"""

import os

from amld.core._lazy import pb
from amld.exceptions import (
    NotFoundException,
    UnsupportedOptionError,
    UserErrorException,
)


def _safe_join(folder, rel_path):
    """``folder`` joined with a '/'-separated path from the daemon; refuses paths that leave it."""
    parts = rel_path.split("/")
    if not rel_path or rel_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UserErrorException("refusing the path %r: it is empty, absolute or leaves %s"
                                 % (rel_path, folder))
    return os.path.join(folder, *parts)


def _file_name(run_file):
    """The path of a listed file as a str; a name that is not UTF-8 comes as path_bytes and is
    decoded as os.fsdecode does (undecodable bytes as lone surrogates), so it round-trips."""
    return os.fsdecode(run_file.path_bytes) if run_file.path_bytes else run_file.path


def _path_fields(field, name):
    """Request fields naming ``name``: ``field`` when it is UTF-8, else ``field``_bytes."""
    try:
        name.encode("utf-8")
        return {field: name}
    except UnicodeEncodeError:
        return {field + "_bytes": os.fsencode(name)}


def posix_basename(path):
    """The last component of a '/'-separated path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class RunFiles:
    """Run's file methods (a mixin of amld.core.Run; needs _run_id and _client())."""

    def _list_files(self, client, prefix=""):
        response = client.call(client.runs.ListFiles,
                               pb().ListFilesRequest(run_id=self._run_id,
                                                     **_path_fields("prefix", prefix)),
                               "list the files of run " + self._run_id)
        return list(response.files)

    def get_file_names(self):
        """The paths of the run's stored files (outputs/, logs/, user_logs/), sorted."""
        return [_file_name(f) for f in self._list_files(self._client())]

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        """Download the stored file ``name`` (e.g. "outputs/model.json") to ``output_file_path``.

        The default destination is the file's base name in the current
        folder; an existing folder receives the file under its base name.
        The download is written to "<destination>.part", checked against the
        file's SHA-256 and renamed into place. Returns the destination path.
        """
        client = self._client()
        matches = [f for f in self._list_files(client, name) if _file_name(f) == name]
        if not matches:
            raise NotFoundException("run %s has no stored file %s; see run.get_file_names()"
                                    % (self._run_id, name), code="NOT_FOUND")
        dest = output_file_path if output_file_path is not None else posix_basename(name)
        dest = os.fspath(dest)
        if os.path.isdir(dest):
            dest = os.path.join(dest, posix_basename(name))
        self._download(client, matches[0], dest)
        return dest

    def download_files(self, prefix=None, output_directory=None, output_paths=None,
                       batch_size=100, append_prefix=True, timeout_seconds=None):
        """Download every stored file whose path starts with ``prefix`` into ``output_directory``.

        Files keep their paths below the folder (without the prefix when
        ``append_prefix`` is False). ``output_paths``, when given, names one
        destination per file in get_file_names() order. Files are fetched one
        at a time; ``batch_size`` has no effect. Returns the destination paths.
        """
        if timeout_seconds is not None:
            raise UnsupportedOptionError("Run.download_files(timeout_seconds=...) is not "
                                         "supported by amld")
        client = self._client()
        files = self._list_files(client, prefix or "")
        if output_paths is not None and len(output_paths) != len(files):
            raise UserErrorException("output_paths has %d entries for %d files"
                                     % (len(output_paths), len(files)))
        folder = os.path.abspath(output_directory or os.getcwd())
        written = []
        for i, f in enumerate(files):
            if output_paths is not None:
                dest = os.fspath(output_paths[i])
            else:
                rel = _file_name(f)
                if not append_prefix and prefix:
                    rel = rel[len(prefix):].lstrip("/") or posix_basename(_file_name(f))
                dest = _safe_join(folder, rel)
            self._download(client, f, dest)
            written.append(dest)
        return written

    def _download(self, client, run_file, dest):
        from amld.core._cas import download_blob
        download_blob(
            client,
            lambda offset: client.runs.DownloadFile(pb().DownloadFileRequest(
                run_id=self._run_id, offset=offset,
                **_path_fields("path", _file_name(run_file)))),
            run_file.digest, dest, "download %s of run %s" % (run_file.path, self._run_id))
