// The environment cache's bookkeeping on disk (env_builder.h owns the
// cache): what each published environment weighs and when a run last used
// it, kept as two small files in its build folder so that a restarted
// daemon knows both without walking every venv again.
//
//   <folder>/amld-size       bytes of the folder's files, written once when
//                            the build is published (measured on first
//                            look for a folder built before this existed)
//   <folder>/amld-last-use   its mtime is the last use: set when a run gets
//                            the environment and when that run ends
//
// System mode (env_builder.h) adds the folders of a shared machine:
//
//   <root>/users/             root's, 0711: each user reaches their own
//                             cache and lists no one's
//   <root>/users/<uid>/       0700, that user's: their cache
//
// and seals each environment of the shared cache <root> (SealForEveryone).
//
// Thread-safety: free functions; concurrent calls on one folder are safe
// (each file is written atomically or only its times are set).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

// One published environment: <root>/<digest> → <root>/<folder>.
struct CachedEnvironment {
  std::string digest;
  std::filesystem::path folder;
  int64_t bytes = 0;
  absl::Time last_used = absl::InfinitePast();
};

// Sum of the sizes of the regular files under `folder` (links not followed).
int64_t MeasureFolder(const std::filesystem::path& folder);

// Writes <folder>/amld-size from MeasureFolder and returns it.
int64_t RecordSize(const std::filesystem::path& folder);

// Sets <folder>/amld-last-use's mtime to now (creating the file).
void TouchLastUse(const std::filesystem::path& folder);

// Every published environment under `root` (links named by a 64-hex digest
// whose folder exists), least recently used first.
std::vector<CachedEnvironment> ListCache(const std::filesystem::path& root);

// <root>/users/<uid>, made (or kept) 0700 and uid:gid's, below a root-owned
// 0711 <root>/users/. FAILED_PRECONDITION when either exists as something
// else (not a folder, another owner): the daemon never builds into a folder
// someone else could have prepared.
absl::StatusOr<std::filesystem::path> MakeUserCache(const std::filesystem::path& root, uid_t uid,
                                                    gid_t gid);

// The uids of <root>/users/<uid> folders (for trimming every cache).
std::vector<uid_t> ListUserCaches(const std::filesystem::path& root);

// Makes `folder` and everything below it root's (uid and gid 0) and
// readable by everyone: each entry keeps its owner's bits and gives group
// and others the owner's read and execute bits, never write, setuid or
// setgid. The shared cache's builds run as an unprivileged account
// (environments.build_user); sealed, nothing that account runs later, and
// no user, can change an environment every user's runs execute. Links are
// changed themselves, never followed.
absl::Status SealForEveryone(const std::filesystem::path& folder);

}  // namespace amld::daemon
