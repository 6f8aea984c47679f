// The real CommandRunner over Subprocess: capture, environment, timeouts,
// a missing program, stdout into a file, a started command's end.
#include "daemon/executors/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "daemon/executors/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

using ::testing::HasSubstr;

TEST(CommandRunnerTest, CapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> r =
      SystemCommandRunner().Run(Command{{"sh", "-c", "echo out; echo err >&2; exit 3"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->Describe(), "exit code 3: err");
}

TEST(CommandRunnerTest, ExactEnvironment) {
  Command c{{"/usr/bin/env"}};
  c.env = std::vector<std::string>{"ONLY=this"};
  absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "ONLY=this\n");
}

TEST(CommandRunnerTest, RunsAsTheAccountItIsGiven) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a command as another user";
  absl::StatusOr<RunAs> nobody = LookupAccount(65534);
  if (!nobody.ok()) GTEST_SKIP() << "this machine has no uid 65534";
  Command c{{"sh", "-c", "echo $(id -u) $(id -g) $(id -G) $HOME $USER $LOGNAME $(pwd) $KEPT"}};
  c.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/root", "USER=root", "KEPT=yes"};
  c.run_as = *nobody;
  absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(c);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string groups;
  for (gid_t g : nobody->groups) groups += std::to_string(g) + " ";
  EXPECT_EQ(r->out, absl::StrCat("65534 ", nobody->gid, " ", groups, nobody->home.string(), " ",
                                 nobody->user, " ", nobody->user, " / yes\n"))
      << r->err;
  // The daemon itself is still root, and still dumpable (the vfork child
  // shared its memory when it changed uid).
  EXPECT_EQ(::geteuid(), 0u);
  EXPECT_EQ(::prctl(PR_GET_DUMPABLE), 1);
}

TEST(CommandRunnerTest, MissingProgramIsNotFound) {
  absl::StatusOr<CommandResult> r =
      SystemCommandRunner().Run(Command{{"amld-no-such-program-here"}});
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("amld-no-such-program-here"));
}

TEST(CommandRunnerTest, KilledAfterTimeout) {
  absl::StatusOr<CommandResult> r =
      SystemCommandRunner().Run(Command{{"sleep", "30"}, absl::Milliseconds(100)});
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
}

TEST(CommandRunnerTest, StdoutIntoAFileAndStartedCommandEnds) {
  testing::TempDir dir;
  const std::filesystem::path log = dir / "log";
  base::ScopedFd fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid());
  Command c{{"sh", "-c", "echo one; echo oops >&2; exit 4"}};
  c.stdout_fd = fd.get();
  absl::StatusOr<std::unique_ptr<RunningCommand>> running = SystemCommandRunner().Start(c);
  ASSERT_TRUE(running.ok()) << running.status();
  pollfd p{(*running)->ended_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);
  CommandResult ended = (*running)->Wait();
  EXPECT_EQ(ended.exit_code, 4);
  EXPECT_EQ(ended.err, "oops\n");
  EXPECT_EQ(testing::ReadFile(log), "one\n");
}

TEST(CommandRunnerTest, StopEndsAStartedCommand) {
  absl::StatusOr<std::unique_ptr<RunningCommand>> running =
      SystemCommandRunner().Start(Command{{"sleep", "30"}});
  ASSERT_TRUE(running.ok()) << running.status();
  CommandResult stopped = (*running)->Stop();
  EXPECT_EQ(stopped.signal, SIGTERM);
}

TEST(SubprocessTest, ExtraFdCwdAndProcessGroup) {
  testing::TempDir dir;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  base::ScopedFd read_end(p[0]), write_end(p[1]);
  SubprocessOptions o;
  o.argv = {"sh", "-c", "pwd >&3; [ $(ps -o pgid= $$) = $$ ] && echo own-group >&3"};
  o.cwd = dir.path();
  o.extra_fds = {{write_end.get(), 3}};
  o.new_process_group = true;
  absl::StatusOr<Subprocess> child = Subprocess::Start(o);
  ASSERT_TRUE(child.ok()) << child.status();
  write_end = base::ScopedFd();
  int status = child->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string got(256, '\0');
  ssize_t n = ::read(read_end.get(), got.data(), got.size());
  got.resize(n > 0 ? n : 0);
  EXPECT_EQ(got, dir.path().string() + "\nown-group\n");
}

}  // namespace
}  // namespace amld::daemon
