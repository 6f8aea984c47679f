// WatchedRoots::WatchAutomatically (watched_roots.h): a folder submitted
// repeatedly becomes a watched root, so that its next submits neither walk
// nor upload. Bounded: past options.max_auto_roots, the automatic root least
// recently used (by a submit: Sync) is dropped.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/watch/watched_roots_internal.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

namespace fs = std::filesystem;

absl::Status WatchedRoots::WatchAutomatically(const fs::path& path) {
  if (options_.max_auto_roots <= 0) {
    return absl::FailedPreconditionError("automatic watches are off (auto_watch_roots: 0)");
  }
  std::error_code ec;
  const fs::path canon = fs::canonical(path, ec);
  if (ec) return Annotate(amld::base::ErrnoStatus(ec.value(), "resolve", path), "cannot watch");
  if (!fs::is_directory(canon, ec)) {
    return absl::NotFoundError(absl::StrCat("cannot watch ", canon.string(), ": not a folder"));
  }
  AMLD_RETURN_IF_ERROR(CheckNotInDataDir(canon));
  AMLD_RETURN_IF_ERROR(CheckLocalFileSystem(canon));
  std::string dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("amld is shutting down");
    if (roots_.contains(canon.string())) return absl::OkStatus();
    AMLD_RETURN_IF_ERROR(CheckNoOverlap(canon));
    std::vector<Root*> automatic;
    for (const auto& [p, r] : roots_) {
      if (r->automatic) automatic.push_back(r.get());
    }
    if (automatic.size() >= static_cast<size_t>(options_.max_auto_roots)) {
      Root* oldest = *std::min_element(automatic.begin(), automatic.end(),
                                       [](const Root* a, const Root* b) {
                                         return a->last_used < b->last_used;
                                       });
      dropped = oldest->path.string();
      RemoveRootLocked(*oldest);
    }
    auto r = std::make_shared<Root>();
    r->path = canon;
    r->registered = deps_.clock->Now();
    r->last_used = r->registered;
    r->automatic = true;
    roots_[canon.string()] = r;
    // The worker scans it after the settle delay, off the submit's path.
    RequestFullRescanLocked(*r, "watched after repeated submits");
    work_ready_.SignalAll();
  }
  if (deps_.log) {
    deps_.log->info("watching {} after repeated submits{}", canon.string(),
                    dropped.empty() ? "" : absl::StrCat("; no longer watching ", dropped));
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
