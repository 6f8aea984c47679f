// Limits on a snapshot walked on the client, shared by the commands that
// take one (`aml run submit`, `aml snapshot create`, `aml snapshot explain`).
// Going over a limit fails before anything is read, listing the largest
// files (storage/snapshot/snapshot.h). A watched root is held to the daemon's own
// limits (amld --max-snapshot-bytes/--max-snapshot-files).
//
// Thread-safety: plain data and a registration function for the CLI thread.
#pragma once

#include <cstdint>

namespace CLI {
class App;
}

namespace amld::client::commands {

inline constexpr int64_t kDefaultMaxSnapshotBytes = int64_t{2} << 30;  // 2 GiB
inline constexpr int64_t kDefaultMaxSnapshotFiles = 100000;

struct SnapshotLimits {
  int64_t max_bytes = kDefaultMaxSnapshotBytes;  // 0: no limit
  int64_t max_files = kDefaultMaxSnapshotFiles;  // 0: no limit
};

// --max-snapshot-bytes (env AMLD_MAX_SNAPSHOT_BYTES; "500MiB", "3GB" or a
// number of bytes) and --max-snapshot-files (env AMLD_MAX_SNAPSHOT_FILES).
void AddSnapshotLimitOptions(CLI::App& cmd, SnapshotLimits& limits);

}  // namespace amld::client::commands
