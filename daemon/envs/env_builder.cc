#include "daemon/envs/env_builder.h"

// Setting up, the caches, and the queue of builds; one build's steps are
// in env_build_steps.cc, leases and the caches' accounting in
// env_builder_leases.cc, what they share in env_builder_internal.h.

#include <fcntl.h>
#include <pwd.h>
#include <sys/eventfd.h>
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
#include "daemon/envs/env_registry.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

using envs_internal::ActAs;
using envs_internal::kBuildPrefix;
using envs_internal::kLinkPrefix;

namespace {

namespace fs = std::filesystem;

base::ScopedFd OpenAppend(const fs::path& path) {
  if (path.empty()) return base::ScopedFd();
  return base::ScopedFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
}

void Note(const fs::path& log, const std::string& line) {
  base::ScopedFd fd = OpenAppend(log);
  if (fd.valid()) (void)base::WriteAll(fd.get(), absl::StrCat("amld: ", line, "\n"), log);
}

void CallAll(std::vector<std::pair<EnvironmentBuilder::Done, absl::StatusOr<fs::path>>> calls) {
  for (auto& [done, result] : calls) done(std::move(result));
}

// The account named `name`, for environments.build_user; nullopt (with
// the reason in `why`) when there is none or it is root.
std::optional<RunAs> BuildAccount(const std::string& name, std::string* why) {
  if (name.empty()) {
    *why = "environments.build_user is empty";
    return std::nullopt;
  }
  std::string buf(16384, '\0');
  passwd pw;
  passwd* found = nullptr;
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    *why = absl::StrCat("environments.build_user ", name, " has no account on this machine");
    return std::nullopt;
  }
  if (pw.pw_uid == 0) {
    *why = absl::StrCat("environments.build_user ", name, " is root, and no build runs as root");
    return std::nullopt;
  }
  absl::StatusOr<RunAs> account = LookupAccount(pw.pw_uid);
  if (!account.ok()) {
    *why = std::string(account.status().message());
    return std::nullopt;
  }
  return std::move(*account);
}

// Digests of the curated environments that name packages.
std::set<std::string> CuratedDigests() {
  std::set<std::string> digests;
  absl::StatusOr<std::vector<amld::v1::Environment>> curated = CuratedEnvironments();
  if (!curated.ok()) return digests;  // the registry refuses to open, saying why
  for (const amld::v1::Environment& env : *curated) {
    if (!IsManagedEnvironment(env)) continue;
    absl::StatusOr<EnvironmentSpec> spec = SpecFromEnvironment(env, true);
    if (spec.ok()) digests.insert(SpecDigest(*spec));
  }
  return digests;
}

}  // namespace

EnvironmentBuilder::EnvironmentBuilder(EnvironmentOptions options, CommandRunner* runner)
    : options_(std::move(options)),
      runner_(runner != nullptr ? runner : &SystemCommandRunner()),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      curated_digests_(CuratedDigests()) {}

EnvironmentBuilder::~EnvironmentBuilder() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (worker_.joinable()) worker_.join();
  ::close(wake_fd_);
}

absl::Status EnvironmentBuilder::Start() {
  std::error_code ec;
  fs::create_directories(options_.root, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create the environment cache ",
                                            options_.root.string(), ": ", ec.message()));
  }
  if (options_.per_user) {
    // Users pass through to their own caches and run the shared one's
    // environments; none lists another's.
    if (::chmod(options_.root.c_str(), 0711) != 0) {
      return base::ErrnoStatus(errno, "chmod", options_.root);
    }
    std::string why;
    build_account_ = BuildAccount(options_.build_user, &why);
    if (!build_account_) {
      spdlog::warn("{}: environments whose spec decides their content (hash-pinned) are built in "
                   "each user's own cache, not shared",
                   why);
    }
  }
  for (const Cache& cache : CachesOf(std::nullopt)) CleanUp(cache);
  worker_ = std::thread([this] { Work(); });
  return absl::OkStatus();
}

void EnvironmentBuilder::CleanUp(const Cache& cache) {
  absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache.owner);
  if (!as.ok()) return;
  std::set<std::string> linked;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(cache.dir, ec)) {
    if (!e.is_symlink(ec)) continue;
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, kLinkPrefix)) {
      fs::remove(e.path(), ec);  // a publish cut short
    } else {
      linked.insert(fs::read_symlink(e.path(), ec).filename().string());
    }
  }
  for (const fs::directory_entry& e : fs::directory_iterator(cache.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, kBuildPrefix) && !linked.contains(name)) {
      fs::remove_all(e.path(), ec);  // a build cut short
    } else if (absl::StartsWith(name, ".buildlog-")) {
      fs::remove(e.path(), ec);  // an `aml env build` cut short
    }
  }
}

absl::StatusOr<EnvironmentSpec> EnvironmentBuilder::Check(const amld::v1::Environment& env,
                                                         std::optional<uid_t> user) const {
  AMLD_ASSIGN_OR_RETURN(EnvironmentSpec spec,
                        SpecFromEnvironment(env, !options_.conda_path.empty()));
  if (options_.per_user && user && spec.needs_conda()) {
    // Their build runs the tool as them: say now when it cannot.
    AMLD_ASSIGN_OR_RETURN(RunAs account, LookupAccount(*user));
    if (absl::Status may = CheckAccountMay(account, options_.conda_path, X_OK); !may.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "conda packages are built as you, with environments.conda_path ", options_.conda_path,
          ", which you cannot run: ", may.message(), " (ask an admin to install it where every "
          "user can run it, or use pip packages)"));
    }
  }
  return spec;
}

absl::StatusOr<EnvironmentBuilder::Cache> EnvironmentBuilder::UserCache(uid_t uid) const {
  AMLD_ASSIGN_OR_RETURN(RunAs account, LookupAccount(uid));
  return Cache{options_.root / "users" / absl::StrCat(uid), account, account};
}

absl::StatusOr<EnvironmentBuilder::Cache> EnvironmentBuilder::CacheFor(
    const EnvironmentSpec& spec, const std::string& digest, std::optional<uid_t> user) const {
  if (!options_.per_user) return Cache{options_.root, std::nullopt, std::nullopt};
  if (!user) {
    return absl::InternalError("a system-mode daemon builds an environment only for a user");
  }
  if (DeterminesItsResult(spec) || curated_digests_.contains(digest)) {
    // Built by the daemon's account, or published earlier by one.
    if (build_account_ || BuiltIn(SharedCache(), digest).ok()) return SharedCache();
  }
  return UserCache(*user);
}

std::vector<EnvironmentBuilder::Cache> EnvironmentBuilder::CachesOf(
    std::optional<uid_t> user) const {
  std::vector<Cache> caches;
  if (!options_.per_user) return {Cache{options_.root, std::nullopt, std::nullopt}};
  std::vector<uid_t> uids;
  if (user) {
    uids.push_back(*user);
  } else {
    caches.push_back(SharedCache());
    uids = ListUserCaches(options_.root);
  }
  for (uid_t uid : uids) {
    // A cache of a uid without an account stays as it is: nobody can run
    // from it, and nothing may be done there with their rights.
    if (absl::StatusOr<Cache> cache = UserCache(uid); cache.ok()) caches.push_back(*cache);
  }
  return caches;
}

absl::StatusOr<fs::path> EnvironmentBuilder::BuiltIn(const Cache& cache,
                                                      const std::string& digest) {
  std::error_code ec;
  const fs::path link = cache.dir / digest;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("environment ", digest, " is not built"));
  fs::path prefix = cache.dir / target;
  if (!fs::exists(prefix / "bin" / "python", ec)) {
    return absl::NotFoundError(absl::StrCat("environment ", digest, " has no bin/python"));
  }
  return prefix;
}

absl::StatusOr<fs::path> EnvironmentBuilder::Built(const EnvironmentSpec& spec,
                                                   std::optional<uid_t> user) const {
  const std::string digest = SpecDigest(spec);
  AMLD_ASSIGN_OR_RETURN(Cache cache, CacheFor(spec, digest, user));
  AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, ActAs(cache.owner));
  return BuiltIn(cache, digest);
}

absl::StatusOr<fs::path> EnvironmentBuilder::Built(const std::string& digest) const {
  return BuiltIn(Cache{options_.root, std::nullopt, std::nullopt}, digest);
}

int EnvironmentBuilder::builds_started() const {
  absl::MutexLock lock(&mu_);
  return builds_started_;
}

void EnvironmentBuilder::Acquire(const EnvironmentSpec& spec, BuildRequest request, Done done) {
  const std::string digest = SpecDigest(spec);
  const std::string shorter = ShortDigest(digest);
  absl::StatusOr<Cache> cache = CacheFor(spec, digest, request.user);
  if (!cache.ok()) return done(cache.status());
  const fs::path link = cache->dir / digest;
  absl::StatusOr<fs::path> built;
  {
    absl::MutexLock lock(&mu_);
    auto it = builds_.find(link);
    if (it != builds_.end()) {
      Note(request.std_log,
           absl::StrCat("environment ", shorter, " is being built for run ",
                        it->second.waiters.front().request.run_id, "; waiting for it"));
      it->second.waiters.push_back({std::move(request), std::move(done)});
      return;
    }
    // Looked up under the lock: a build is published before it leaves
    // builds_, so no run can miss both.
    {
      absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache->owner);
      if (as.ok()) {
        built = BuiltIn(*cache, digest);
      } else {
        built = as.status();
      }
    }
    if (!built.ok()) {
      Build& build = builds_[link];
      build.cache = *cache;
      build.spec = spec;
      build.digest = digest;
      build.waiters.push_back({std::move(request), std::move(done)});
      queue_.push_back(link);
      return;
    }
    TakeLeaseLocked(*cache, digest, request.run_id);
  }
  if (absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache->owner); as.ok()) {
    TouchLastUse(*built);
  }
  Note(request.std_log, absl::StrCat("using environment ", shorter, " (built before",
                                     options_.per_user && !cache->owner ? ", shared" : "", ")"));
  done(std::move(built));
}

void EnvironmentBuilder::Work() {
  for (;;) {
    Build build;
    bool trim = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || trim_wanted_;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      trim = queue_.empty();
      if (trim) {
        trim_wanted_ = false;
      } else {
        const fs::path link = queue_.front();
        queue_.erase(queue_.begin());
        Build& b = builds_.at(link);
        build.cache = b.cache;
        build.spec = b.spec;
        build.digest = b.digest;
        build.waiters.push_back({b.waiters.front().request, nullptr});
        ++builds_started_;
      }
    }
    if (trim) {
      if (options_.cache_budget > 0) {
        for (const Cache& cache : CachesOf(std::nullopt)) Evict(cache, options_.cache_budget);
      }
      continue;
    }
    const BuildRequest& first = build.waiters.front().request;
    const std::string shorter = ShortDigest(build.digest);
    base::ScopedFd log = OpenAppend(first.std_log);
    const off_t log_start = log.valid() ? ::lseek(log.get(), 0, SEEK_END) : 0;
    const absl::Time start = absl::Now();
    absl::StatusOr<fs::path> result = RunBuild(build, log.get());
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (log.valid()) {
      (void)base::WriteAll(
          log.get(),
          result.ok() ? absl::StrFormat("amld: environment %s built in %.1f s\n", shorter, seconds)
                      : absl::StrCat("amld: environment ", shorter,
                                     " could not be built: ", result.status().message(), "\n"),
          first.std_log);
      // The build's part of the std log, kept apart in system_logs/.
      if (!first.build_log.empty()) {
        absl::StatusOr<std::string> all = base::ReadFileToString(first.std_log);
        if (all.ok() && static_cast<size_t>(log_start) <= all->size()) {
          (void)base::WriteFileAtomically(first.build_log, all->substr(log_start));
        }
      }
    }
    std::vector<std::pair<Done, absl::StatusOr<fs::path>>> calls;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;  // cut short: the waiters are prepared again at restart
      auto node = builds_.extract(build.cache.dir / build.digest);
      for (Waiter& w : node.mapped().waiters) {
        if (&w != &node.mapped().waiters.front()) {
          Note(w.request.std_log,
               result.ok() ? absl::StrCat("environment ", shorter, " is built (by run ",
                                          first.run_id, "); using it")
                           : absl::StrCat("environment ", shorter, " could not be built (run ",
                                          first.run_id, "): ", result.status().message()));
        }
        if (result.ok()) TakeLeaseLocked(build.cache, build.digest, w.request.run_id);
        calls.emplace_back(std::move(w.done), result);
      }
      // Within the budget again, now that the new one is held.
      if (result.ok() && options_.cache_budget > 0) trim_wanted_ = true;
    }
    CallAll(std::move(calls));
  }
}

namespace envs_internal {

// Takes `who`'s file rights on this thread while it lives (nothing when
// `who` is unset or the daemon is not root): what the daemon does in a
// user's cache it does as them, so a link they planted there never gets
// root's hand.
absl::StatusOr<base::ScopedFsIdentity> ActAs(const std::optional<RunAs>& who) {
  if (!who || !base::NeedsFsIdentity(who->uid)) return base::ScopedFsIdentity::Take(nullptr);
  const base::FsIdentity identity{who->uid, who->gid, who->groups};
  return base::ScopedFsIdentity::Take(&identity);
}

}  // namespace envs_internal
}  // namespace amld::daemon
