#include "storage/snapshot/directory_codec.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "storage/snapshot/snapshot_names.h"

namespace amld::storage {

using amld::v1::Directory;
using snapshot_names::Annotate;
using snapshot_names::CheckLinkTarget;
using snapshot_names::CheckName;
using snapshot_names::Quote;

namespace {

template <typename Nodes>
absl::Status CheckSortedNames(const Nodes& nodes, std::string_view kind,
                              std::vector<std::string_view>* all_names) {
  for (int i = 0; i < nodes.size(); ++i) {
    const std::string& name = nodes[i].name();
    AMLD_RETURN_IF_ERROR(Annotate(CheckName(name), absl::StrCat(std::string(kind), " ", i)));
    if (i > 0 && !(nodes[i - 1].name() < name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          std::string(kind), " names are ",
          nodes[i - 1].name() == name ? "repeated: " : "not sorted: ", Quote(nodes[i - 1].name()),
          " then ", Quote(name)));
    }
    all_names->push_back(name);
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeDirectory(const Directory& dir) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    dir.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::StatusOr<Directory> DecodeDirectory(std::string_view bytes, int depth_from_root) {
  if (depth_from_root < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("directory depth must not be negative, got ", depth_from_root));
  }
  Directory dir;
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !dir.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("not a valid amld.v1.Directory message");
  }
  std::vector<std::string_view> names;
  AMLD_RETURN_IF_ERROR(CheckSortedNames(dir.files(), "file", &names));
  AMLD_RETURN_IF_ERROR(CheckSortedNames(dir.directories(), "directory", &names));
  AMLD_RETURN_IF_ERROR(CheckSortedNames(dir.symlinks(), "symlink", &names));
  std::sort(names.begin(), names.end());
  auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup != names.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("name ", Quote(*dup), " appears twice in one directory"));
  }
  for (const amld::v1::FileNode& f : dir.files()) {
    AMLD_RETURN_IF_ERROR(
        Annotate(ValidateDigest(FromProto(f.digest())), absl::StrCat("file ", Quote(f.name()))));
  }
  for (const amld::v1::DirectoryNode& d : dir.directories()) {
    AMLD_RETURN_IF_ERROR(Annotate(ValidateDigest(FromProto(d.digest())),
                                  absl::StrCat("directory ", Quote(d.name()))));
  }
  for (const amld::v1::SymlinkNode& l : dir.symlinks()) {
    AMLD_RETURN_IF_ERROR(Annotate(CheckLinkTarget(l.target(), depth_from_root),
                                  absl::StrCat("symlink ", Quote(l.name()))));
  }
  // One tree, one blob: bytes that parse but are not the tree's own
  // encoding (unknown fields, a field twice, another field order) would be a
  // second digest for the same content (found by tests/fuzz/directory_fuzz).
  dir.DiscardUnknownFields();  // kept by the parser and written back otherwise
  if (EncodeDirectory(dir) != bytes) {
    return absl::InvalidArgumentError(
        "not the canonical encoding of an amld.v1.Directory (unknown fields, a field given "
        "twice or fields out of order); encode it with deterministic serialization");
  }
  return dir;
}

absl::StatusOr<Directory> ReadDirectory(const ContentStore& cas, const Digest& d, int depth) {
  // An empty Directory serializes to no bytes: its digest is the empty
  // blob's, which the store holds without a file.
  if (d == Digest::Empty()) return Directory();
  absl::StatusOr<std::string> bytes = cas.Read(d);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("directory ", d.ToString()));
  absl::StatusOr<Directory> dir = DecodeDirectory(*bytes, depth);
  if (!dir.ok()) return Annotate(dir.status(), absl::StrCat("directory ", d.ToString()));
  return dir;
}

absl::Status ValidateSnapshotRoot(const Digest& root) {
  return Annotate(ValidateDigest(root), "snapshot root");
}

}  // namespace amld::storage
