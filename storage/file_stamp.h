// FileStamp: what stat(2) says of a file that tells a change without reading
// it — size, mtime and ctime in nanoseconds, inode, device, mode — and the
// one rule for when a stamp may vouch for content read earlier. The stat
// cache of client walks (storage/snapshot/stat_cache.h), live ingestion
// (daemon/ingest/artifact_sync.h) and watched roots (daemon/watch/) all use
// it, so "unchanged" and "too recent to trust" mean the same everywhere.
//
// Too recent to trust (git's "racily clean" problem): file times come from a
// clock that ticks coarsely, so a write made in the same tick as an earlier
// read leaves the stamp as it was, and a digest taken at that read would look
// valid forever. A stamp vouches for content only when the file's mtime and
// ctime are both at least kRacyWindow older than the moment the read began;
// a file changed more recently is read again the next time it is met.
//
// Why kRacyWindow is one second (the one place this is argued): the tick is
// not the nanoseconds the stamp shows. Linux stamps files from its coarse
// clock (one jiffy: 1-10 ms), and file systems that keep whole seconds
// (ext4 with 128-byte inodes, ext3, FAT's 2 s aside, NFS servers on such
// disks) round to the second — mtimes repeat within one second in practice
// (../shared/design/FACTS.md: rsync's quick check misses such changes). One
// second covers every Linux file system amld reads sources or run outputs
// from; a shorter window is right only on some of them, and being wrong
// loses a change silently, while being long only costs reading a file again.
// What it costs: a file written less than a second before it was read (a
// checkpoint stored live 200 ms after its last write) is hashed once more by
// the next pass that meets it.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <sys/stat.h>

#include <cstdint>

#include "absl/time/time.h"

namespace amld::storage {

// See the file comment.
inline constexpr absl::Duration kRacyWindow = absl::Seconds(1);

struct FileStamp {
  int64_t size = -1;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  uint32_t mode = 0;  // type and permission bits (st_mode)

  static FileStamp Of(const struct stat& st);
  bool operator==(const FileStamp&) const = default;

  // True when a read of the file that began at `read_started` may be
  // vouched for by this stamp later (see the file comment). `window` is
  // kRacyWindow but for tests that need every stamp trusted or none.
  bool TrustedFor(absl::Time read_started, absl::Duration window = kRacyWindow) const;
};

// Nanoseconds since the epoch.
int64_t UnixNanos(const struct timespec& ts);

}  // namespace amld::storage
