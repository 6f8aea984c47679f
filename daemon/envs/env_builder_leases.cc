// Leases on built environments (a queued or running run holds its own),
// and the caches' accounting: usage, prune and eviction down to the budget.
#include "daemon/envs/env_builder.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/fs_identity.h"
#include "base/status_macros.h"
#include "daemon/envs/env_builder_internal.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

using envs_internal::ActAs;

namespace fs = std::filesystem;

void EnvironmentBuilder::TakeLeaseLocked(const Cache& cache, const std::string& digest,
                                         const std::string& holder) {
  if (!holder.empty()) leases_[holder].push_back(Lease{cache, digest});
}

std::set<fs::path> EnvironmentBuilder::HeldLocked() const {
  std::set<fs::path> held;
  for (const auto& [holder, leases] : leases_) {
    for (const Lease& lease : leases) held.insert(lease.cache.dir / lease.digest);
  }
  return held;
}

void EnvironmentBuilder::Hold(const std::string& digest, const std::string& holder,
                              std::optional<uid_t> user) {
  // The spec is not at hand: in system mode the run took it from the
  // shared cache or from its user's, so both are held.
  std::vector<Cache> caches = {Cache{options_.root, std::nullopt, std::nullopt}};
  if (options_.per_user && user) {
    if (absl::StatusOr<Cache> mine = UserCache(*user); mine.ok()) caches.push_back(*mine);
  }
  absl::MutexLock lock(&mu_);
  for (const Cache& cache : caches) TakeLeaseLocked(cache, digest, holder);
}

void EnvironmentBuilder::Release(const std::string& holder) {
  std::vector<Lease> released;
  {
    absl::MutexLock lock(&mu_);
    auto node = leases_.extract(holder);
    if (node.empty()) return;
    released = std::move(node.mapped());
    if (options_.cache_budget > 0) trim_wanted_ = true;
  }
  for (const Lease& lease : released) {
    absl::StatusOr<base::ScopedFsIdentity> as = ActAs(lease.cache.owner);
    if (!as.ok()) continue;
    if (absl::StatusOr<fs::path> prefix = BuiltIn(lease.cache, lease.digest); prefix.ok()) {
      TouchLastUse(*prefix);
    }
  }
}

void EnvironmentBuilder::RequestTrim() {
  absl::MutexLock lock(&mu_);
  if (options_.cache_budget > 0) trim_wanted_ = true;
}

std::vector<CachedEnvironment> EnvironmentBuilder::Prune(std::optional<uid_t> user) {
  std::vector<CachedEnvironment> removed;
  for (const Cache& cache : CachesOf(user)) {
    for (CachedEnvironment& env : Evict(cache, 0)) removed.push_back(std::move(env));
  }
  return removed;
}

CacheUsage EnvironmentBuilder::Usage(std::optional<uid_t> user) const {
  CacheUsage usage;
  for (const Cache& cache : CachesOf(user)) {
    std::optional<std::vector<CachedEnvironment>> listed;
    uint64_t at = 0;
    {
      absl::MutexLock lock(&mu_);
      at = changes_;
      auto it = listed_.find(cache.dir);
      if (it != listed_.end() && it->second.at == at) listed = it->second.environments;
    }
    // Outside the lock: a first look may measure an old folder's files.
    if (!listed) {
      absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache.owner);
      listed = as.ok() ? ListCache(cache.dir) : std::vector<CachedEnvironment>{};
    }
    std::set<fs::path> held;
    {
      absl::MutexLock lock(&mu_);
      held = HeldLocked();
      if (changes_ == at) listed_[cache.dir] = Listing{at, *listed};
    }
    for (const CachedEnvironment& env : *listed) {
      ++usage.count;
      usage.bytes += env.bytes;
      if (held.contains(cache.dir / env.digest)) ++usage.in_use;
    }
  }
  return usage;
}

std::vector<CachedEnvironment> EnvironmentBuilder::Evict(const Cache& cache, int64_t keep_bytes) {
  absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache.owner);
  if (!as.ok()) return {};
  const std::vector<CachedEnvironment> all = ListCache(cache.dir);
  int64_t total = 0;
  for (const CachedEnvironment& env : all) total += env.bytes;
  std::vector<CachedEnvironment> removed;
  {
    absl::MutexLock lock(&mu_);
    const std::set<fs::path> held = HeldLocked();
    for (const CachedEnvironment& env : all) {  // least recently used first
      if (total <= keep_bytes) break;
      const fs::path link = cache.dir / env.digest;
      if (held.contains(link) || builds_.contains(link)) continue;
      std::error_code ec;
      // Rebuilt since it was listed: that one is new, not this.
      if (fs::read_symlink(link, ec).filename() != env.folder.filename() || ec) continue;
      if (!fs::remove(link, ec)) continue;
      total -= env.bytes;
      removed.push_back(env);
    }
  }
  if (!removed.empty()) {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  std::error_code ec;
  for (const CachedEnvironment& env : removed) fs::remove_all(env.folder, ec);
  if (!removed.empty()) (void)base::SyncDirectory(cache.dir);
  return removed;
}

}  // namespace amld::daemon
