#include "daemon/watch/file_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;

constexpr uint32_t kMask = IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

class InotifyFileWatcher final : public FileWatcher {
 public:
  InotifyFileWatcher(ScopedFd inotify, ScopedFd wake)
      : inotify_(std::move(inotify)), wake_(std::move(wake)) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~InotifyFileWatcher() override {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }

  absl::StatusOr<uint64_t> Watch(int fd, Callback callback) override {
    // The magic link resolves to the open file itself, not to whatever its
    // path names now.
    const std::string proc_path = absl::StrCat("/proc/self/fd/", fd);
    absl::MutexLock lock(&mu_);
    int wd = ::inotify_add_watch(inotify_.get(), proc_path.c_str(), kMask);
    if (wd < 0) {
      if (errno == ENOSPC) {
        return absl::ResourceExhaustedError(
            "out of inotify watches; raise fs.inotify.max_user_watches (sysctl)");
      }
      return amld::base::ErrnoStatus(errno, "inotify_add_watch", proc_path);
    }
    uint64_t id = next_id_++;
    by_wd_[wd].emplace_back(id, std::move(callback));
    wd_of_[id] = wd;
    return id;
  }

  void Unwatch(uint64_t watch_id) override {
    absl::MutexLock lock(&mu_);
    auto it = wd_of_.find(watch_id);
    if (it == wd_of_.end()) return;
    int wd = it->second;
    wd_of_.erase(it);
    auto& list = by_wd_[wd];
    std::erase_if(list, [&](const auto& w) { return w.first == watch_id; });
    if (list.empty()) {
      by_wd_.erase(wd);
      // Several watches of one inode share a wd; it goes with the last.
      ::inotify_rm_watch(inotify_.get(), wd);
    }
  }

 private:
  void Loop() {
    std::vector<char> buf(64 * 1024);
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
      Dispatch(buf.data(), static_cast<size_t>(len));
    }
  }

  void Dispatch(const char* data, size_t len) {
    absl::MutexLock lock(&mu_);
    for (size_t off = 0; off + sizeof(inotify_event) <= len;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(data + off);
      off += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        for (auto& [wd, list] : by_wd_) {
          for (auto& [id, cb] : list) cb();
        }
        continue;
      }
      auto it = by_wd_.find(ev->wd);
      if (it == by_wd_.end()) continue;
      for (auto& [id, cb] : it->second) cb();
    }
  }

  ScopedFd inotify_;
  ScopedFd wake_;
  std::thread thread_;
  absl::Mutex mu_;
  absl::flat_hash_map<int, std::vector<std::pair<uint64_t, Callback>>> by_wd_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, int> wd_of_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileWatcher>> NewInotifyFileWatcher() {
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
  return std::unique_ptr<FileWatcher>(new InotifyFileWatcher(std::move(inotify), std::move(wake)));
}

}  // namespace amld::daemon
