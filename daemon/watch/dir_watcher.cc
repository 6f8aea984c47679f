#include "daemon/watch/dir_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;

// Writes are reported as IN_MODIFY and IN_CLOSE_WRITE; IN_ATTRIB (chmod,
// touch) is left out: artifacts keep no metadata. IN_EXCL_UNLINK: a file
// unlinked while still open stops producing events.
constexpr uint32_t kMask = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM |
                           IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                           IN_EXCL_UNLINK;
// One Wait reads at most this much, so a flood of events cannot keep it from
// returning; the rest stays queued for the next Wait.
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int kMaxReadsPerWait = 16;

int TimeoutMillis(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return -1;
  if (timeout <= absl::ZeroDuration()) return 0;
  double ms = std::ceil(absl::ToDoubleMilliseconds(timeout));
  return static_cast<int>(std::min<double>(ms, INT_MAX));
}

DirEvent Translate(const inotify_event& ev) {
  DirEvent out;
  out.watch = ev.wd;
  if (ev.mask & IN_Q_OVERFLOW) {
    out.kind = DirEvent::Kind::kOverflow;
    out.watch = -1;
  } else if (ev.mask & IN_IGNORED) {
    out.kind = DirEvent::Kind::kWatchEnded;
  } else if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
    out.kind = DirEvent::Kind::kSelfGone;
  } else {
    out.kind = DirEvent::Kind::kEntry;
    // The name is NUL-padded to `len`.
    if (ev.len > 0) out.name = std::string(ev.name, strnlen(ev.name, ev.len));
    out.is_dir = (ev.mask & IN_ISDIR) != 0;
  }
  return out;
}

class InotifyDirWatcher final : public DirWatcher {
 public:
  InotifyDirWatcher(ScopedFd inotify, ScopedFd wake)
      : inotify_(std::move(inotify)), wake_(std::move(wake)), buf_(kReadBuffer) {}

  absl::StatusOr<int> AddWatch(int dir_fd) override {
    // The magic link resolves to the open folder itself, not to whatever its
    // path names now.
    const std::string proc_path = absl::StrCat("/proc/self/fd/", dir_fd);
    int wd = ::inotify_add_watch(inotify_.get(), proc_path.c_str(), kMask);
    if (wd >= 0) return wd;
    if (errno == ENOSPC) {
      return absl::ResourceExhaustedError(
          "out of inotify watches; raise fs.inotify.max_user_watches (sysctl)");
    }
    return amld::base::ErrnoStatus(errno, "inotify_add_watch", proc_path);
  }

  void RemoveWatch(int watch) override { ::inotify_rm_watch(inotify_.get(), watch); }

  void Wait(absl::Duration timeout, std::vector<DirEvent>* events) override {
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
      Parse(static_cast<size_t>(len), events);
    }
  }

  void Wake() override {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
  }

 private:
  void Parse(size_t len, std::vector<DirEvent>* events) {
    for (size_t off = 0; off + sizeof(inotify_event) <= len;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf_.data() + off);
      off += sizeof(inotify_event) + ev->len;
      events->push_back(Translate(*ev));
    }
  }

  ScopedFd inotify_;
  ScopedFd wake_;
  std::vector<char> buf_;  // only Wait uses it, from one thread at a time
};

}  // namespace

absl::StatusOr<std::unique_ptr<DirWatcher>> NewInotifyDirWatcher() {
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
  return std::unique_ptr<DirWatcher>(new InotifyDirWatcher(std::move(inotify), std::move(wake)));
}

}  // namespace amld::daemon
