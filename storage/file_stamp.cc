#include "storage/file_stamp.h"

namespace amld::storage {

int64_t UnixNanos(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

FileStamp FileStamp::Of(const struct stat& st) {
  FileStamp s;
  s.size = static_cast<int64_t>(st.st_size);
  s.mtime_ns = UnixNanos(st.st_mtim);
  s.ctime_ns = UnixNanos(st.st_ctim);
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.device = static_cast<uint64_t>(st.st_dev);
  s.mode = static_cast<uint32_t>(st.st_mode);
  return s;
}

bool FileStamp::TrustedFor(absl::Time read_started, absl::Duration window) const {
  const int64_t cutoff = absl::ToUnixNanos(read_started - window);
  return mtime_ns < cutoff && ctime_ns < cutoff;
}

}  // namespace amld::storage
