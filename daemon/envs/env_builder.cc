#include "daemon/envs/env_builder.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
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
#include "base/status_macros.h"

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

}  // namespace

EnvironmentBuilder::EnvironmentBuilder(EnvironmentOptions options, CommandRunner* runner)
    : options_(std::move(options)),
      runner_(runner != nullptr ? runner : &SystemCommandRunner()),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

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
  CleanUp();
  worker_ = std::thread([this] { Work(); });
  return absl::OkStatus();
}

void EnvironmentBuilder::CleanUp() {
  std::set<std::string> linked;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.root, ec)) {
    if (!e.is_symlink(ec)) continue;
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, kLinkPrefix)) {
      fs::remove(e.path(), ec);  // a publish cut short
    } else {
      linked.insert(fs::read_symlink(e.path(), ec).filename().string());
    }
  }
  for (const fs::directory_entry& e : fs::directory_iterator(options_.root, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, kBuildPrefix) && !linked.contains(name)) {
      fs::remove_all(e.path(), ec);  // a build cut short
    } else if (absl::StartsWith(name, ".buildlog-")) {
      fs::remove(e.path(), ec);  // an `aml env build` cut short
    }
  }
}

absl::StatusOr<EnvironmentSpec> EnvironmentBuilder::Check(const amld::v1::Environment& env) const {
  return SpecFromEnvironment(env, !options_.conda_path.empty());
}

absl::StatusOr<fs::path> EnvironmentBuilder::Built(const std::string& digest) const {
  std::error_code ec;
  const fs::path link = options_.root / digest;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("environment ", digest, " is not built"));
  fs::path prefix = options_.root / target;
  if (!fs::exists(prefix / "bin" / "python", ec)) {
    return absl::NotFoundError(absl::StrCat("environment ", digest, " has no bin/python"));
  }
  return prefix;
}

int EnvironmentBuilder::builds_started() const {
  absl::MutexLock lock(&mu_);
  return builds_started_;
}

void EnvironmentBuilder::Acquire(const EnvironmentSpec& spec, BuildRequest request, Done done) {
  const std::string digest = SpecDigest(spec);
  const std::string shorter = ShortDigest(digest);
  absl::StatusOr<fs::path> built;
  {
    absl::MutexLock lock(&mu_);
    auto it = builds_.find(digest);
    if (it != builds_.end()) {
      Note(request.std_log,
           absl::StrCat("environment ", shorter, " is being built for run ",
                        it->second.waiters.front().request.run_id, "; waiting for it"));
      it->second.waiters.push_back({std::move(request), std::move(done)});
      return;
    }
    // Looked up under the lock: a build is published before it leaves
    // builds_, so no run can miss both.
    built = Built(digest);
    if (!built.ok()) {
      Build& build = builds_[digest];
      build.spec = spec;
      build.digest = digest;
      build.waiters.push_back({std::move(request), std::move(done)});
      queue_.push_back(digest);
      return;
    }
    TakeLeaseLocked(digest, request.run_id);
  }
  TouchLastUse(*built);
  Note(request.std_log, absl::StrCat("using environment ", shorter, " (built before)"));
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
        const std::string digest = queue_.front();
        queue_.erase(queue_.begin());
        Build& b = builds_.at(digest);
        build.spec = b.spec;
        build.digest = b.digest;
        build.waiters.push_back({b.waiters.front().request, nullptr});
        ++builds_started_;
      }
    }
    if (trim) {
      if (options_.cache_budget > 0) Evict(options_.cache_budget);
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
      auto node = builds_.extract(build.digest);
      for (Waiter& w : node.mapped().waiters) {
        if (&w != &node.mapped().waiters.front()) {
          Note(w.request.std_log,
               result.ok() ? absl::StrCat("environment ", shorter, " is built (by run ",
                                          first.run_id, "); using it")
                           : absl::StrCat("environment ", shorter, " could not be built (run ",
                                          first.run_id, "): ", result.status().message()));
        }
        if (result.ok()) TakeLeaseLocked(build.digest, w.request.run_id);
        calls.emplace_back(std::move(w.done), result);
      }
      // Within the budget again, now that the new one is held.
      if (result.ok() && options_.cache_budget > 0) trim_wanted_ = true;
    }
    CallAll(std::move(calls));
  }
}

absl::StatusOr<fs::path> EnvironmentBuilder::RunBuild(const Build& build, int log_fd) {
  const EnvironmentSpec& spec = build.spec;
  fs::path folder;
  {
    absl::MutexLock lock(&mu_);
    folder = options_.root / absl::StrCat(kBuildPrefix, ShortDigest(build.digest), "-", ::getpid(),
                                          "-", ++folder_counter_);
  }
  std::error_code ec;
  fs::remove_all(folder, ec);
  auto write = [&](const std::string& text) {
    if (log_fd >= 0) (void)base::WriteAll(log_fd, text, "std log");
  };
  write(absl::StrCat("amld: building environment ", ShortDigest(build.digest), " in ",
                     folder.string(), "\n"));
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
      AMLD_RETURN_IF_ERROR(Step("conda create", std::move(argv), log_fd));
    } else {
      AMLD_RETURN_IF_ERROR(
          Step("python -m venv", {BaseInterpreter(spec), "-m", "venv", folder.string()}, log_fd));
    }
    const std::string python = (folder / "bin" / "python").string();
    if (!spec.python_version.empty()) {
      // python3.11 may be 3.11.4 when 3.11.7 was asked for: say so, never
      // run with another version than the spec names.
      AMLD_RETURN_IF_ERROR(
          Step("python version check", {python, "-c", PythonVersionCheck(spec)}, log_fd));
    }
    AMLD_RETURN_IF_ERROR(
        base::WriteFileAtomically(folder / "amld-requirements.txt", RequirementsFile(spec)));
    if (!spec.pip_options.empty() || !spec.pip_requirements.empty()) {
      std::vector<std::string> argv = {
          python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"};
      for (std::string& o : PipIndexOptions(options_)) argv.push_back(std::move(o));
      argv.insert(argv.end(), {"-r", (folder / "amld-requirements.txt").string()});
      AMLD_RETURN_IF_ERROR(Step("pip install", std::move(argv), log_fd));
    }
    AMLD_RETURN_IF_ERROR(
        base::WriteFileAtomically(folder / "amld-environment.txt", CanonicalText(spec)));
    RecordSize(folder);
    TouchLastUse(folder);
    return Publish(folder, build.digest);
  }();
  if (!built.ok()) {
    fs::remove_all(folder, ec);
    return built;
  }
  return folder;
}

absl::Status EnvironmentBuilder::Step(const std::string& what, std::vector<std::string> argv,
                                      int log_fd) {
  if (log_fd >= 0) {
    (void)base::WriteAll(log_fd, absl::StrCat("amld: $ ", absl::StrJoin(argv, " "), "\n"),
                         "std log");
  }
  Command command(std::move(argv), options_.build_timeout);
  command.stdout_fd = log_fd;
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

absl::Status EnvironmentBuilder::Publish(const fs::path& folder, const std::string& digest) {
  const fs::path link = options_.root / absl::StrCat(kLinkPrefix, folder.filename().string());
  std::error_code ec;
  fs::remove(link, ec);
  fs::create_symlink(folder.filename(), link, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot link environment ", link.string(), ": ", ec.message()));
  }
  // rename(2) replaces a link left by an earlier daemon atomically.
  fs::rename(link, options_.root / digest, ec);
  {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  if (ec) {
    fs::remove(link, ec);
    return absl::InternalError(
        absl::StrCat("cannot publish environment ", digest, ": ", ec.message()));
  }
  return base::SyncDirectory(options_.root);
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

void EnvironmentBuilder::TakeLeaseLocked(const std::string& digest, const std::string& holder) {
  if (!holder.empty()) leases_[holder] = digest;
}

void EnvironmentBuilder::Hold(const std::string& digest, const std::string& holder) {
  absl::MutexLock lock(&mu_);
  TakeLeaseLocked(digest, holder);
}

void EnvironmentBuilder::Release(const std::string& holder) {
  std::string digest;
  {
    absl::MutexLock lock(&mu_);
    auto node = leases_.extract(holder);
    if (node.empty()) return;
    digest = std::move(node.mapped());
    if (options_.cache_budget > 0) trim_wanted_ = true;
  }
  if (absl::StatusOr<fs::path> prefix = Built(digest); prefix.ok()) TouchLastUse(*prefix);
}

void EnvironmentBuilder::RequestTrim() {
  absl::MutexLock lock(&mu_);
  if (options_.cache_budget > 0) trim_wanted_ = true;
}

std::vector<CachedEnvironment> EnvironmentBuilder::Prune() { return Evict(0); }

CacheUsage EnvironmentBuilder::Usage() const {
  std::optional<std::vector<CachedEnvironment>> listed;
  uint64_t at = 0;
  {
    absl::MutexLock lock(&mu_);
    at = changes_;
    if (listed_at_ == at) listed = listed_;
  }
  // Outside the lock: a first look may measure an old folder's files.
  if (!listed) listed = ListCache(options_.root);
  CacheUsage usage;
  std::set<std::string> held;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [holder, digest] : leases_) held.insert(digest);
    if (changes_ == at) {
      listed_ = listed;
      listed_at_ = at;
    }
  }
  for (const CachedEnvironment& env : *listed) {
    ++usage.count;
    usage.bytes += env.bytes;
    if (held.contains(env.digest)) ++usage.in_use;
  }
  return usage;
}

std::vector<CachedEnvironment> EnvironmentBuilder::Evict(int64_t keep_bytes) {
  const std::vector<CachedEnvironment> all = ListCache(options_.root);
  int64_t total = 0;
  for (const CachedEnvironment& env : all) total += env.bytes;
  std::vector<CachedEnvironment> removed;
  {
    absl::MutexLock lock(&mu_);
    std::set<std::string> held;
    for (const auto& [holder, digest] : leases_) held.insert(digest);
    for (const CachedEnvironment& env : all) {  // least recently used first
      if (total <= keep_bytes) break;
      if (held.contains(env.digest) || builds_.contains(env.digest)) continue;
      const fs::path link = options_.root / env.digest;
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
  if (!removed.empty()) (void)base::SyncDirectory(options_.root);
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
