// The real build/bin/amld as a process: the systemd user units verify, the
// daemon runs under systemd-socket-activate and takes the socket it is
// handed, a second daemon on the same data dir is refused naming the first,
// and SIGTERM shuts it down cleanly.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using testing::BinaryDir;
using testing::Eventually;
using ::testing::HasSubstr;
using testing::ReadFile;
using testing::SourceDir;
using testing::TempDir;
using testing::WriteFile;

const fs::path kAmld = BinaryDir() / "bin/amld";
const fs::path kShim = BinaryDir() / "bin/amld-shim";
const fs::path kUnits = SourceDir() / "deploy/systemd";

bool HaveTool(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Runs `argv` with stdout+stderr into `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const fs::path& log,
            const std::vector<std::string>& extra_env = {}) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store(extra_env);
  for (char** e = environ; *e != nullptr; ++e) env_store.push_back(*e);
  std::vector<char*> env;
  for (std::string& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << argv[0];
  return pid;
}

// Exit code of `pid`, or 128+signal; -1 when it did not end within 60 s.
int WaitExit(pid_t pid) {
  int status = 0;
  if (!Eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, absl::Seconds(60))) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

grpc::Status GetInfo(const fs::path& socket, pb::DaemonInfo* info) {
  auto channel = grpc::CreateChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ctx.set_wait_for_ready(true);
  return pb::Daemon::NewStub(channel)->GetInfo(&ctx, pb::GetInfoRequest(), info);
}

std::string RunCapturing(const std::string& command, int* rc) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(SystemdUnitsTest, UserUnitsAreWhatTheDaemonExpects) {
  const std::string socket_unit = ReadFile(kUnits / "amld.socket");
  EXPECT_THAT(socket_unit, HasSubstr("ListenStream=%t/amld/amld.sock"));
  EXPECT_THAT(socket_unit, HasSubstr("SocketMode=0600"));
  EXPECT_THAT(socket_unit, HasSubstr("DirectoryMode=0700"));
  const std::string service_unit = ReadFile(kUnits / "amld.service");
  EXPECT_THAT(service_unit, HasSubstr("ExecStart=/usr/local/bin/amld "));
  // Stopping the daemon must leave the runs' supervisors alone.
  EXPECT_THAT(service_unit, HasSubstr("KillMode=process"));
}

TEST(SystemdUnitsTest, UserUnitsVerifyWithTheBuiltBinary) {
  if (!HaveTool("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir;
  const fs::path runtime = dir / "runtime";
  ASSERT_EQ(::mkdir(runtime.c_str(), 0700), 0);
  // ExecStart must name an existing file: this build's amld.
  WriteFile(dir / "units/amld.service",
            absl::StrReplaceAll(ReadFile(kUnits / "amld.service"),
                                {{"/usr/local/bin/amld", kAmld.string()}}));
  WriteFile(dir / "units/amld.socket", ReadFile(kUnits / "amld.socket"));
  int rc = -1;
  std::string out = RunCapturing(
      absl::StrCat("XDG_RUNTIME_DIR=", runtime.string(), " systemd-analyze --user verify ",
                   (dir / "units/amld.socket").string(), " ",
                   (dir / "units/amld.service").string()),
      &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "");
  // The check is real: a missing binary is reported.
  WriteFile(dir / "units/amld.service",
            absl::StrReplaceAll(ReadFile(kUnits / "amld.service"),
                                {{"/usr/local/bin/amld", (dir / "no-such-amld").string()}}));
  out = RunCapturing(
      absl::StrCat("XDG_RUNTIME_DIR=", runtime.string(), " systemd-analyze --user verify ",
                   (dir / "units/amld.service").string()),
      &rc);
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("no-such-amld"));
}

TEST(AmldBinaryTest, SocketActivatedDaemonServesTheSocketItIsHanded) {
  if (!HaveTool("systemd-socket-activate")) GTEST_SKIP() << "systemd-socket-activate missing";
  TempDir dir;
  const fs::path socket = dir / "amld.sock";
  const fs::path data = dir / "data";
  pid_t pid = Spawn({"systemd-socket-activate", "-l", socket.string(), kAmld.string(), "--data-dir",
                     data.string(), "--shim", kShim.string()},
                    dir / "out.txt");
  ASSERT_TRUE(Eventually([&] { return fs::exists(socket); })) << ReadFile(dir / "out.txt");
  pb::DaemonInfo info;
  grpc::Status s = GetInfo(socket, &info);  // the first connection starts amld
  ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << ReadFile(dir / "out.txt");
  EXPECT_EQ(info.pid(), pid);  // systemd-socket-activate execs amld in place
  EXPECT_EQ(info.socket_path(), socket.string());
  EXPECT_EQ(info.data_dir(), data.string());
  // Further calls on new connections are served by the same daemon.
  pb::DaemonInfo again;
  ASSERT_TRUE(GetInfo(socket, &again).ok());
  EXPECT_EQ(again.pid(), pid);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_EQ(WaitExit(pid), 0) << ReadFile(dir / "out.txt");
  EXPECT_THAT(ReadFile(data / "amld.log"), HasSubstr("stopped"));
  // The socket is systemd's, not amld's: amld leaves it in place.
  EXPECT_TRUE(fs::exists(socket));
}

TEST(AmldBinaryTest, SecondDaemonIsRefusedAndSigtermStopsTheFirstCleanly) {
  TempDir dir;
  const fs::path data = dir / "data";
  const fs::path socket = dir / "run/amld.sock";
  pid_t first = Spawn({kAmld.string(), "--shim", kShim.string()}, dir / "first.txt",
                      {"AMLD_DATA_DIR=" + data.string(), "AMLD_SOCKET=" + socket.string()});
  pb::DaemonInfo info;
  ASSERT_TRUE(Eventually([&] { return fs::exists(socket); })) << ReadFile(dir / "first.txt");
  ASSERT_TRUE(GetInfo(socket, &info).ok()) << ReadFile(dir / "first.txt");
  EXPECT_EQ(info.pid(), first);
  EXPECT_EQ(info.data_dir(), data.string());  // from AMLD_DATA_DIR

  pid_t second = Spawn(
      {kAmld.string(), "--data-dir", data.string(), "--socket", (dir / "other.sock").string()},
      dir / "second.txt");
  EXPECT_EQ(WaitExit(second), 1);
  EXPECT_THAT(
      ReadFile(dir / "second.txt"),
      HasSubstr(absl::StrCat("another amld (pid ", first, ") is already using ", data.string())));
  ASSERT_TRUE(GetInfo(socket, &info).ok());

  int rc = -1;
  std::string usage = RunCapturing(kAmld.string() + " --no-such-flag", &rc);
  EXPECT_EQ(rc, 2) << usage;

  ASSERT_EQ(::kill(first, SIGTERM), 0);
  EXPECT_EQ(WaitExit(first), 0) << ReadFile(dir / "first.txt");
  EXPECT_FALSE(fs::exists(socket));
}

}  // namespace
}  // namespace amld::daemon
