// The `aml` binary without a daemon: usage errors exit 2 with one line,
// a missing daemon is one line with the fix and exit 1, JSON errors carry
// the code.
#include <gtest/gtest.h>

#include "tests/testing/build_paths.h"
#include "tests/testing/subprocess.h"

namespace {

using amld::testing::ProcessOptions;
using amld::testing::ProcessResult;
using amld::testing::RunProcess;

const std::string kAml = (amld::testing::BinaryDir() / "bin/aml").string();

ProcessResult Aml(std::vector<std::string> args, ProcessOptions options = {}) {
  args.insert(args.begin(), kAml);
  options.unset_env.push_back("AMLD_SOCKET");
  return RunProcess(args, options);
}

ProcessOptions WithSocketEnv(const std::string& socket) {
  ProcessOptions o;
  o.env = {{"AMLD_SOCKET", socket}};
  return o;
}

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST(AmlCliTest, HelpAndVersion) {
  auto r = Aml({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("run"), std::string::npos);
  r = Aml({"run", "submit", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--max-duration"), std::string::npos) << r.out;
  r = Aml({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("aml "), std::string::npos);
}

TEST(AmlCliTest, UsageErrorsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"run"},
      {"run", "frobnicate"},
      {"run", "submit"},
      {"run", "submit", "--tag", "novalue", "train.py"},
      {"run", "submit", "--command", "echo", "train.py", "--max-duration", "-5"},
      {"run", "submit", "--env", "=x", "train.py"},
      {"run", "list", "--status", "finished"},
      {"run", "download", "some_run"},
      {"run", "wait"},
      {"--output", "yaml", "run", "list"},
      {"run", "list", "--", "extra"},
  };
  for (const auto& args : cases) {
    auto r = Aml(args, WithSocketEnv("/tmp/amld-test-none/amld.sock"));
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("aml: ", 0), 0u) << joined << "\n" << r.err;
    EXPECT_EQ(Lines(r.err), 1) << joined << "\n" << r.err;
  }
}

TEST(AmlCliTest, MissingDaemonIsOneLineWithTheFix) {
  const std::string socket = "/tmp/amld-test-none/amld.sock";
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--socket", socket, "run", "list"},
                                             {"run", "show", "x", "--socket", socket},
                                             {"--socket", socket, "daemon", "status"},
                                             {"--socket", socket, "experiment", "list"}}) {
    auto r = Aml(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err,
              "aml: amld is not running at " + socket + ": start it with `aml daemon start`\n");
  }
  // AMLD_SOCKET is honoured like --socket.
  auto r = Aml({"run", "list"}, WithSocketEnv(socket));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(socket), std::string::npos) << r.err;
}

TEST(AmlCliTest, JsonErrorsCarryTheCode) {
  auto r = Aml({"--socket", "/tmp/amld-test-none/amld.sock", "--output", "json", "run", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("\"code\": \"UNAVAILABLE\""), std::string::npos) << r.out;
}

TEST(AmlCliTest, SubmitChecksTheSourceFolderFirst) {
  auto r = Aml({"--socket", "/tmp/amld-test-none/amld.sock", "run", "submit", "-s",
                "/nonexistent/project", "train.py"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the source folder /nonexistent/project does not exist"), std::string::npos)
      << r.err;
}

TEST(AmlCliTest, StoppingADaemonThatIsNotRunningSucceeds) {
  auto r = Aml({"--socket", "/tmp/amld-test-none/amld.sock", "daemon", "stop"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to stop"), std::string::npos) << r.err;
}

}  // namespace
