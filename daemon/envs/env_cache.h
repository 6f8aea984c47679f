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
// Thread-safety: free functions; concurrent calls on one folder are safe
// (each file is written atomically or only its times are set).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

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

}  // namespace amld::daemon
