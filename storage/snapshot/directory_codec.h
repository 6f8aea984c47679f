// The canonical amld.v1.Directory, the node of a snapshot's Merkle tree:
// files, directories and symlinks each sorted by name (byte order), no name
// twice across the three lists, every name and link target valid
// (snapshot_names.h), serialized with deterministic proto serialization.
// Two folders with the same content and modes give the same root digest,
// whatever order readdir returns. Only the execute bit of a file's mode is
// recorded.
//
// Thread-safety: pure functions; ReadDirectory only reads the store.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/common.pb.h"
#include "storage/cas.h"
#include "storage/digest.h"

namespace amld::storage {

// Canonical bytes of a Directory (it must already be sorted and unique).
std::string EncodeDirectory(const amld::v1::Directory& dir);
// Parses a Directory blob and checks it is canonical and safe: sorted,
// unique, valid names, safe symlink targets (`depth_from_root` is how many
// levels below the root it sits, for checking that `..` in a link target
// stays inside). INVALID_ARGUMENT otherwise.
absl::StatusOr<amld::v1::Directory> DecodeDirectory(std::string_view bytes,
                                                    int depth_from_root = 0);

// The Directory `d` read from `cas` and decoded at `depth`; the empty
// Directory (the empty blob's digest) needs no object. Errors name the
// directory: the store's (NOT_FOUND when absent), or DecodeDirectory's.
absl::StatusOr<amld::v1::Directory> ReadDirectory(const ContentStore& cas, const Digest& d,
                                                  int depth);
// INVALID_ARGUMENT "snapshot root: ..." for a malformed root digest.
absl::Status ValidateSnapshotRoot(const Digest& root);

}  // namespace amld::storage
