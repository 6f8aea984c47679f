// The SSH executor's pure half (ssh_run.h): handles, remote scripts and how
// the answers are read. No host needed.
#include "daemon/executors/ssh/ssh_run.h"

#include "base/shell_quote.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace amld::daemon::ssh {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

RemoteRun Run1() {
  RemoteRun r;
  r.host = "gpu1";
  r.port = 2222;
  r.user = "me";
  r.remote_dir = "/home/me/amld/run 1";
  r.shim_pid = 4242;
  r.shim_start_time = 999;
  r.boot_id = "b-1";
  return r;
}

TEST(SshRunTest, HandleRoundTripAndFormat) {
  const std::string handle = FormatHandle(Run1());
  // Sorted keys: the format handles of earlier versions were written in.
  EXPECT_EQ(handle,
            R"({"boot_id":"b-1","host":"gpu1","port":2222,"remote_dir":"/home/me/amld/run 1",)"
            R"("shim_pid":4242,"shim_start_time":999,"user":"me"})");
  absl::StatusOr<RemoteRun> back = ParseHandle("run1", handle);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->remote_dir, "/home/me/amld/run 1");
  EXPECT_EQ(back->shim_pid, 4242);
  EXPECT_EQ(back->shim_start_time, 999u);
  EXPECT_EQ(back->port, 2222);
}

TEST(SshRunTest, BadHandlesSayWhy) {
  absl::StatusOr<RemoteRun> r = ParseHandle("run1", "[1]");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("handle of run run1 is not an SSH executor handle (not a JSON object)"));
  r = ParseHandle("run1", R"({"host":"h","user":"","remote_dir":"rel","port":0,)"
                          R"("shim_pid":1,"shim_start_time":2,"boot_id":"b"})");
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no remote folder"));
  r = ParseHandle("run1", R"({"host":"h","user":"","remote_dir":"/x","port":0,"boot_id":"b"})");
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("shim_pid"));
}

TEST(SshRunTest, LaunchAnswer) {
  RemoteRun base;
  base.remote_dir = "/r";
  absl::StatusOr<RemoteRun> r =
      ParseLaunchAnswer(CommandResult{0, 0, "boot b-9\nok 77 123\n", ""}, base, "host");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->boot_id, "b-9");
  EXPECT_EQ(r->shim_pid, 77);
  EXPECT_EQ(r->shim_start_time, 123u);
  r = ParseLaunchAnswer(CommandResult{0, 0, "boot b\nerror exec python9: not found\n", ""}, base,
                        "host");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status()));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("amld-shim on host could not start the run: exec python9: not found"));
  r = ParseLaunchAnswer(CommandResult{1, 0, "", "sh: 1: bad"}, base, "host");
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("exit code 1: sh: 1: bad"));
}

TEST(SshRunTest, Probe) {
  absl::StatusOr<Probe> p = ParseProbe(CommandResult{0, 0, "alive\nwd\n", ""});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->alive);
  EXPECT_TRUE(p->wd_present);
  EXPECT_FALSE(p->exit_json.has_value());
  p = ParseProbe(CommandResult{0, 0, "ended\nnowd\n{\"version\":1}\n", ""});
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->alive);
  EXPECT_FALSE(p->wd_present);
  EXPECT_EQ(p->exit_json, "{\"version\":1}\n");
  EXPECT_FALSE(ParseProbe(CommandResult{0, 0, "what\n", ""}).ok());
}

TEST(SshRunTest, ScriptsQuoteEveryValue) {
  RemoteRun r = Run1();
  EXPECT_THAT(ProbeScript(r), HasSubstr("'/home/me/amld/run 1'/wd"));
  EXPECT_THAT(CancelScript(r), HasSubstr("kill -TERM 4242"));
  EXPECT_EQ(TailCommand(r, 10, /*follow=*/false),
            "exec tail -c +11 -- '/home/me/amld/run 1/user_logs/std_log.txt'");
  EXPECT_EQ(TailCommand(r, 0, /*follow=*/true),
            "exec tail -c +1 -F -s 0.2 --pid=4242 -- '/home/me/amld/run 1/user_logs/std_log.txt'");
  absl::StatusOr<PreparedHost> host =
      ParsePrepareHostAnswer("/home/me/amld\namld-shim abc\namld-launch \n", "h");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->remote_workdir, "/home/me/amld");
  // amld-launch is there without its digest: installed again.
  EXPECT_EQ(host->installed, (std::map<std::string, std::string>{{"amld-shim", "abc"}}));
  EXPECT_FALSE(ParsePrepareHostAnswer("oops\n", "h").ok());
  EXPECT_THAT(InstallToolScript("/w/.amld/bin/t", "/w/.amld/bin", "amld-launch", "d1"),
              AllOf(HasSubstr("mv -f /w/.amld/bin/t /w/.amld/bin/amld-launch\n"),
                    HasSubstr("/w/.amld/bin/amld-launch.sha256")));
}

// A distributed run starts under the host's amld-launch, as locally, with
// the host's run folder.
TEST(SshRunTest, DistributedRunsStartUnderAmldLaunch) {
  LaunchSpec spec;
  spec.run_id = "run1";
  spec.run_dir = "/var/lib/amld/runs/run1";
  spec.argv = {"python3", "train.py"};
  spec.kill_grace = absl::Seconds(2);
  EXPECT_THAT(LaunchScript(spec, "/home/me/amld/run1", "/home/me/amld/.amld/bin"),
              AllOf(HasSubstr("/home/me/amld/.amld/bin/amld-shim"),
                    HasSubstr("-- python3 train.py 3>&1"), Not(HasSubstr("bin/amld-launch"))));
  spec.processes.kind = "pytorch";
  spec.processes.count = 2;
  EXPECT_THAT(LaunchScript(spec, "/home/me/amld/run1", "/home/me/amld/.amld/bin"),
              HasSubstr("-- /home/me/amld/.amld/bin/amld-launch --kind=pytorch --processes=2 "
                        "--run-dir=/home/me/amld/run1 --grace-ns=2000000000 -- python3 train.py"));
}

// amld's Python for runs: reported by the host preparation when installed,
// installed by rename unless another launch was first, and first on the
// run's PYTHONPATH (before the run's own, else the login's) when asked for.
TEST(SshRunTest, RunPythonIsInstalledOnceAndFirstOnThePythonPath) {
  EXPECT_THAT(PrepareHostScript("amld", "python-0123456789abcdef"),
              HasSubstr("if [ -d .amld/python-0123456789abcdef ]; then echo amld-python "
                        "python-0123456789abcdef; fi"));
  EXPECT_THAT(PrepareHostScript("amld"), Not(HasSubstr("amld-python")));
  absl::StatusOr<PreparedHost> host =
      ParsePrepareHostAnswer("/w\namld-shim abc\namld-python python-01\n", "h");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->installed[kRemotePythonKey], "python-01");
  EXPECT_EQ(InstallFolderScript("/w/.amld/python-01.tmp-7", "/w/.amld/python-01"),
            "if [ -d /w/.amld/python-01 ]; then rm -rf -- /w/.amld/python-01.tmp-7; else mv -T "
            "-- /w/.amld/python-01.tmp-7 /w/.amld/python-01 2>/dev/null || rm -rf -- "
            "/w/.amld/python-01.tmp-7; fi\n[ -d /w/.amld/python-01 ]\n");

  LaunchSpec spec;
  spec.run_id = "run1";
  spec.run_dir = "/var/lib/amld/runs/run1";
  spec.argv = {"python3", "train.py"};
  const std::string tools = "/w/.amld/bin", py = "/w/.amld/python-01";
  EXPECT_THAT(LaunchScript(spec, "/w/run1", tools, py), Not(HasSubstr("PYTHONPATH")));
  spec.run_python = true;
  EXPECT_THAT(LaunchScript(spec, "/w/run1", tools, py),
              HasSubstr("PYTHONPATH=/w/.amld/python-01\"${PYTHONPATH:+:$PYTHONPATH}\" "));
  EXPECT_THAT(LaunchScript(spec, "/w/run1", tools, ""), Not(HasSubstr("PYTHONPATH")));
  spec.run_env = {{"PYTHONPATH", "lib"}};
  const std::string script = LaunchScript(spec, "/w/run1", tools, py);
  EXPECT_THAT(script, HasSubstr("PYTHONPATH=/w/.amld/python-01:lib "));
  EXPECT_THAT(script, Not(HasSubstr("${PYTHONPATH")));
}

TEST(ShellQuoteTest, OneWordExactly) {
  EXPECT_EQ(base::ShellQuote("plain-word_1.txt"), "plain-word_1.txt");
  EXPECT_EQ(base::ShellQuote(""), "''");
  EXPECT_EQ(base::ShellQuote("a b"), "'a b'");
  EXPECT_EQ(base::ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(base::ShellQuote("$HOME"), "'$HOME'");
}

}  // namespace
}  // namespace amld::daemon::ssh
