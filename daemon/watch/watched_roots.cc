#include "daemon/watch/watched_roots.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "storage/digest.h"
#include "base/file_util.h"
#include "storage/ignore.h"
#include "storage/snapshot/snapshot.h"
#include "base/status_macros.h"

namespace amld::daemon {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using amld::storage::Digest;

namespace {

constexpr char kCookiePrefix[] = ".amld-cookie-";
// Walks of one folder, each after adding the watches the previous one found
// missing; a folder still growing new subfolders after that is walked again
// later.
constexpr int kMaxScanPasses = 4;
constexpr size_t kLargestFilesListed = 10;

// What stat said about a file when it was hashed, and whether that may vouch
// for its digest in a later rescan.
struct FileEntry {
  Digest digest;
  bool executable = false;
  int64_t size = -1;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  uint32_t mode = 0;
  uint64_t nlink = 1;
  // False when the file changed while read, or its mtime/ctime was less than
  // StatCache::kRacyWindow older than the read (it could change again
  // without its stat changing).
  bool trusted = false;
};

int64_t Nanos(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

FileEntry FromStat(const struct stat& st) {
  FileEntry e;
  e.size = st.st_size;
  e.mtime_ns = Nanos(st.st_mtim);
  e.ctime_ns = Nanos(st.st_ctim);
  e.inode = static_cast<uint64_t>(st.st_ino);
  e.mode = static_cast<uint32_t>(st.st_mode);
  e.nlink = static_cast<uint64_t>(st.st_nlink);
  return e;
}

bool SameStat(const FileEntry& e, const struct stat& st) {
  return e.size == st.st_size && e.mtime_ns == Nanos(st.st_mtim) &&
         e.ctime_ns == Nanos(st.st_ctim) && e.inode == static_cast<uint64_t>(st.st_ino) &&
         e.mode == static_cast<uint32_t>(st.st_mode);
}

// The racy-git rule (storage/snapshot/stat_cache.h): only a file last changed a while
// before it was read may be trusted by its stat alone.
bool OldEnough(const struct stat& st, absl::Time read_started) {
  const int64_t cutoff = absl::ToUnixNanos(read_started - absl::Seconds(1));
  return Nanos(st.st_mtim) < cutoff && Nanos(st.st_ctim) < cutoff;
}

std::pair<std::string, std::string> SplitParent(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", std::string(name));
}

// `path` is `dir` or below it ("" is the root, above everything).
bool IsUnder(const std::string& path, const std::string& dir) {
  return dir.empty() || path == dir ||
         (path.size() > dir.size() && absl::StartsWith(path, dir) && path[dir.size()] == '/');
}

bool IsIgnoreFileName(std::string_view name) {
  return name == ".amlignore" || name == ".gitignore";
}

bool AlwaysLeftOut(absl::string_view name) {
  return name == ".git" || absl::StartsWith(name, kCookiePrefix);
}

// Names a walk would accept without further checks (printable ASCII); any
// other name goes through a walk of its folder, which applies the full rules
// (UTF-8, length) and fails the same way a client walk would.
bool IsPlainName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string HumanBytes(int64_t n) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) return absl::StrCat(n, " B");
  double v = static_cast<double>(n);
  int unit = -1;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const absl::Duration since = t - absl::UnixEpoch();
  ts->set_seconds(absl::ToInt64Seconds(since));
  ts->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(since % absl::Seconds(1))));
}

absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(std::string(context), ": ", std::string(s.message())));
}

// One folder of a root's current tree. `digest` (with the totals) is cached
// and cleared along the path of every change.
struct DirNode {
  std::map<std::string, FileEntry> files;
  std::map<std::string, std::unique_ptr<DirNode>> dirs;
  std::map<std::string, std::string> links;  // name → target
  std::optional<Digest> digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
};

}  // namespace

struct WatchedRoots::Pending {
  absl::flat_hash_set<std::string> paths;        // entries to look at again
  absl::flat_hash_set<std::string> rescan_dirs;  // folders to walk again
  bool rules_changed = false;                    // an ignore file changed
  std::string full_rescan;                       // non-empty: why
  bool empty() const { return paths.empty() && rescan_dirs.empty() && full_rescan.empty(); }
  size_t size() const { return paths.size() + rescan_dirs.size() + (full_rescan.empty() ? 0 : 1); }
};

struct WatchedRoots::ProcessResult {
  absl::Status status;
  int64_t applied = 0;
  bool rescanned = false;
  std::optional<Digest> digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
};

struct WatchedRoots::Root {
  fs::path path;
  absl::Time registered;

  // Held while changes are applied; guards tree and rules.
  absl::Mutex work_mu;
  std::unique_ptr<DirNode> tree;  // null until the first scan succeeds
  std::unique_ptr<amld::storage::IgnoreRules> rules;
  // Files with more than one name: a write through a name outside this
  // folder's watches sends no event, so each is stat'ed again on every pass.
  std::set<std::string> linked;

  // The rest is guarded by WatchedRoots::mu_.
  Pending pending;
  absl::Time first_pending = absl::InfiniteFuture();
  absl::Time settle_at = absl::InfiniteFuture();
  bool removed = false;  // unwatched
  bool scanning = true;  // no scan finished yet
  std::string degraded;  // why it is DEGRADED
  std::string error;     // why it is in ERROR
  std::string over_limit;
  Digest digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
  absl::Time last_change = absl::InfinitePast();
  int64_t rescans = 0;
  std::string last_rescan_reason;
  absl::Time last_rescan_time;
  absl::flat_hash_map<std::string, uint64_t> watch_of_dir;
};

namespace {

DirNode* FindDir(DirNode* root, const std::string& rel) {
  DirNode* node = root;
  if (node == nullptr || rel.empty()) return node;
  for (absl::string_view part : absl::StrSplit(rel, '/')) {
    auto it = node->dirs.find(std::string(part));
    if (it == node->dirs.end()) return nullptr;
    node = it->second.get();
  }
  return node;
}

const FileEntry* FindFile(DirNode* root, const std::string& rel) {
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(root, parent_rel);
  if (parent == nullptr) return nullptr;
  auto it = parent->files.find(name);
  return it == parent->files.end() ? nullptr : &it->second;
}

void InvalidatePath(DirNode* root, const std::string& rel_dir) {
  DirNode* node = root;
  if (node == nullptr) return;
  node->digest.reset();
  if (rel_dir.empty()) return;
  for (absl::string_view part : absl::StrSplit(rel_dir, '/')) {
    auto it = node->dirs.find(std::string(part));
    if (it == node->dirs.end()) return;
    node = it->second.get();
    node->digest.reset();
  }
}

// Encodes the folders whose digest was cleared (children first), storing
// each new Directory blob.
absl::StatusOr<Digest> ComputeDigest(DirNode& n, amld::storage::ContentStore& cas) {
  if (n.digest) return *n.digest;
  pb::Directory dir;
  int64_t count = 0;
  int64_t bytes = 0;
  for (const auto& [name, f] : n.files) {
    pb::FileNode* node = dir.add_files();
    node->set_name(name);
    amld::storage::ToProto(f.digest, node->mutable_digest());
    node->set_is_executable(f.executable);
    ++count;
    bytes += f.digest.size;
  }
  for (auto& [name, child] : n.dirs) {
    AMLD_ASSIGN_OR_RETURN(Digest d, ComputeDigest(*child, cas));
    pb::DirectoryNode* node = dir.add_directories();
    node->set_name(name);
    amld::storage::ToProto(d, node->mutable_digest());
    count += child->file_count;
    bytes += child->total_bytes;
  }
  for (const auto& [name, target] : n.links) {
    pb::SymlinkNode* node = dir.add_symlinks();
    node->set_name(name);
    node->set_target(target);
  }
  const std::string encoded = amld::storage::EncodeDirectory(dir);
  Digest d = amld::storage::DigestOf(encoded);
  if (!cas.Contains(d)) {
    AMLD_RETURN_IF_ERROR(cas.PutVerified(d, encoded, amld::storage::Durability::kDeferred));
  }
  n.digest = d;
  n.file_count = count;
  n.total_bytes = bytes;
  return d;
}

void CollectDirs(const DirNode& n, const std::string& rel, std::vector<std::string>* out) {
  out->push_back(rel);
  for (const auto& [name, child] : n.dirs) CollectDirs(*child, Join(rel, name), out);
}

void CollectFiles(const DirNode& n, const std::string& rel,
                  std::vector<std::pair<int64_t, std::string>>* out) {
  for (const auto& [name, f] : n.files) out->emplace_back(f.digest.size, Join(rel, name));
  for (const auto& [name, child] : n.dirs) CollectFiles(*child, Join(rel, name), out);
}

void CollectLinked(const DirNode& n, const std::string& rel, std::set<std::string>* out) {
  for (const auto& [name, f] : n.files) {
    if (f.nlink > 1) out->insert(Join(rel, name));
  }
  for (const auto& [name, child] : n.dirs) CollectLinked(*child, Join(rel, name), out);
}

void ForgetUnder(std::set<std::string>* paths, const std::string& rel) {
  for (auto it = paths->lower_bound(rel); it != paths->end() && absl::StartsWith(*it, rel);) {
    it = IsUnder(*it, rel) ? paths->erase(it) : std::next(it);
  }
}

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

int Depth(const std::string& rel) {
  return rel.empty() ? 0 : static_cast<int>(std::count(rel.begin(), rel.end(), '/')) + 1;
}

// A DigestCache over the root's current tree, for walks: a file whose stat
// still matches its trusted entry is not read again. It records what stat
// said of every file, so the new nodes keep it for the next walk.
class TreeCache final : public amld::storage::DigestCache {
 public:
  TreeCache(DirNode* tree, absl::Time walk_started) : tree_(tree), started_(walk_started) {}

  std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) override {
    FileEntry& seen = seen_[rel_path] = FromStat(st);
    const FileEntry* old = FindFile(tree_, rel_path);
    if (old == nullptr || !old->trusted || !SameStat(*old, st)) return std::nullopt;
    seen.trusted = true;
    return old->digest;
  }
  void Store(const std::string& rel_path, const struct stat& st, const Digest&) override {
    FileEntry& seen = seen_[rel_path] = FromStat(st);
    seen.trusted = OldEnough(st, started_);
  }
  FileEntry Seen(const std::string& rel_path) const {
    auto it = seen_.find(rel_path);
    return it == seen_.end() ? FileEntry() : it->second;
  }

 private:
  DirNode* tree_;
  absl::Time started_;
  absl::flat_hash_map<std::string, FileEntry> seen_;
};

// The nodes of a walked (sub)tree, from its Directory blobs.
absl::StatusOr<std::unique_ptr<DirNode>> NodeFromSnapshot(
    const amld::storage::Snapshot& snap, const Digest& digest, const std::string& rel_dir,
    const std::function<FileEntry(const std::string&)>& seen) {
  auto node = std::make_unique<DirNode>();
  if (digest != Digest::Empty()) {
    auto blob = snap.directories.find(digest);
    if (blob == snap.directories.end()) {
      return absl::InternalError(
          absl::StrCat("walk of ", rel_dir, " lacks directory ", digest.ToString()));
    }
    AMLD_ASSIGN_OR_RETURN(pb::Directory dir,
                          amld::storage::DecodeDirectory(blob->second, Depth(rel_dir)));
    for (const pb::FileNode& f : dir.files()) {
      FileEntry e = seen(Join(rel_dir, f.name()));
      e.digest = amld::storage::FromProto(f.digest());
      e.executable = f.is_executable();
      node->file_count += 1;
      node->total_bytes += e.digest.size;
      node->files.emplace(f.name(), std::move(e));
    }
    for (const pb::DirectoryNode& d : dir.directories()) {
      AMLD_ASSIGN_OR_RETURN(auto child, NodeFromSnapshot(snap, amld::storage::FromProto(d.digest()),
                                                         Join(rel_dir, d.name()), seen));
      node->file_count += child->file_count;
      node->total_bytes += child->total_bytes;
      node->dirs.emplace(d.name(), std::move(child));
    }
    for (const pb::SymlinkNode& l : dir.symlinks()) node->links.emplace(l.name(), l.target());
  }
  node->digest = digest;
  return node;
}

}  // namespace

// ------------------------------------------------------------ lifecycle

WatchedRoots::WatchedRoots(WatchedRootsDeps deps, WatchedRootsOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

WatchedRoots::~WatchedRoots() { Shutdown(); }

absl::Status WatchedRoots::Start(WatcherFactory make_watcher) {
  AMLD_ASSIGN_OR_RETURN(watcher_,
                        make_watcher([this](std::vector<TreeEvent> e) { OnEvents(std::move(e)); }));
  if (!options_.state_file.empty()) {
    absl::StatusOr<std::string> text = amld::base::ReadFileToString(options_.state_file);
    if (!text.ok() && !absl::IsNotFound(text.status())) return text.status();
    if (text.ok()) {
      absl::MutexLock lock(&mu_);
      // "<registered, unix seconds> <C-escaped path>" per line.
      for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
        std::pair<absl::string_view, absl::string_view> fields =
            absl::StrSplit(line, absl::MaxSplits(' ', 1));
        int64_t registered = 0;
        std::string path;
        if (!absl::SimpleAtoi(fields.first, &registered) ||
            !absl::CUnescape(fields.second, &path) || path.empty() || path[0] != '/') {
          if (deps_.log) deps_.log->warn("ignoring a bad line of {}", options_.state_file.string());
          continue;
        }
        auto r = std::make_shared<Root>();
        r->path = path;
        r->registered = absl::FromUnixSeconds(registered);
        roots_[path] = r;
        RequestFullRescanLocked(*r, "daemon restart");
        r->settle_at = deps_.clock->Now();
      }
    }
  }
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
  watcher_.reset();  // joins its thread; OnEvents now ignores late batches
}

void WatchedRoots::WorkerLoop() {
  mu_.Lock();
  while (!stopping_) {
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [path, r] : roots_) next = std::min(next, r->settle_at);
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
    const absl::Time now = deps_.clock->Now();
    for (const auto& [path, r] : roots_) {
      if (r->settle_at <= now) due.push_back(r);
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

absl::Status WatchedRoots::Persist() {
  if (options_.state_file.empty()) return absl::OkStatus();
  absl::MutexLock persist(&persist_mu_);
  std::vector<std::pair<std::string, int64_t>> roots;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, r] : roots_)
      roots.emplace_back(path, absl::ToUnixSeconds(r->registered));
  }
  std::sort(roots.begin(), roots.end());
  std::string text;
  for (const auto& [path, registered] : roots) {
    absl::StrAppend(&text, registered, " ", absl::CEscape(path), "\n");
  }
  return amld::base::WriteFileAtomically(options_.state_file, text, 0600);
}

// ------------------------------------------------------------ events

void WatchedRoots::OnEvents(std::vector<TreeEvent> events) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  for (const TreeEvent& e : events) HandleEventLocked(e);
  work_ready_.SignalAll();
}

void WatchedRoots::MarkPathLocked(Root& r, const std::string& rel) {
  r.pending.paths.insert(rel);
  const absl::Time now = deps_.clock->Now();
  if (r.first_pending == absl::InfiniteFuture()) r.first_pending = now;
  r.settle_at = std::min(now + options_.settle_delay, r.first_pending + options_.max_settle);
}

void WatchedRoots::RequestFullRescanLocked(Root& r, const std::string& reason) {
  r.pending.full_rescan = reason;
  const absl::Time now = deps_.clock->Now();
  if (r.first_pending == absl::InfiniteFuture()) r.first_pending = now;
  r.settle_at = std::min(now + options_.settle_delay, r.first_pending + options_.max_settle);
}

void WatchedRoots::HandleEventLocked(const TreeEvent& e) {
  if (e.overflow) {
    for (auto& [path, r] : roots_) {
      RequestFullRescanLocked(*r, "inotify queue overflow: events were lost");
    }
    // The rescan comes after every waiting cookie was written, so it sees
    // what those callers need.
    cookies_seen_.insert(cookies_waiting_.begin(), cookies_waiting_.end());
    cookies_waiting_.clear();
    return;
  }
  auto it = watches_.find(e.watch_id);
  if (it == watches_.end()) {
    if (e.watch_gone) {
      retired_watches_.erase(e.watch_id);
      return;
    }
    if (retired_watches_.contains(e.watch_id)) return;
    for (auto& [path, r] : roots_) {
      RequestFullRescanLocked(*r, absl::StrCat("event for an unknown watch (", e.watch_id, ")"));
    }
    return;
  }
  Root& r = *it->second.root;
  const std::string dir = it->second.rel_dir;
  if (e.watch_gone || e.self_gone) {
    if (dir.empty()) {
      r.error = absl::StrCat("the folder ", r.path.string(),
                             " was removed or moved away; watch it again with `aml snapshot "
                             "watch` (submits walk it on the client until then)");
      DropWatchesLocked(r, "");
      // Changes still pending must not be applied to a tree nobody watches.
      RequestFullRescanLocked(r, "the folder was removed or moved");
      return;
    }
    if (e.watch_gone) {
      auto w = r.watch_of_dir.find(dir);
      if (w != r.watch_of_dir.end() && w->second == e.watch_id) r.watch_of_dir.erase(w);
      watches_.erase(e.watch_id);
    }
    MarkPathLocked(r, dir);
    return;
  }
  if (e.name.empty()) {  // about the watched folder itself (its attributes)
    if (!dir.empty()) MarkPathLocked(r, dir);
    return;
  }
  if (dir.empty() && absl::StartsWith(e.name, kCookiePrefix)) {
    if (e.created && cookies_waiting_.erase(e.name) > 0) cookies_seen_.insert(e.name);
    return;
  }
  MarkPathLocked(r, Join(dir, e.name));
  if (IsIgnoreFileName(e.name)) {
    r.pending.rules_changed = true;
    r.pending.rescan_dirs.insert(dir);
  }
}

void WatchedRoots::DropWatchesLocked(Root& r, const std::string& rel_dir) {
  std::vector<std::string> under;
  for (const auto& [dir, id] : r.watch_of_dir) {
    if (IsUnder(dir, rel_dir)) under.push_back(dir);
  }
  for (const std::string& dir : under) DropWatchLocked(r, dir);
}

void WatchedRoots::DropWatchLocked(Root& r, const std::string& rel_dir) {
  auto it = r.watch_of_dir.find(rel_dir);
  if (it == r.watch_of_dir.end()) return;
  const uint64_t id = it->second;
  r.watch_of_dir.erase(it);
  auto target = watches_.find(id);
  // A folder moved elsewhere in the tree may own this watch now.
  if (target == watches_.end() || target->second.root != &r || target->second.rel_dir != rel_dir) {
    return;
  }
  watches_.erase(target);
  retired_watches_.insert(id);
  if (watcher_ != nullptr) watcher_->RemoveWatch(id);
}

// ------------------------------------------------------------ processing

WatchedRoots::ProcessResult WatchedRoots::Process(Root& r) {
  absl::MutexLock work(&r.work_mu);
  Pending p;
  {
    absl::MutexLock lock(&mu_);
    if (r.removed) {
      ProcessResult gone;
      gone.status = absl::NotFoundError("the root is no longer watched");
      return gone;
    }
    p = std::exchange(r.pending, Pending());
    r.first_pending = r.settle_at = absl::InfiniteFuture();
  }
  if (r.tree != nullptr) {
    for (const std::string& rel : r.linked) {
      struct stat st;
      const FileEntry* e = FindFile(r.tree.get(), rel);
      if (e == nullptr || ::lstat((r.path / rel).c_str(), &st) != 0 || !SameStat(*e, st)) {
        p.paths.insert(rel);
      }
    }
  }
  ProcessResult out;
  bool incremental = false;
  if (!p.full_rescan.empty() || r.tree == nullptr) {
    out.status = FullScan(r, p.full_rescan.empty() ? "initial scan" : p.full_rescan);
    out.rescanned = true;
  } else if (!p.empty()) {
    out.applied = static_cast<int64_t>(p.size());
    out.status = ApplyChanges(r, p);
    incremental = true;
  }
  if (!out.status.ok()) {
    if (deps_.log) deps_.log->warn("watched root {}: {}", r.path.string(), out.status.ToString());
    absl::MutexLock lock(&mu_);
    r.error = std::string(out.status.message());
    r.scanning = false;
    // Retried in full at the next change, or the next Sync or WatchRoot.
    r.pending.full_rescan = "retry after an error";
    return out;
  }
  if (out.rescanned || incremental) Publish(r, incremental);
  if (r.tree != nullptr && r.tree->digest) {
    out.digest = *r.tree->digest;
    out.file_count = r.tree->file_count;
    out.total_bytes = r.tree->total_bytes;
  }
  return out;
}

void WatchedRoots::Publish(Root& r, bool changed) {
  std::string problem;
  if (r.tree != nullptr) {
    absl::StatusOr<Digest> d = ComputeDigest(*r.tree, *deps_.cas);
    if (!d.ok()) problem = absl::StrCat("cannot store the tree: ", d.status().message());
    // The files and folders came in with deferred durability (one sync for
    // a whole scan): make them durable here, on the worker, so that a submit
    // of the tree finds nothing left to sync. A sync inside SubmitRun waits
    // for whatever else is dirty on the filesystem (ext4's ordered mode: a
    // run dir just materialized), 0.1-0.5 s here.
    absl::Status synced = d.ok() ? deps_.cas->SyncPending() : absl::OkStatus();
    if (!synced.ok()) problem = absl::StrCat("cannot store the tree: ", synced.message());
  }
  std::string over = problem.empty() ? LimitProblem(r) : "";
  absl::MutexLock lock(&mu_);
  r.scanning = false;
  r.over_limit = std::move(over);
  if (!problem.empty()) {
    r.error = std::move(problem);
    r.pending.full_rescan = "retry after an error";
    return;
  }
  r.error.clear();
  if (r.tree != nullptr && r.tree->digest) {
    r.digest = *r.tree->digest;
    r.file_count = r.tree->file_count;
    r.total_bytes = r.tree->total_bytes;
  }
  if (changed) r.last_change = deps_.clock->Now();
}

std::string WatchedRoots::LimitProblem(Root& r) {
  if (r.tree == nullptr || !r.tree->digest) return "";
  const int64_t files = r.tree->file_count;
  const int64_t bytes = r.tree->total_bytes;
  std::string over;
  if (options_.max_snapshot_files > 0 && files > options_.max_snapshot_files) {
    over = absl::StrCat(files, " files, over the limit of ", options_.max_snapshot_files, " files");
  } else if (options_.max_snapshot_bytes > 0 && bytes > options_.max_snapshot_bytes) {
    over = absl::StrCat(HumanBytes(bytes), " (", bytes, " bytes), over the limit of ",
                        HumanBytes(options_.max_snapshot_bytes), " (", options_.max_snapshot_bytes,
                        " bytes)");
  } else {
    return "";
  }
  std::vector<std::pair<int64_t, std::string>> all;
  CollectFiles(*r.tree, "", &all);
  const size_t listed = std::min(kLargestFilesListed, all.size());
  std::partial_sort(all.begin(), all.begin() + listed, all.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string out =
      absl::StrCat("snapshot of ", r.path.string(), " holds ", over,
                   ". List what the run does not need in .amlignore, or raise amld's limit "
                   "(--max-snapshot-files, --max-snapshot-bytes). Largest files:");
  for (size_t i = 0; i < listed; ++i) {
    absl::StrAppend(&out, "\n  ", all[i].second, "  ", HumanBytes(all[i].first), " (", all[i].first,
                    " bytes)");
  }
  return out;
}

absl::Status WatchedRoots::FullScan(Root& r, const std::string& reason) {
  std::error_code ec;
  if (!fs::is_directory(r.path, ec)) {
    return absl::NotFoundError(absl::StrCat(r.path.string(),
                                            " no longer exists or is not a folder; unwatch it "
                                            "(aml snapshot unwatch) or create it again"));
  }
  r.rules = std::make_unique<amld::storage::IgnoreRules>(r.path);
  AMLD_RETURN_IF_ERROR(ScanSubtree(r, "", /*apply_limits=*/true));
  absl::MutexLock lock(&mu_);
  ++r.rescans;
  r.last_rescan_reason = reason;
  r.last_rescan_time = deps_.clock->Now();
  if (deps_.log) {
    deps_.log->info("watched root {}: full scan ({}), {} folders watched", r.path.string(), reason,
                    r.watch_of_dir.size());
  }
  return absl::OkStatus();
}

absl::Status WatchedRoots::ScanSubtree(Root& r, const std::string& rel_dir, bool apply_limits) {
  for (int pass = 0; pass < kMaxScanPasses; ++pass) {
    TreeCache cache(r.tree.get(), absl::Now());
    amld::storage::BuildOptions o;
    o.rules = r.rules.get();
    o.subdir = rel_dir;
    o.cache = &cache;
    o.threads = options_.hash_threads;
    if (apply_limits) {
      o.max_total_bytes = options_.max_snapshot_bytes;
      o.max_files = options_.max_snapshot_files;
    }
    absl::StatusOr<amld::storage::Snapshot> snap = amld::storage::BuildSnapshot(r.path, o);
    if (!snap.ok()) {
      if (!rel_dir.empty() && absl::IsNotFound(snap.status())) {
        RemoveEntry(r, rel_dir);  // removed meanwhile
        return absl::OkStatus();
      }
      return snap.status();
    }
    absl::Status stored =
        amld::storage::StoreSnapshot(*snap, *deps_.cas, amld::storage::Durability::kDeferred);
    if (absl::IsAborted(stored)) continue;  // a file changed under us: walk again
    AMLD_RETURN_IF_ERROR(stored);
    AMLD_ASSIGN_OR_RETURN(
        std::unique_ptr<DirNode> node,
        NodeFromSnapshot(*snap, snap->root, rel_dir,
                         [&cache](const std::string& rel) { return cache.Seen(rel); }));
    ForgetUnder(&r.linked, rel_dir);
    CollectLinked(*node, rel_dir, &r.linked);
    if (rel_dir.empty()) {
      r.tree = std::move(node);
    } else {
      auto [parent_rel, name] = SplitParent(rel_dir);
      DirNode* parent = FindDir(r.tree.get(), parent_rel);
      if (parent == nullptr) return absl::OkStatus();  // its parent went away meanwhile
      parent->files.erase(name);
      parent->links.erase(name);
      parent->dirs[name] = std::move(node);
      InvalidatePath(r.tree.get(), parent_rel);
    }
    absl::StatusOr<bool> added = SyncWatches(r, rel_dir);
    if (!added.ok()) {
      if (!absl::IsResourceExhausted(added.status())) return added.status();
      SetDegraded(r, added.status());
      return absl::OkStatus();
    }
    // A folder watched only now may have changed before its watch existed:
    // the next pass (stats only, for what did not change) sees that.
    if (!*added) return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  r.pending.rescan_dirs.insert(rel_dir);
  MarkPathLocked(r, rel_dir);
  return absl::OkStatus();
}

absl::StatusOr<bool> WatchedRoots::SyncWatches(Root& r, const std::string& rel_dir) {
  std::vector<std::string> desired;
  if (DirNode* node = FindDir(r.tree.get(), rel_dir)) CollectDirs(*node, rel_dir, &desired);
  absl::flat_hash_set<std::string> wanted(desired.begin(), desired.end());
  absl::MutexLock lock(&mu_);
  if (r.removed || stopping_ || watcher_ == nullptr) return false;
  std::vector<std::string> gone;
  for (const auto& [dir, id] : r.watch_of_dir) {
    if (IsUnder(dir, rel_dir) && !wanted.contains(dir)) gone.push_back(dir);
  }
  for (const std::string& dir : gone) DropWatchLocked(r, dir);
  bool added = false;
  for (const std::string& d : desired) {
    if (r.watch_of_dir.contains(d)) continue;
    absl::StatusOr<uint64_t> id = watcher_->AddWatch(d.empty() ? r.path : r.path / d);
    if (!id.ok()) {
      if (absl::IsNotFound(id.status())) continue;  // removed meanwhile; its parent tells
      return id.status();
    }
    // A folder moved inside the tree keeps its inode and so its watch.
    auto prev = watches_.find(*id);
    if (prev != watches_.end()) prev->second.root->watch_of_dir.erase(prev->second.rel_dir);
    retired_watches_.erase(*id);
    watches_[*id] = WatchTarget{&r, d};
    r.watch_of_dir[d] = *id;
    added = true;
  }
  return added;
}

void WatchedRoots::SetDegraded(Root& r, const absl::Status& why) {
  std::vector<std::string> dirs;
  if (r.tree != nullptr) CollectDirs(*r.tree, "", &dirs);
  const int64_t limit = InotifyWatchLimit();
  const int64_t needed = static_cast<int64_t>(dirs.size());
  const int64_t suggest = limit > 0 ? std::max(limit * 2, limit + needed * 2) : 524288;
  absl::MutexLock lock(&mu_);
  DropWatchesLocked(r, "");
  r.degraded = absl::StrCat(
      std::string(why.message()), "; this folder needs ", needed,
      " watches. Raise the limit (as root): `sysctl fs.inotify.max_user_watches=", suggest,
      "` (put it in /etc/sysctl.d/ to keep it), then run `aml snapshot watch ", r.path.string(),
      "` again. Until then submits of this folder walk it on the client");
  if (deps_.log) deps_.log->warn("watched root {} degraded: {}", r.path.string(), r.degraded);
}

absl::Status WatchedRoots::ApplyChanges(Root& r, Pending& p) {
  if (p.rules_changed) r.rules = std::make_unique<amld::storage::IgnoreRules>(r.path);
  std::vector<std::string> paths(p.paths.begin(), p.paths.end());
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> rescan(p.rescan_dirs.begin(), p.rescan_dirs.end());
  for (const std::string& rel : paths) AMLD_RETURN_IF_ERROR(ApplyPath(r, rel, &rescan));
  // Walk only the outermost folders; ancestors sort first by depth.
  std::sort(rescan.begin(), rescan.end(), [](const std::string& a, const std::string& b) {
    const int da = Depth(a), db = Depth(b);
    return da != db ? da < db : a < b;
  });
  std::vector<std::string> outer;
  for (const std::string& d : rescan) {
    bool covered = std::any_of(outer.begin(), outer.end(),
                               [&](const std::string& o) { return IsUnder(d, o); });
    if (!covered) outer.push_back(d);
  }
  for (const std::string& d : outer) {
    if (!d.empty()) {
      struct stat st;
      auto [parent_rel, name] = SplitParent(d);
      if (FindDir(r.tree.get(), parent_rel) == nullptr) continue;
      if (::lstat((r.path / d).c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || AlwaysLeftOut(name) ||
          r.rules->Check(d, true).ignored) {
        RemoveEntry(r, d);
        continue;
      }
    }
    AMLD_RETURN_IF_ERROR(ScanSubtree(r, d, /*apply_limits=*/false));
  }
  return absl::OkStatus();
}

absl::Status WatchedRoots::ApplyPath(Root& r, const std::string& rel,
                                     std::vector<std::string>* rescan_dirs) {
  if (rel.empty()) return absl::OkStatus();  // the root itself
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return absl::OkStatus();  // inside a folder left out or gone
  const fs::path abs = r.path / rel;
  struct stat st;
  if (::lstat(abs.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      RemoveEntry(r, rel);
      return absl::OkStatus();
    }
    return Annotate(amld::base::ErrnoStatus(errno, "stat", abs), "cannot snapshot");
  }
  const bool is_dir = S_ISDIR(st.st_mode);
  if (AlwaysLeftOut(name) || r.rules->Check(rel, is_dir).ignored) {
    RemoveEntry(r, rel);
    return absl::OkStatus();
  }
  if (is_dir) {
    if (!parent->dirs.contains(name)) {
      RemoveEntry(r, rel);  // a file or link of that name
      rescan_dirs->push_back(rel);
    }
    return absl::OkStatus();
  }
  if (S_ISREG(st.st_mode) && IsPlainName(name)) return StoreFile(r, rel, rescan_dirs);
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
    // Links and unusual names: a walk of the folder applies every check.
    rescan_dirs->push_back(parent_rel);
    return absl::OkStatus();
  }
  RemoveEntry(r, rel);  // fifos, sockets, devices are never part of a snapshot
  return absl::OkStatus();
}

absl::Status WatchedRoots::StoreFile(Root& r, const std::string& rel,
                                     std::vector<std::string>* rescan_dirs) {
  auto [parent_rel, name] = SplitParent(rel);
  const fs::path abs = r.path / rel;
  const absl::Time started = absl::Now();
  amld::base::ScopedFd fd(::open(abs.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      RemoveEntry(r, rel);
      return absl::OkStatus();
    }
    if (errno == ELOOP) {  // became a link
      rescan_dirs->push_back(parent_rel);
      return absl::OkStatus();
    }
    return Annotate(amld::base::ErrnoStatus(errno, "open", abs),
                    "cannot read a file of the snapshot (fix its permissions or list it in "
                    ".amlignore)");
  }
  struct stat before, after;
  if (::fstat(fd.get(), &before) != 0) return amld::base::ErrnoStatus(errno, "fstat", abs);
  if (!S_ISREG(before.st_mode)) {
    rescan_dirs->push_back(parent_rel);
    return absl::OkStatus();
  }
  // Through the descriptor: the file stat saw, even if the path changed.
  // Deferred durability: the SubmitRun that uses the tree syncs it.
  AMLD_ASSIGN_OR_RETURN(Digest d, deps_.cas->PutFile(absl::StrCat("/proc/self/fd/", fd.get()),
                                                     amld::storage::Durability::kDeferred));
  const bool stable = ::fstat(fd.get(), &after) == 0 && SameStat(FromStat(before), after) &&
                      after.st_size == d.size;
  FileEntry e = FromStat(before);
  e.digest = std::move(d);
  e.executable = (before.st_mode & 0111) != 0;
  e.trusted = stable && OldEnough(before, started);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return absl::OkStatus();
  if (parent->dirs.erase(name) > 0) {
    absl::MutexLock lock(&mu_);
    DropWatchesLocked(r, rel);
  }
  parent->links.erase(name);
  if (e.nlink > 1) {
    r.linked.insert(rel);
  } else {
    r.linked.erase(rel);
  }
  parent->files[name] = std::move(e);
  InvalidatePath(r.tree.get(), parent_rel);
  return absl::OkStatus();
}

void WatchedRoots::RemoveEntry(Root& r, const std::string& rel) {
  if (rel.empty()) return;
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return;
  ForgetUnder(&r.linked, rel);
  bool changed = parent->files.erase(name) + parent->links.erase(name) > 0;
  if (parent->dirs.erase(name) > 0) {
    absl::MutexLock lock(&mu_);
    DropWatchesLocked(r, rel);
    changed = true;
  }
  if (changed) InvalidatePath(r.tree.get(), parent_rel);
}

// ------------------------------------------------------------ public calls

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

absl::StatusOr<pb::WatchedRoot> WatchedRoots::Watch(const fs::path& path) {
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the folder to watch must be an absolute path, got \"", path.string(), "\""));
  }
  std::error_code ec;
  const fs::path canon = fs::canonical(path, ec);
  if (ec) {
    return Annotate(amld::base::ErrnoStatus(ec.value(), "resolve", path), "cannot watch");
  }
  if (!fs::is_directory(canon, ec)) {
    return absl::NotFoundError(absl::StrCat("cannot watch ", canon.string(), ": not a folder"));
  }
  AMLD_RETURN_IF_ERROR(CheckLocalFileSystem(canon));
  std::shared_ptr<Root> r;
  bool fresh = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("amld is shutting down");
    auto it = roots_.find(canon.string());
    if (it != roots_.end()) {
      r = it->second;
      if (r->degraded.empty() && r->error.empty()) return DescribeLocked(*r);
      r->degraded.clear();
      RequestFullRescanLocked(*r, "registered again");
    } else {
      AMLD_RETURN_IF_ERROR(CheckNoOverlap(canon));
      r = std::make_shared<Root>();
      r->path = canon;
      r->registered = deps_.clock->Now();
      r->pending.full_rescan = "initial scan";
      roots_[canon.string()] = r;
      fresh = true;
    }
  }
  ProcessResult result = Process(*r);
  if (!result.status.ok() && fresh) {
    absl::MutexLock lock(&mu_);
    r->removed = true;
    DropWatchesLocked(*r, "");
    roots_.erase(canon.string());
    return Annotate(result.status, absl::StrCat("cannot watch ", canon.string()));
  }
  if (fresh) {
    absl::Status persisted = Persist();
    if (!persisted.ok() && deps_.log) {
      deps_.log->warn("cannot record the watched roots: {}", persisted.ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  return DescribeLocked(*r);
}

absl::StatusOr<pb::WatchedRoot> WatchedRoots::Unwatch(const fs::path& path) {
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
  pb::WatchedRoot described;
  {
    absl::MutexLock lock(&mu_);
    r->removed = true;
    DropWatchesLocked(*r, "");
    roots_.erase(r->path.string());
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

pb::WatchedRoot WatchedRoots::DescribeLocked(const Root& r) const {
  pb::WatchedRoot w;
  w.set_path(r.path.string());
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

absl::StatusOr<pb::GetWatchedSnapshotResponse> WatchedRoots::Sync(const fs::path& path) {
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the source folder must be an absolute path, got \"", path.string(), "\""));
  }
  std::shared_ptr<Root> r = FindRoot(path);
  if (r == nullptr) {
    return absl::NotFoundError(absl::StrCat(path.string(), " is not a watched root"));
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
  int fd = ::open(cookie.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
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
  ::unlink(cookie.c_str());
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
