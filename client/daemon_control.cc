#include "client/daemon_control.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/connection.h"
#include "base/file_util.h"

namespace amld::client {
namespace {

// The last `max_lines` non-empty lines the log got from `from` on.
std::string LogTail(const std::filesystem::path& log, std::streamoff from, int max_lines) {
  std::ifstream in(log, std::ios::binary);
  if (!in) return "";
  in.seekg(from);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(ss.str(), '\n', absl::SkipWhitespace())) {
    lines.emplace_back(line);
  }
  if (static_cast<int>(lines.size()) > max_lines) {
    lines.erase(lines.begin(), lines.end() - max_lines);
  }
  return absl::StrJoin(lines, " | ");
}

bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  // An exited process whose parent has not reaped it yet is gone for us.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = content.rfind(')');
  return paren != std::string::npos && paren + 2 < content.size() && content[paren + 2] == 'Z';
}

// The data dir is private (0700) like the daemon makes it; created here
// because amld's output goes to a log inside it from its first line on.
absl::Status MakePrivateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return amld::base::ErrnoStatus(errno, "create the data dir", dir);
  }
  return absl::OkStatus();
}

// Forks and execs amld detached in its own session; returns the child pid.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args, int log_fd) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return amld::base::ErrnoStatus(errno, "fork for", args[0]);
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    static const char kMsg[] = "aml: cannot execute amld\n";
    [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof(kMsg) - 1);
    ::_exit(127);
  }
  return pid;
}

}  // namespace

absl::StatusOr<std::filesystem::path> FindAmldBinary() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::InternalError("cannot find the aml executable: " + ec.message());
  auto amld = self.parent_path() / "amld";
  if (::access(amld.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no amld executable next to aml (looked for ",
                                            amld.string(), "): build or install amld"));
  }
  return amld;
}

absl::StatusOr<DaemonStartResult> StartDaemon(const DaemonStartOptions& options) {
  DaemonStartResult result;
  const auto socket = std::filesystem::absolute(options.socket);
  const auto data_dir = std::filesystem::absolute(options.data_dir);
  result.log_path = data_dir / "amld.log";
  if (auto info = GetDaemonInfo(MakeChannel(socket), socket, absl::Seconds(5)); info.ok()) {
    result.info = *std::move(info);
    result.already_running = true;
    return result;
  }
  std::filesystem::path binary = options.amld_binary;
  if (binary.empty()) {
    auto found = FindAmldBinary();
    if (!found.ok()) return found.status();
    binary = *found;
  }
  if (auto st = MakePrivateDir(data_dir); !st.ok()) return st;
  amld::base::ScopedFd log(
      ::open(result.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log.valid()) return amld::base::ErrnoStatus(errno, "open", result.log_path);
  struct stat st;
  const std::streamoff log_start = ::fstat(log.get(), &st) == 0 ? st.st_size : 0;

  std::vector<std::string> args = {binary.string(), "--socket", socket.string(), "--data-dir",
                                   data_dir.string()};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  auto pid = Spawn(args, log.get());
  if (!pid.ok()) return pid.status();

  const absl::Time give_up = absl::Now() + options.timeout;
  while (true) {
    int wstatus = 0;
    if (::waitpid(*pid, &wstatus, WNOHANG) == *pid) {
      const std::string why = WIFEXITED(wstatus)
                                  ? absl::StrCat("exited with code ", WEXITSTATUS(wstatus))
                                  : absl::StrCat("was killed by signal ", WTERMSIG(wstatus));
      std::string tail = LogTail(result.log_path, log_start, 3);
      return absl::FailedPreconditionError(absl::StrCat(
          "amld ", why, " before answering", tail.empty() ? "" : absl::StrCat(": ", tail),
          " (log: ", result.log_path.string(), ")"));
    }
    auto info = GetDaemonInfo(MakeChannel(socket), socket, absl::Seconds(1));
    if (info.ok()) {
      result.info = *std::move(info);
      return result;
    }
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("amld (pid ", *pid, ") did not answer at ", socket.string(), " within ",
                       absl::FormatDuration(options.timeout), ": see ", result.log_path.string()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::StatusOr<amld::v1::DaemonInfo> StopDaemon(const std::filesystem::path& socket,
                                                absl::Duration timeout) {
  auto info = GetDaemonInfo(MakeChannel(socket), socket, absl::Seconds(5));
  if (!info.ok()) {
    if (absl::IsUnavailable(info.status())) {
      return absl::NotFoundError(absl::StrCat("amld is not running at ", socket.string()));
    }
    return info.status();
  }
  const pid_t pid = static_cast<pid_t>(info->pid());
  if (pid <= 1) {
    return absl::InternalError(
        absl::StrCat("amld at ", socket.string(), " reported an invalid pid ", info->pid()));
  }
  if (::kill(pid, SIGTERM) != 0 && errno != ESRCH) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot send SIGTERM to amld (pid ", pid, "): ", std::strerror(errno)));
  }
  const absl::Time give_up = absl::Now() + timeout;
  while (!ProcessGone(pid)) {
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "amld (pid ", pid, ") is still running ", absl::FormatDuration(timeout),
          " after SIGTERM: see ", info->data_dir(), "/amld.log, or stop it with kill -9 ", pid));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return info;
}

}  // namespace amld::client
