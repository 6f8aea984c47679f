// One build's steps — its folder, the venv/pip (or conda) commands, and
// publishing it under its digest — and how a run enters a built
// environment. The queue that starts builds is env_builder.cc's.
#include "daemon/envs/env_builder.h"

#include <fcntl.h>
#include <poll.h>
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
using envs_internal::kBuildPrefix;
using envs_internal::kLinkPrefix;

namespace {

namespace fs = std::filesystem;

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
}  // namespace

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
