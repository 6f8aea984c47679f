// Questions about a snapshot tree stored in a ContentStore: which of its
// blobs the store lacks (for uploads), every digest it reaches (for garbage
// collection), and the file at a path (for reading one file of a run's
// snapshot). Every directory read is decoded and checked at its depth
// (directory_codec.h).
//
// Thread-safety: free functions that only read the store; a CompleteDirs
// passed in is not synchronized.
#pragma once

#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/common.pb.h"
#include "storage/cas.h"
#include "storage/digest.h"

namespace amld::storage {

// Every blob reachable from `root` that `cas` lacks (directories that are
// missing hide their children, which are then not listed). Empty when the
// whole tree is present. INVALID_ARGUMENT when a stored directory is bad.
absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root);

// Folders known to be in a store with everything below them, each with the
// shallowest depth it was checked at (a folder whose links are safe at
// depth d is safe deeper).
using CompleteDirs = absl::flat_hash_map<Digest, int>;

// FindMissingInTree that skips the folders `known` holds (when met no
// shallower) and adds each folder it finds complete: a tree that shares
// most folders with one checked before costs reading its new folders only.
// `known` stays true only while nothing removes blobs (CAS garbage
// collection must clear it). Not thread-safe for `known`.
absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root,
                                                      CompleteDirs* known);

// Every digest reachable from `root` (directories and files), for GC. A
// directory the store lacks is listed, but its children cannot be known;
// a corrupt or invalid directory is an error (DATA_LOSS, INVALID_ARGUMENT).
absl::Status CollectTreeDigests(const ContentStore& cas, const Digest& root,
                                absl::flat_hash_set<Digest>* out);

// The file node at `rel_path` in the tree, or NOT_FOUND (also when the path
// names a directory or symlink).
absl::StatusOr<amld::v1::FileNode> LookupFile(const ContentStore& cas, const Digest& root,
                                              std::string_view rel_path);

}  // namespace amld::storage
