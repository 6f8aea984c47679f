#include "daemon/watch/inotify.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;

// IN_MODIFY as well as IN_CLOSE_WRITE: a file written while it stays open
// reports only IN_MODIFY (the callers' settle delays coalesce the bursts).
// IN_ATTRIB: a snapshot keeps the executable bit (kFolderContents leaves it
// out, for callers that keep no metadata). IN_EXCL_UNLINK: a file unlinked
// while still open stops producing events.
constexpr uint32_t kFolderMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY |
                                 IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                 IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr uint32_t kFileMask = IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF |
                               IN_MOVE_SELF;
// One Wait reads at most this much, so a flood of events cannot keep it from
// returning; the rest stays queued for the next Wait.
constexpr size_t kReadBufferBytes = 256 * 1024;
constexpr int kMaxReadsPerWait = 16;

int TimeoutMillis(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return -1;
  if (timeout <= absl::ZeroDuration()) return 0;
  double ms = std::ceil(absl::ToDoubleMilliseconds(timeout));
  return static_cast<int>(std::min<double>(ms, INT_MAX));
}

WatchEvent Decode(const inotify_event& ev) {
  WatchEvent out;
  out.watch = ev.wd;
  if (ev.mask & IN_Q_OVERFLOW) {
    out.kind = WatchEvent::Kind::kOverflow;
    out.watch = -1;
    out.reason = kOverflowReason;
  } else if (ev.mask & IN_IGNORED) {
    out.kind = WatchEvent::Kind::kWatchEnded;
  } else if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
    out.kind = WatchEvent::Kind::kSelfGone;
  } else {
    out.kind = WatchEvent::Kind::kEntry;
    // The name is NUL-padded to `len`.
    if (ev.len > 0) out.name = std::string(ev.name, strnlen(ev.name, ev.len));
    out.is_dir = (ev.mask & IN_ISDIR) != 0;
    out.created = (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0;
  }
  return out;
}

class InotifyWatcher final : public Watcher {
 public:
  InotifyWatcher(ScopedFd inotify, ScopedFd wake)
      : inotify_(std::move(inotify)), wake_(std::move(wake)), buf_(kReadBufferBytes) {}

  absl::StatusOr<int> AddWatch(int fd, WatchKind kind) override {
    // The magic link resolves to the open inode itself, not to whatever its
    // path names now.
    const std::string proc_path = absl::StrCat("/proc/self/fd/", fd);
    const uint32_t mask = kind == WatchKind::kFolder           ? kFolderMask
                          : kind == WatchKind::kFolderContents ? kFolderMask & ~IN_ATTRIB
                                                               : kFileMask;
    int wd = ::inotify_add_watch(inotify_.get(), proc_path.c_str(), mask);
    if (wd >= 0) return wd;
    const int err = errno;
    if (err == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "out of inotify watches (fs.inotify.max_user_watches is ", InotifyWatchLimit(), ")"));
    }
    if (err == ENOTDIR || err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("watch: ", proc_path, " is not a folder"));
    }
    return amld::base::ErrnoStatus(err, "inotify_add_watch", proc_path);
  }

  void RemoveWatch(int watch) override { ::inotify_rm_watch(inotify_.get(), watch); }

  void Wait(absl::Duration timeout, std::vector<WatchEvent>* events) override {
    struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, TimeoutMillis(timeout));
    if (n <= 0) return;  // timeout, or EINTR: the caller loops
    if (fds[1].revents != 0) {
      uint64_t count;
      (void)!::read(wake_.get(), &count, sizeof(count));
    }
    for (int i = 0; i < kMaxReadsPerWait; ++i) {
      ssize_t len = ::read(inotify_.get(), buf_.data(), buf_.size());
      if (len <= 0) return;  // EAGAIN: drained
      for (size_t off = 0; off + sizeof(inotify_event) <= static_cast<size_t>(len);) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf_.data() + off);
        off += sizeof(inotify_event) + ev->len;
        events->push_back(Decode(*ev));
      }
    }
  }

  void Wake() override {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
  }

 private:
  ScopedFd inotify_;
  ScopedFd wake_;
  std::vector<char> buf_;  // only Wait uses it, from one thread at a time
};

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> NewInotifyWatcher() {
  ScopedFd inotify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify.valid()) {
    if (errno == EMFILE) {
      return absl::ResourceExhaustedError(
          "out of inotify instances; raise fs.inotify.max_user_instances (sysctl)");
    }
    return amld::base::ErrnoStatus(errno, "inotify_init1", "inotify");
  }
  ScopedFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return amld::base::ErrnoStatus(errno, "eventfd", "eventfd");
  return std::unique_ptr<Watcher>(new InotifyWatcher(std::move(inotify), std::move(wake)));
}

int64_t InotifyWatchLimit() {
  absl::StatusOr<std::string> text =
      amld::base::ReadFileToString("/proc/sys/fs/inotify/max_user_watches");
  int64_t limit = -1;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &limit)) return -1;
  return limit;
}

std::string WatchLimitFix(int64_t needed) {
  const int64_t limit = InotifyWatchLimit();
  const int64_t suggest = limit > 0 ? std::max(limit * 2, limit + needed * 2) : 524288;
  return absl::StrCat("raise the limit (as root): `sysctl fs.inotify.max_user_watches=", suggest,
                      "` (put it in /etc/sysctl.d/ to keep it)");
}

}  // namespace amld::daemon
