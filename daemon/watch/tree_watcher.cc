#include "daemon/watch/tree_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;

// IN_MODIFY as well as IN_CLOSE_WRITE: a file written while it stays open
// reports only IN_MODIFY. The settle delay coalesces the bursts.
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY |
                           IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                           IN_DONT_FOLLOW | IN_EXCL_UNLINK;
// Big enough to drain a busy queue in few reads.
constexpr size_t kReadBufferBytes = 256 * 1024;

class InotifyTreeWatcher final : public TreeWatcher {
 public:
  InotifyTreeWatcher(ScopedFd inotify, ScopedFd wake, Sink sink)
      : inotify_(std::move(inotify)), wake_(std::move(wake)), sink_(std::move(sink)) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~InotifyTreeWatcher() override {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }

  absl::StatusOr<uint64_t> AddWatch(const std::filesystem::path& dir) override {
    int wd = ::inotify_add_watch(inotify_.get(), dir.c_str(), kMask);
    if (wd >= 0) return static_cast<uint64_t>(wd);
    const int err = errno;
    if (err == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "out of inotify watches (fs.inotify.max_user_watches is ", InotifyWatchLimit(), ")"));
    }
    if (err == ENOTDIR || err == ELOOP) {
      return absl::NotFoundError(absl::StrCat(dir.string(), " is not a folder"));
    }
    return amld::base::ErrnoStatus(err, "inotify_add_watch", dir);
  }

  void RemoveWatch(uint64_t watch_id) override {
    ::inotify_rm_watch(inotify_.get(), static_cast<int>(watch_id));
  }

 private:
  void Loop() {
    std::vector<char> buf(kReadBufferBytes);
    while (true) {
      struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      ssize_t len = ::read(inotify_.get(), buf.data(), buf.size());
      if (len <= 0) continue;
      sink_(Decode(buf.data(), static_cast<size_t>(len)));
    }
  }

  static std::vector<TreeEvent> Decode(const char* data, size_t len) {
    std::vector<TreeEvent> events;
    for (size_t off = 0; off + sizeof(inotify_event) <= len;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(data + off);
      off += sizeof(inotify_event) + ev->len;
      TreeEvent e;
      if (ev->mask & IN_Q_OVERFLOW) {
        e.overflow = true;
        events.push_back(std::move(e));
        continue;
      }
      e.watch_id = static_cast<uint64_t>(ev->wd);
      if (ev->len > 0) e.name = std::string(ev->name);  // NUL-padded
      e.is_dir = (ev->mask & IN_ISDIR) != 0;
      e.created = (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
      e.self_gone = (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
      e.watch_gone = (ev->mask & (IN_IGNORED | IN_UNMOUNT)) != 0;
      events.push_back(std::move(e));
    }
    return events;
  }

  ScopedFd inotify_;
  ScopedFd wake_;
  Sink sink_;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TreeWatcher>> NewInotifyTreeWatcher(TreeWatcher::Sink sink) {
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
  return std::unique_ptr<TreeWatcher>(
      new InotifyTreeWatcher(std::move(inotify), std::move(wake), std::move(sink)));
}

int64_t InotifyWatchLimit() {
  absl::StatusOr<std::string> text =
      amld::base::ReadFileToString("/proc/sys/fs/inotify/max_user_watches");
  int64_t limit = -1;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &limit)) return -1;
  return limit;
}

}  // namespace amld::daemon
