#include "daemon/envs/env_builder.h"

#include <fcntl.h>
#include <poll.h>
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
#include "daemon/envs/env_registry.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

constexpr char kBuildPrefix[] = ".build-";
constexpr char kLinkPrefix[] = ".link-";
constexpr size_t kTailLines = 20;
constexpr size_t kTailBytes = 3000;

// The last lines of a command's output: what a person needs to see why
// pip failed.
std::string Tail(absl::string_view text) {
  text = absl::StripTrailingAsciiWhitespace(text);
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  size_t first = lines.size() > kTailLines ? lines.size() - kTailLines : 0;
  std::string tail = absl::StrJoin(lines.begin() + first, lines.end(), "\n");
  if (tail.size() > kTailBytes) tail = "..." + tail.substr(tail.size() - kTailBytes);
  return tail;
}

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

// Takes `who`'s file rights on this thread while it lives (nothing when
// `who` is unset or the daemon is not root): what the daemon does in a
// user's cache it does as them, so a link they planted there never gets
// root's hand.
absl::StatusOr<base::ScopedFsIdentity> ActAs(const std::optional<RunAs>& who) {
  if (!who || !base::NeedsFsIdentity(who->uid)) return base::ScopedFsIdentity::Take(nullptr);
  const base::FsIdentity identity{who->uid, who->gid, who->groups};
  return base::ScopedFsIdentity::Take(&identity);
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

// The interpreter `name` as `as` can run it: the first one on the
// daemon's PATH that they may execute. Root's PATH may start with folders
// of root's own (pyenv's shims under /root), which a user's build cannot
// enter. Unset `as` (the daemon's own build): `name`, as Subprocess finds it.
absl::StatusOr<std::string> InterpreterFor(const std::string& name,
                                           const std::optional<RunAs>& as) {
  if (!as || absl::StrContains(name, "/")) return name;
  const char* path = std::getenv("PATH");
  std::vector<std::string> closed;
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (!absl::StartsWith(dir, "/")) continue;
    const fs::path candidate = fs::path(std::string(dir)) / name;
    if (::access(candidate.c_str(), X_OK) != 0) continue;
    if (CheckAccountMay(*as, candidate, X_OK).ok()) return candidate.string();
    closed.push_back(candidate.string());
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the environment is built as ", as->user, ", who can run no ", name,
      closed.empty() ? " (none on the daemon's PATH)"
                     : absl::StrCat(" (the daemon's PATH has only ", absl::StrJoin(closed, ", "),
                                    ", closed to them)"),
      "; install it where every user can run it, e.g. /usr/bin"));
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

absl::StatusOr<fs::path> EnvironmentBuilder::NewBuildFolder(const Build& build) {
  const Cache& cache = build.cache;
  if (options_.per_user && !cache.build_as) {
    // CacheFor chose the shared one without a build account because it was
    // built; it was evicted since. Never build it as root.
    return absl::FailedPreconditionError(
        "the shared environment was removed meanwhile and no build account "
        "(environments.build_user) can build it again; submit the run again to build it in your "
        "own cache");
  }
  if (cache.owner) {
    AMLD_RETURN_IF_ERROR(MakeUserCache(options_.root, cache.owner->uid, cache.owner->gid).status());
  }
  fs::path folder;
  {
    absl::MutexLock lock(&mu_);
    folder = cache.dir / absl::StrCat(kBuildPrefix, ShortDigest(build.digest), "-", ::getpid(),
                                      "-", ++folder_counter_);
  }
  std::error_code ec;
  {
    AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, ActAs(cache.owner));
    fs::remove_all(folder, ec);
  }
  if (!cache.owner && cache.build_as) {
    // The shared cache's folder stays root's; the build account gets this
    // one folder to build in.
    if (::mkdir(folder.c_str(), 0700) != 0) return base::ErrnoStatus(errno, "mkdir", folder);
    if (::chown(folder.c_str(), cache.build_as->uid, cache.build_as->gid) != 0) {
      return base::ErrnoStatus(errno, "chown", folder);
    }
  }
  return folder;
}

absl::StatusOr<fs::path> EnvironmentBuilder::RunBuild(const Build& build, int log_fd) {
  const EnvironmentSpec& spec = build.spec;
  const Cache& cache = build.cache;
  const bool shared_build = !cache.owner && cache.build_as;
  AMLD_ASSIGN_OR_RETURN(const fs::path folder, NewBuildFolder(build));
  auto write = [&](const std::string& text) {
    if (log_fd >= 0) (void)base::WriteAll(log_fd, text, "std log");
  };
  write(absl::StrCat("amld: building environment ", ShortDigest(build.digest), " in ",
                     folder.string(),
                     cache.build_as ? absl::StrCat(" as ", cache.build_as->user) : "", "\n"));
  // The build's commands and files are build_as's; its files are written
  // with that account's rights too.
  auto as_builder = [&](const std::function<absl::Status()>& f) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, ActAs(cache.build_as));
    return f();
  };
  absl::Status built = [&]() -> absl::Status {
    if (spec.needs_conda()) {
      std::vector<std::string> argv = {options_.conda_path, "create", "--yes", "--prefix",
                                       folder.string()};
      if (!spec.conda_channels.empty()) argv.push_back("--override-channels");
      for (const std::string& c : spec.conda_channels) {
        argv.push_back("-c");
        argv.push_back(c);
      }
      argv.push_back(spec.python_version.empty() ? "python"
                                                 : absl::StrCat("python=", spec.python_version));
      argv.push_back("pip");
      argv.insert(argv.end(), spec.conda_packages.begin(), spec.conda_packages.end());
      AMLD_RETURN_IF_ERROR(Step("conda create", std::move(argv), cache.build_as, log_fd));
    } else {
      AMLD_ASSIGN_OR_RETURN(std::string interpreter,
                            InterpreterFor(BaseInterpreter(spec), cache.build_as));
      AMLD_RETURN_IF_ERROR(Step("python -m venv", {interpreter, "-m", "venv", folder.string()},
                                cache.build_as, log_fd));
    }
    const std::string python = (folder / "bin" / "python").string();
    if (!spec.python_version.empty()) {
      // python3.11 may be 3.11.4 when 3.11.7 was asked for: say so, never
      // run with another version than the spec names.
      AMLD_RETURN_IF_ERROR(Step("python version check", {python, "-c", PythonVersionCheck(spec)},
                                cache.build_as, log_fd));
    }
    AMLD_RETURN_IF_ERROR(as_builder([&] {
      return base::WriteFileAtomically(folder / "amld-requirements.txt", RequirementsFile(spec));
    }));
    if (!spec.pip_options.empty() || !spec.pip_requirements.empty()) {
      std::vector<std::string> argv = {
          python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"};
      // The build account has no HOME of its own to keep a cache in.
      if (shared_build) argv.push_back("--no-cache-dir");
      for (std::string& o : PipIndexOptions(options_)) argv.push_back(std::move(o));
      argv.insert(argv.end(), {"-r", (folder / "amld-requirements.txt").string()});
      AMLD_RETURN_IF_ERROR(Step("pip install", std::move(argv), cache.build_as, log_fd));
    }
    if (shared_build) AMLD_RETURN_IF_ERROR(SealForEveryone(folder));
    AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, ActAs(cache.owner));
    AMLD_RETURN_IF_ERROR(
        base::WriteFileAtomically(folder / "amld-environment.txt", CanonicalText(spec)));
    if (shared_build) {
      // Written by root into a sealed folder: readable by all, like the rest.
      (void)::chmod((folder / "amld-environment.txt").c_str(), 0644);
    }
    RecordSize(folder);
    TouchLastUse(folder);
    return Publish(cache, folder, build.digest);
  }();
  if (!built.ok()) {
    std::error_code ec;
    absl::StatusOr<base::ScopedFsIdentity> as = ActAs(cache.owner);
    if (as.ok()) fs::remove_all(folder, ec);
    return built;
  }
  return folder;
}

absl::Status EnvironmentBuilder::Step(const std::string& what, std::vector<std::string> argv,
                                      const std::optional<RunAs>& as, int log_fd) {
  if (log_fd >= 0) {
    (void)base::WriteAll(log_fd, absl::StrCat("amld: $ ", absl::StrJoin(argv, " "), "\n"),
                         "std log");
  }
  Command command(std::move(argv), options_.build_timeout);
  command.stdout_fd = log_fd;
  command.run_as = as;
  base::ScopedFd devnull;
  if (log_fd < 0) {
    devnull = base::ScopedFd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    command.stdout_fd = devnull.get();
  }
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<RunningCommand> running, runner_->Start(command));
  pollfd fds[2] = {{running->ended_fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  const absl::Time deadline = absl::Now() + options_.build_timeout;
  bool ended = false;
  while (!ended) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    const int ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 60000));
    if (ms == 0) break;
    int n = ::poll(fds, 2, ms);
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) ended = true;
  }
  CommandResult result = ended ? running->Wait() : running->Stop();
  if (log_fd >= 0 && !result.err.empty()) (void)base::WriteAll(log_fd, result.err, "std log");
  if (!ended) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("the daemon is shutting down");
    return absl::DeadlineExceededError(
        absl::StrCat(what, " ran longer than ", absl::FormatDuration(options_.build_timeout),
                     " (environments.build_timeout_seconds); killed it"));
  }
  if (result.ok()) return absl::OkStatus();
  std::string tail = Tail(result.err.empty() ? result.out : result.err);
  return absl::FailedPreconditionError(
      absl::StrCat(what, " failed (",
                   result.signal != 0 ? absl::StrCat("signal ", result.signal)
                                      : absl::StrCat("exit code ", result.exit_code),
                   ")", tail.empty() ? "" : ":\n", tail));
}

absl::Status EnvironmentBuilder::Publish(const Cache& cache, const fs::path& folder,
                                         const std::string& digest) {
  const fs::path link = cache.dir / absl::StrCat(kLinkPrefix, folder.filename().string());
  std::error_code ec;
  fs::remove(link, ec);
  fs::create_symlink(folder.filename(), link, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot link environment ", link.string(), ": ", ec.message()));
  }
  // rename(2) replaces a link left by an earlier daemon atomically.
  fs::rename(link, cache.dir / digest, ec);
  {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  if (ec) {
    fs::remove(link, ec);
    return absl::InternalError(
        absl::StrCat("cannot publish environment ", digest, ": ", ec.message()));
  }
  return base::SyncDirectory(cache.dir);
}

std::vector<std::string> PipIndexOptions(const EnvironmentOptions& options) {
  std::vector<std::string> args;
  if (options.no_index) args.push_back("--no-index");
  if (!options.index_url.empty()) args.insert(args.end(), {"--index-url", options.index_url});
  for (const std::string& u : options.extra_index_urls) {
    args.insert(args.end(), {"--extra-index-url", u});
  }
  for (const std::string& f : options.find_links) args.insert(args.end(), {"--find-links", f});
  return args;
}

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

void SetSortedEnv(const std::string& name, std::string value,
                  std::vector<std::pair<std::string, std::string>>* env) {
  auto it = std::lower_bound(env->begin(), env->end(), name,
                             [](const auto& e, const std::string& n) { return e.first < n; });
  if (it != env->end() && it->first == name) {
    it->second = std::move(value);
  } else {
    env->insert(it, {name, std::move(value)});
  }
}

void ActivateEnvironment(const fs::path& prefix, bool is_script, std::vector<std::string>* argv,
                         std::vector<std::pair<std::string, std::string>>* env) {
  const fs::path bin = prefix / "bin";
  if (is_script && !argv->empty()) (*argv)[0] = (bin / "python").string();
  std::erase_if(*env, [](const auto& e) { return e.first == "PYTHONHOME"; });
  auto set = [&](const std::string& name, std::string value) {
    SetSortedEnv(name, std::move(value), env);
  };
  std::string path = bin.string();
  for (const auto& [name, value] : *env) {
    if (name == "PATH" && !value.empty()) absl::StrAppend(&path, ":", value);
  }
  if (path == bin.string()) absl::StrAppend(&path, ":/usr/local/bin:/usr/bin:/bin");
  set("PATH", std::move(path));
  set("VIRTUAL_ENV", prefix.string());
}

}  // namespace amld::daemon
