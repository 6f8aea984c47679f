#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "absl/time/clock.h"

extern char** environ;

namespace amld::testing {

namespace {

std::vector<std::string> BuildEnv(const ProcessOptions& o) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const auto& u : o.unset_env) drop |= (u == name);
    for (const auto& [k, v] : o.env) drop |= (k == name);
    if (!drop) env.push_back(entry);
  }
  for (const auto& [k, v] : o.env) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

Subprocess::Subprocess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path();
  const std::string stem =
      "amld_subprocess_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  out_path_ = dir / (stem + ".out");
  err_path_ = dir / (stem + ".err");
  deadline_ = absl::Now() + options.timeout;

  std::vector<std::string> env = BuildEnv(options);
  std::vector<char*> argv_c, env_c;
  for (const auto& a : argv) argv_c.push_back(const_cast<char*>(a.c_str()));
  argv_c.push_back(nullptr);
  for (const auto& e : env) env_c.push_back(const_cast<char*>(e.c_str()));
  env_c.push_back(nullptr);
  const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const std::string cwd = options.cwd.string();
  pid_ = ::fork();
  if (pid_ == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execve(argv_c[0], argv_c.data(), env_c.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Subprocess::~Subprocess() {
  if (!result_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::filesystem::remove(out_path_);
  std::filesystem::remove(err_path_);
}

std::string Subprocess::StdoutSoFar() const { return ReadFile(out_path_); }

void Subprocess::Signal(int sig) {
  if (!result_) ::kill(pid_, sig);
}

ProcessResult Subprocess::Wait() {
  if (result_) return *result_;
  ProcessResult r;
  int status = 0;
  while (true) {
    const pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == pid_) break;
    if (absl::Now() > deadline_) {
      r.timed_out = true;
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path_);
  r.err = ReadFile(err_path_);
  result_ = r;
  return r;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  Subprocess p(argv, options);
  return p.Wait();
}

}  // namespace amld::testing
