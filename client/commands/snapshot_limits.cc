#include "client/commands/snapshot_limits.h"

#include <CLI/CLI.hpp>

#include "client/commands/options.h"

namespace amld::client::commands {

void AddSnapshotLimitOptions(CLI::App& cmd, SnapshotLimits& limits) {
  cmd.add_option("--max-snapshot-bytes", limits.max_bytes,
                 "refuse a snapshot larger than this, e.g. 500MiB or 3GB (default 2GiB; 0: no "
                 "limit)")
      ->envname("AMLD_MAX_SNAPSHOT_BYTES")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->check(AtLeast(0));
  cmd.add_option("--max-snapshot-files", limits.max_files,
                 "refuse a snapshot of more files than this (default 100000; 0: no limit)")
      ->envname("AMLD_MAX_SNAPSHOT_FILES")
      ->check(AtLeast(0));
}

}  // namespace amld::client::commands
