#include "daemon/watch/watched_roots.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "base/user_names.h"
#include "daemon/watch/watched_roots_internal.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using namespace watch_tree;  // NOLINT: the tree's helpers, internal

// inotify sees only changes made through this kernel: a file system another
// machine also writes could change without an event, and a tree kept from
// events would go stale without anyone knowing.
absl::Status CheckLocalFileSystem(const fs::path& path) {
  struct statfs s;
  if (::statfs(path.c_str(), &s) != 0) return amld::base::ErrnoStatus(errno, "statfs", path);
  static constexpr struct {
    int64_t magic;
    const char* name;
  } kRemote[] = {{0x6969, "NFS"},      {0xFF534D42, "CIFS"},   {0xFE534D42, "SMB2"},
                 {0x517B, "SMB"},      {0x65735546, "FUSE"},   {0x01021997, "9p"},
                 {0x00C36400, "Ceph"}, {0x0BD00BD0, "Lustre"}, {0x47504653, "GPFS"},
                 {0x5346414F, "AFS"},  {0x6B414653, "AFS"}};
  for (const auto& fs_kind : kRemote) {
    if (static_cast<int64_t>(static_cast<uint32_t>(s.f_type)) == fs_kind.magic) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot watch ", path.string(), ": it is on ", fs_kind.name,
          ", where changes made elsewhere send no inotify event; submits of it walk the folder"));
    }
  }
  return absl::OkStatus();
}

namespace {

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const absl::Duration since = t - absl::UnixEpoch();
  ts->set_seconds(absl::ToInt64Seconds(since));
  ts->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(since % absl::Seconds(1))));
}

}  // namespace

absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(std::string(context), ": ", std::string(s.message())));
}

// ------------------------------------------------------------ lifecycle

WatchedRoots::WatchedRoots(WatchedRootsDeps deps, WatchedRootsOptions options)
    : deps_(std::move(deps)),
      options_(std::move(options)),
      settle_(deps_.clock, SettleDelays{options_.settle_delay, options_.max_settle}) {}

WatchedRoots::~WatchedRoots() { Shutdown(); }

absl::Status WatchedRoots::Start(std::unique_ptr<Watcher> watcher) {
  watcher_ = std::move(watcher);
  events_ = std::thread([this] { EventLoop(); });
  AMLD_RETURN_IF_ERROR(LoadRegistered());
  if (options_.run_worker_thread) worker_ = std::thread([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void WatchedRoots::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_ready_.SignalAll();
  }
  if (worker_.joinable()) worker_.join();
  if (events_.joinable()) {
    watcher_->Wake();
    events_.join();
  }
}

void WatchedRoots::WorkerLoop() {
  mu_.Lock();
  while (!stopping_) {
    const absl::Time next = settle_.NextDue();
    if (next <= deps_.clock->Now()) {
      mu_.Unlock();
      RunDueWork();
      mu_.Lock();
      continue;
    }
    if (next == absl::InfiniteFuture()) {
      work_ready_.Wait(&mu_);
    } else {
      work_ready_.WaitWithDeadline(&mu_, next);
    }
  }
  mu_.Unlock();
}

int WatchedRoots::RunDueWork() {
  std::vector<std::shared_ptr<Root>> due;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, unused] : settle_.TakeDue()) {
      auto it = roots_.find(path);
      if (it != roots_.end()) due.push_back(it->second);
    }
  }
  for (const auto& r : due) Process(*r);
  return static_cast<int>(due.size());
}

std::shared_ptr<WatchedRoots::Root> WatchedRoots::FindRoot(const fs::path& path) const {
  absl::MutexLock lock(&mu_);
  auto it = roots_.find(path.lexically_normal().string());
  if (it == roots_.end()) {
    std::string s = path.lexically_normal().string();
    if (s.size() > 1 && s.back() == '/') it = roots_.find(s.substr(0, s.size() - 1));
  }
  return it == roots_.end() ? nullptr : it->second;
}

absl::Status WatchedRoots::CheckOwner(const Root& r, std::optional<uid_t> as_owner) {
  if (!as_owner || r.owner_uid() == *as_owner) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      r.path.string(), " is watched by ", base::DescribeUser(r.owner_uid()),
      ", not by you; only they, root or the admin group may use or unwatch it"));
}

std::shared_ptr<WatchedRoots::Root> WatchedRoots::NewRoot(const fs::path& canon,
                                                          std::optional<RootOwner> owner) const {
  auto r = std::make_shared<Root>();
  r->path = canon;
  r->owner = owner;
  if (owner && amld::base::NeedsFsIdentity(owner->uid)) {
    r->read_as = amld::base::FsIdentity::ForUser(owner->uid, owner->gid);
  }
  r->registered = deps_.clock->Now();
  return r;
}

void WatchedRoots::RemoveRootLocked(Root& r) {
  r.removed = true;
  DropWatchesLocked(r, "");
  settle_.Take(r.path.string());
  roots_.erase(r.path.string());
}

// ------------------------------------------------------------ public calls

absl::Status WatchedRoots::CheckNotInDataDir(const fs::path& canon) const {
  if (options_.data_dir.empty()) return absl::OkStatus();
  std::error_code ec;
  fs::path data = fs::canonical(options_.data_dir, ec);
  if (ec) data = options_.data_dir;
  if (!IsUnder(canon.string(), data.string())) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot watch ", canon.string(), ": it lies inside amld's own data dir ", data.string(),
      ", where every object amld stores would be a new change to store; watch a source folder"));
}

absl::Status WatchedRoots::CheckNoOverlap(const fs::path& path) const {
  const std::string p = path.string();
  for (const auto& [other, r] : roots_) {
    if (IsUnder(p, other) || IsUnder(other, p)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot watch ", p, ": it ", IsUnder(p, other) ? "lies inside" : "contains",
          " the watched root ", other, "; unwatch that first (aml snapshot unwatch ", other, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::WatchedRoot> WatchedRoots::Watch(const fs::path& path,
                                                    std::optional<RootOwner> owner) {
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the folder to watch must be an absolute path, got \"", path.string(), "\""));
  }
  // Resolved and looked at as its owner: a folder they cannot reach is
  // refused here, naming it.
  std::shared_ptr<Root> candidate = NewRoot(path, owner);
  std::error_code ec;
  fs::path canon;
  bool is_dir = false;
  absl::Status local;
  {
    AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, candidate->ReadAs());
    canon = fs::canonical(path, ec);
    if (!ec) is_dir = fs::is_directory(canon, ec);
    if (is_dir) local = CheckLocalFileSystem(canon);
  }
  if (ec) {
    return Annotate(amld::base::ErrnoStatus(ec.value(), "resolve", path), "cannot watch");
  }
  if (!is_dir) {
    return absl::NotFoundError(absl::StrCat("cannot watch ", canon.string(), ": not a folder"));
  }
  AMLD_RETURN_IF_ERROR(CheckNotInDataDir(canon));
  AMLD_RETURN_IF_ERROR(local);
  candidate->path = canon;
  std::shared_ptr<Root> r;
  bool fresh = false;
  bool promoted = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("amld is shutting down");
    auto it = roots_.find(canon.string());
    if (it != roots_.end()) {
      r = it->second;
      if (owner) AMLD_RETURN_IF_ERROR(CheckOwner(*r, owner->uid));
      // Watched automatically until now: registered from here on (kept,
      // and remembered across restarts).
      promoted = r->automatic;
      r->automatic = false;
      if (r->degraded.empty() && r->error.empty()) {
        if (!promoted) return DescribeLocked(*r);
      } else {
        r->degraded.clear();
        RequestFullRescanLocked(*r, "registered again");
      }
    } else {
      AMLD_RETURN_IF_ERROR(CheckNoOverlap(canon));
      r = std::move(candidate);
      r->pending.full_rescan = "initial scan";
      roots_[canon.string()] = r;
      fresh = true;
    }
  }
  ProcessResult result = Process(*r);
  if (!result.status.ok() && fresh) {
    absl::MutexLock lock(&mu_);
    RemoveRootLocked(*r);
    return Annotate(result.status, absl::StrCat("cannot watch ", canon.string()));
  }
  if (fresh || promoted) {
    absl::Status persisted = Persist();
    if (!persisted.ok() && deps_.log) {
      deps_.log->warn("cannot record the watched roots: {}", persisted.ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  return DescribeLocked(*r);
}

absl::StatusOr<pb::WatchedRoot> WatchedRoots::Unwatch(const fs::path& path,
                                                      std::optional<uid_t> as_owner) {
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the root to unwatch must be an absolute path, got \"", path.string(), "\""));
  }
  std::shared_ptr<Root> r = FindRoot(path);
  if (r == nullptr) {
    std::error_code ec;
    const fs::path canon = fs::canonical(path, ec);
    if (!ec) r = FindRoot(canon);
  }
  if (r == nullptr) {
    return absl::NotFoundError(absl::StrCat(path.string(),
                                            " is not a watched root (see `aml "
                                            "snapshot list`)"));
  }
  AMLD_RETURN_IF_ERROR(CheckOwner(*r, as_owner));
  pb::WatchedRoot described;
  {
    absl::MutexLock lock(&mu_);
    RemoveRootLocked(*r);
    described = DescribeLocked(*r);
  }
  absl::Status persisted = Persist();
  if (!persisted.ok() && deps_.log) {
    deps_.log->warn("cannot record the watched roots: {}", persisted.ToString());
  }
  return described;
}

std::vector<pb::WatchedRoot> WatchedRoots::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<pb::WatchedRoot> out;
  for (const auto& [path, r] : roots_) out.push_back(DescribeLocked(*r));
  std::sort(out.begin(), out.end(),
            [](const pb::WatchedRoot& a, const pb::WatchedRoot& b) { return a.path() < b.path(); });
  return out;
}

namespace {

void AddFileDigests(const watch_tree::DirNode& n, absl::flat_hash_set<amld::storage::Digest>* out) {
  for (const auto& [name, file] : n.files) out->insert(file.digest);
  for (const auto& [name, dir] : n.dirs) AddFileDigests(*dir, out);
}

}  // namespace

void WatchedRoots::AddLiveDigests(std::vector<amld::storage::Digest>* trees,
                                  absl::flat_hash_set<amld::storage::Digest>* blobs) const {
  std::vector<std::shared_ptr<Root>> roots;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, r] : roots_) {
      roots.push_back(r);
      if (!r->digest.hash.empty()) trees->push_back(r->digest);
    }
  }
  for (const std::shared_ptr<Root>& r : roots) {
    absl::MutexLock work(&r->work_mu);
    if (r->tree != nullptr) AddFileDigests(*r->tree, blobs);
  }
}

pb::WatchedRoot WatchedRoots::DescribeLocked(const Root& r) const {
  pb::WatchedRoot w;
  w.set_path(r.path.string());
  w.set_automatic(r.automatic);
  w.set_owner_uid(r.owner_uid());
  if (!r.degraded.empty()) {
    w.set_state(pb::WatchedRoot::State::DEGRADED);
    w.set_detail(r.degraded);
  } else if (!r.error.empty() || !r.over_limit.empty()) {
    w.set_state(pb::WatchedRoot::State::ERROR);
    w.set_detail(!r.error.empty() ? r.error : r.over_limit);
  } else if (r.scanning) {
    w.set_state(pb::WatchedRoot::State::SCANNING);
  } else {
    w.set_state(pb::WatchedRoot::State::WATCHING);
  }
  if (!r.digest.hash.empty()) amld::storage::ToProto(r.digest, w.mutable_snapshot_root());
  w.set_file_count(r.file_count);
  w.set_total_bytes(r.total_bytes);
  w.set_directories_watched(static_cast<int64_t>(r.watch_of_dir.size()));
  ToTimestamp(r.registered, w.mutable_registered_time());
  if (r.last_change != absl::InfinitePast())
    ToTimestamp(r.last_change, w.mutable_last_change_time());
  w.set_rescan_count(r.rescans);
  if (r.rescans > 0) {
    w.mutable_last_rescan()->set_reason(r.last_rescan_reason);
    ToTimestamp(r.last_rescan_time, w.mutable_last_rescan()->mutable_time());
  }
  w.set_pending_changes(static_cast<int64_t>(r.pending.size()));
  return w;
}

absl::StatusOr<pb::GetWatchedSnapshotResponse> WatchedRoots::Sync(const fs::path& path,
                                                                  std::optional<uid_t> as_owner) {
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the source folder must be an absolute path, got \"", path.string(), "\""));
  }
  std::shared_ptr<Root> r = FindRoot(path);
  if (r == nullptr) {
    return absl::NotFoundError(absl::StrCat(path.string(), " is not a watched root"));
  }
  AMLD_RETURN_IF_ERROR(CheckOwner(*r, as_owner));
  {
    absl::MutexLock lock(&mu_);
    r->last_used = deps_.clock->Now();  // automatic roots: the least recently used go first
  }
  auto refusal = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    if (r->removed)
      return absl::NotFoundError(absl::StrCat(path.string(), " is not a watched root"));
    if (!r->degraded.empty()) return absl::FailedPreconditionError(r->degraded);
    if (!r->error.empty()) return absl::FailedPreconditionError(r->error);
    return absl::OkStatus();
  };
  bool retry_first;
  {
    absl::MutexLock lock(&mu_);
    retry_first = r->scanning || !r->error.empty();
  }
  // The root's own watch must exist for its cookie to be seen.
  if (retry_first) Process(*r);
  AMLD_RETURN_IF_ERROR(refusal());

  std::string cookie_name;
  {
    absl::MutexLock lock(&mu_);
    cookie_name = absl::StrCat(kCookiePrefix, ::getpid(), "-", ++next_cookie_);
    cookies_waiting_.insert(cookie_name);
  }
  const fs::path cookie = r->path / cookie_name;
  int fd = -1;
  int err = 0;
  {
    // Written as the owner: the daemon writes nowhere they could not.
    absl::StatusOr<amld::base::ScopedFsIdentity> as = r->ReadAs();
    if (as.ok()) {
      fd = ::open(cookie.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      err = errno;
    } else {
      err = EPERM;
    }
  }
  if (fd < 0) {
    absl::MutexLock lock(&mu_);
    cookies_waiting_.erase(cookie_name);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write the sync cookie ", cookie.string(), ": ", std::strerror(err),
        "; amld needs to write into a watched root to prove it has seen every change"));
  }
  ::close(fd);
  bool seen = false;
  bool stopping = false;
  {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() {
      mu_.AssertHeld();
      return stopping_ || r->removed || cookies_seen_.contains(cookie_name);
    };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), options_.cookie_timeout);
    seen = cookies_seen_.erase(cookie_name) > 0;
    cookies_waiting_.erase(cookie_name);
    stopping = stopping_;
  }
  {
    absl::StatusOr<amld::base::ScopedFsIdentity> as = r->ReadAs();
    ::unlink(cookie.c_str());
  }
  if (stopping) return absl::UnavailableError("amld is shutting down");
  if (!seen) {
    AMLD_RETURN_IF_ERROR(refusal());
    return absl::DeadlineExceededError(absl::StrCat(
        "amld did not see the event of its sync cookie in ", r->path.string(), " within ",
        absl::FormatDuration(options_.cookie_timeout), "; the folder is walked instead"));
  }
  ProcessResult result = Process(*r);
  AMLD_RETURN_IF_ERROR(refusal());
  {
    absl::MutexLock lock(&mu_);
    if (!r->over_limit.empty()) return absl::ResourceExhaustedError(r->over_limit);
  }
  if (!result.digest) return absl::UnavailableError("the tree is not ready; try again");
  pb::GetWatchedSnapshotResponse out;
  amld::storage::ToProto(*result.digest, out.mutable_snapshot_root());
  out.set_file_count(result.file_count);
  out.set_total_bytes(result.total_bytes);
  out.set_changes_applied(result.applied);
  out.set_rescanned(result.rescanned);
  return out;
}

}  // namespace amld::daemon
