// The Slurm executor's pure rules: parsing what Slurm's clients print (the
// samples are verbatim output of Slurm 22.05 on the test cluster), the
// batch script and sbatch's arguments, and how a job's end becomes a run's.
// The batch script is also run through /bin/sh with a stand-in srun, so its
// quoting is checked by a real shell.
#include "daemon/executors/slurm/slurm_job.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace amld::daemon::slurm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

absl::Time Local(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::LocalTimeZone());
}

TEST(SlurmJob, ParsesSqueueLines) {
  auto jobs = ParseSqueue(
      "4|PENDING|JobHeldUser||exp_1_aa\n"
      "6|RUNNING|None|amldnode|exp_2_bb\n"
      "2|FAILED|NonZeroExitCode|amldnode|exp_3_cc\n"
      "garbage\n");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs["4"].state, "PENDING");
  EXPECT_EQ(jobs["4"].reason, "JobHeldUser");
  EXPECT_EQ(jobs["4"].nodes, "");
  EXPECT_EQ(jobs["6"].nodes, "amldnode");
  EXPECT_EQ(jobs["6"].name, "exp_2_bb");
  EXPECT_TRUE(IsFinalState(jobs["2"].state));
  EXPECT_FALSE(IsFinalState(jobs["6"].state));
  EXPECT_FALSE(HasStarted(jobs["4"]));
  EXPECT_TRUE(HasStarted(jobs["6"]));
  EXPECT_TRUE(HasStarted(jobs["2"]));
}

TEST(SlurmJob, ParsesScontrolShowJob) {
  std::optional<JobInfo> job = ParseScontrolJob(
      "JobId=1 JobName=t1 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 "
      "Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode "
      "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 "
      "RunTime=00:00:01 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-26T14:44:41 "
      "EligibleTime=2026-11-26T14:44:41 AccrueTime=2026-11-26T14:44:41 "
      "StartTime=2026-11-26T14:44:41 EndTime=2026-11-26T14:44:42 Deadline=N/A "
      "NodeList=amldnode BatchHost=amldnode NumNodes=1 WorkDir=/tmp/a dir/x StdOut=/x\n");
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->job_id, "1");
  EXPECT_EQ(job->name, "t1");
  EXPECT_EQ(job->state, "FAILED");
  EXPECT_EQ(job->reason, "NonZeroExitCode");
  EXPECT_EQ(job->exit_code, 3);
  EXPECT_EQ(job->exit_signal, 0);
  EXPECT_EQ(job->start_time, Local(2026, 11, 26, 14, 44, 41));
  EXPECT_EQ(job->end_time, Local(2026, 11, 26, 14, 44, 42));
  EXPECT_EQ(job->nodes, "amldnode");

  EXPECT_FALSE(ParseScontrolJob("slurm_load_jobs error: Invalid job id specified\n"));
}

TEST(SlurmJob, PendingJobHasNoStartTime) {
  std::optional<JobInfo> job = ParseScontrolJob(
      "JobId=9 JobName=x JobState=PENDING Reason=Resources ExitCode=0:0 "
      "StartTime=2026-11-26T15:00:00 EndTime=Unknown NodeList=(null)\n");
  ASSERT_TRUE(job.has_value());
  EXPECT_FALSE(job->start_time.has_value());  // an estimate, not a start
  EXPECT_FALSE(job->end_time.has_value());
  EXPECT_EQ(job->nodes, "");
  EXPECT_EQ(ProgressOf(*job).detail, "PENDING (Resources)");
  EXPECT_EQ(ProgressOf(*job).placement, "slurm:9");
  EXPECT_FALSE(ProgressOf(*job).started);
}

TEST(SlurmJob, FindsTheLastJobCompRecordOfTheRightRun) {
  std::string file =
      "JobId=1 UserId=root(0) GroupId=root(0) Name=old_run JobState=COMPLETED Partition=debug "
      "TimeLimit=1 StartTime=2026-11-26T14:00:00 EndTime=2026-11-26T14:00:01 NodeList=amldnode "
      "NodeCnt=1 ProcCnt=1 WorkDir=/w ReservationName= Tres=cpu=1 Account= QOS= WcKey= "
      "Cluster=unknown SubmitTime=2026-11-26T14:00:00 EligibleTime=2026-11-26T14:00:00 "
      "DerivedExitCode=0:0 ExitCode=0:0 \n"
      "JobId=12 UserId=root(0) GroupId=root(0) Name=exp_9_ab JobState=TIMEOUT Partition=debug "
      "TimeLimit=1 StartTime=2026-11-26T14:44:41 EndTime=2026-11-26T14:46:11 NodeList=amldnode "
      "NodeCnt=1 ProcCnt=1 WorkDir=/w ReservationName= Tres=cpu=1 Account= QOS= WcKey= "
      "Cluster=unknown SubmitTime=2026-11-26T14:44:41 EligibleTime=2026-11-26T14:44:41 "
      "DerivedExitCode=0:0 ExitCode=0:15 \n"
      "JobId=1 UserId=root(0) GroupId=root(0) Name=exp_1_cd JobState=FAILED Partition=debug "
      "TimeLimit=1 StartTime=2026-11-26T14:50:00 EndTime=2026-11-26T14:50:01 NodeList=amldnode "
      "NodeCnt=1 ProcCnt=1 WorkDir=/w ReservationName= Tres=cpu=1 Account= QOS= WcKey= "
      "Cluster=unknown SubmitTime=2026-11-26T14:50:00 EligibleTime=2026-11-26T14:50:00 "
      "DerivedExitCode=3:0 ExitCode=3:0 \n";
  std::optional<JobInfo> timeout = FindJobCompRecord(file, "12", "exp_9_ab");
  ASSERT_TRUE(timeout.has_value());
  EXPECT_EQ(timeout->state, "TIMEOUT");
  EXPECT_EQ(timeout->exit_signal, 15);
  EXPECT_TRUE(HasStarted(*timeout));
  // Job id 1 twice: the name tells which run.
  std::optional<JobInfo> reused = FindJobCompRecord(file, "1", "exp_1_cd");
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(reused->state, "FAILED");
  EXPECT_EQ(reused->exit_code, 3);
  EXPECT_FALSE(FindJobCompRecord(file, "1", "exp_nope"));
  EXPECT_FALSE(FindJobCompRecord(file, "2", "exp_9_ab"));
}

TEST(SlurmJob, FindsTheJobCompFileInTheConfig) {
  EXPECT_EQ(JobCompFileFromConfig("AccountingStorageType   = accounting_storage/none\n"
                                  "JobCompLoc              = /var/x/jobcomp.txt\n"
                                  "JobCompType             = jobcomp/filetxt\n"),
            "/var/x/jobcomp.txt");
  EXPECT_EQ(JobCompFileFromConfig("JobCompLoc = /x\nJobCompType = jobcomp/none\n"), "");
}

TEST(SlurmJob, TimeLimitIsRoundedUpToWholeMinutes) {
  EXPECT_EQ(TimeLimitMinutes(absl::ZeroDuration()), 0);
  EXPECT_EQ(TimeLimitMinutes(absl::InfiniteDuration()), 0);
  EXPECT_EQ(TimeLimitMinutes(absl::Seconds(1)), 1);
  EXPECT_EQ(TimeLimitMinutes(absl::Seconds(60)), 1);
  EXPECT_EQ(TimeLimitMinutes(absl::Seconds(61)), 2);
  EXPECT_EQ(TimeLimitMinutes(absl::Milliseconds(60001)), 2);
  EXPECT_EQ(TimeLimitMinutes(absl::Hours(2)), 120);
}

TEST(SlurmJob, SbatchArguments) {
  SubmitSpec spec;
  spec.run_id = "exp_1_ab";
  spec.shared_run_dir = "/shared/exp_1_ab";
  spec.max_duration = absl::Seconds(90);
  spec.partition = "gpu";
  spec.account = "proj";
  spec.cpus = 4;
  spec.gpus = 2;
  spec.extra_args = {"--constraint=a100", "--mem=4G"};
  EXPECT_THAT(SbatchArgv(spec),
              ElementsAre("sbatch", "--parsable", "--job-name=exp_1_ab",
                          "--output=/shared/exp_1_ab/user_logs/std_log.txt", "--open-mode=append",
                          "--chdir=/shared/exp_1_ab/wd", "--export=ALL", "--no-requeue",
                          "--time=2", "--partition=gpu", "--account=proj", "--cpus-per-task=4",
                          "--gpus=2", "--constraint=a100", "--mem=4G",
                          "/shared/exp_1_ab/job.sh"));
  spec.max_duration = absl::ZeroDuration();
  spec.partition.clear();
  spec.account.clear();
  spec.cpus = 1;
  spec.gpus = 0;
  spec.extra_args.clear();
  std::vector<std::string> argv = SbatchArgv(spec);
  EXPECT_THAT(argv, Not(Contains(HasSubstr("--time"))));
  EXPECT_THAT(argv, Not(Contains(HasSubstr("--partition"))));
  EXPECT_THAT(argv, Not(Contains(HasSubstr("--cpus-per-task"))));
  EXPECT_THAT(argv, Not(Contains(HasSubstr("--gpus"))));
  EXPECT_THAT(argv, Not(Contains(HasSubstr("--nodes"))));
  // A distributed run: a task per process, processes / nodes on each node.
  spec.nodes = 2;
  spec.tasks_per_node = 3;
  EXPECT_THAT(SbatchArgv(spec), AllOf(Contains("--nodes=2"), Contains("--ntasks-per-node=3")));
  spec.gpus_per_node = 4;
  EXPECT_THAT(SbatchArgv(spec), Contains("--gpus-per-node=4"));
}

TEST(SlurmJob, TestOnlyAsksForTheSameAsTheJob) {
  SubmitSpec spec;
  spec.run_id = "exp_1_ab";
  spec.shared_run_dir = "/shared/exp_1_ab";
  spec.partition = "gpu";
  spec.nodes = 2;
  spec.tasks_per_node = 2;
  spec.gpus = 1;
  spec.extra_args = {"--mem=4G"};
  EXPECT_THAT(SbatchTestOnlyArgv(spec),
              ElementsAre("sbatch", "--test-only", "--partition=gpu", "--nodes=2",
                          "--ntasks-per-node=2", "--gpus=1", "--mem=4G", "--wrap=true"));
  EXPECT_TRUE(SlurmUnreachable(CommandResult{
      1, 0, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
                "(connect failure)\n"}));
  EXPECT_FALSE(SlurmUnreachable(
      CommandResult{1, 0, "", "allocation failure: Node count specification invalid\n"}));
}

TEST(SlurmJob, SbatchGetsOnlyWhatTheSlurmClientReads) {
  EXPECT_THAT(SbatchEnvironment({{"PATH", "/usr/bin"},
                                 {"HOME", "/home/u"},
                                 {"SLURM_CONF", "/etc/x.conf"},
                                 {"SLURM_JOB_ID", "5"},
                                 {"SBATCH_ACCOUNT", "proj"},
                                 {"LC_ALL", "C"},
                                 {"SECRET_TOKEN", "x"},
                                 {"AMLD_RUN_ID", "r"}}),
              ElementsAre("PATH=/usr/bin", "HOME=/home/u", "SLURM_CONF=/etc/x.conf",
                          "SBATCH_ACCOUNT=proj", "LC_ALL=C"));
}

TEST(SlurmJob, ParsesSbatchJobIds) {
  EXPECT_EQ(ParseSbatchJobId("1234\n"), "1234");
  EXPECT_EQ(ParseSbatchJobId("1234;cluster\n"), "1234");
  EXPECT_EQ(ParseSbatchJobId("sbatch: warning: x\n77\n"), "77");
  EXPECT_FALSE(ParseSbatchJobId(""));
  EXPECT_FALSE(ParseSbatchJobId("Submitted batch job 12\n"));
}

TEST(SlurmJob, JobEnvironmentMovesRunPathsAndDropsHostBoundVariables) {
  auto env = JobEnvironment(
      {{"AMLD_OUTPUTS_DIR", "/data/runs/r1/wd/outputs"},
       {"AMLD_METRICS_FILE", "/data/runs/r1/metrics.jsonl"},
       {"AMLD_RUN_ID", "r1"},
       {"AMLD_X", "/data/runs/r10/elsewhere"},
       {"MY_PATH", "/data/runs/r1/wd"},
       {"PATH", "/usr/bin:/bin"},
       {"SLURM_JOB_ID", "5"},
       {"SLURMD_NODENAME", "n"},
       {"SRUN_CPUS_PER_TASK", "2"},
       {"XDG_RUNTIME_DIR", "/run/user/0"},
       {"HOSTNAME", "submit-host"}},
      "/data/runs/r1", "/shared/r1");
  EXPECT_THAT(env, ElementsAre(Pair("AMLD_OUTPUTS_DIR", "/shared/r1/wd/outputs"),
                               Pair("AMLD_METRICS_FILE", "/shared/r1/metrics.jsonl"),
                               Pair("AMLD_RUN_ID", "r1"),
                               Pair("AMLD_X", "/data/runs/r10/elsewhere"),
                               Pair("MY_PATH", "/data/runs/r1/wd"), Pair("PATH", "/usr/bin:/bin")));
}

TEST(SlurmJob, ProgressNamesTheJobAndItsNodes) {
  JobInfo running;
  running.job_id = "6";
  running.state = "RUNNING";
  running.reason = "None";
  running.nodes = "amldnode";
  RunProgress p = ProgressOf(running);
  EXPECT_TRUE(p.started);
  EXPECT_EQ(p.placement, "slurm:6 on amldnode");
  EXPECT_EQ(p.detail, "RUNNING");
}

JobInfo Ended(const std::string& state, int code, int sig, bool started = true) {
  JobInfo j;
  j.job_id = "42";
  j.state = state;
  j.reason = "None";
  j.exit_code = code;
  j.exit_signal = sig;
  if (started) j.nodes = "amldnode";
  return j;
}

shim::ExitRecord Record(int code, int sig) {
  shim::ExitRecord r;
  r.exit_code = code;
  r.signal = sig;
  r.start_time_ns = 1'000'000'000;
  r.end_time_ns = 3'000'000'000;
  return r;
}

TEST(SlurmJob, DecidesHowTheRunEnded) {
  // The shim's record wins for code and signal (srun would say 137).
  ExitStatus killed = DecideJobEnd(Ended("FAILED", 137, 0), Record(0, 9));
  EXPECT_EQ(killed.signal, 9);
  EXPECT_EQ(killed.exit_code, 0);
  EXPECT_TRUE(killed.failure.empty());
  EXPECT_EQ(killed.start_time, absl::FromUnixSeconds(1));

  ExitStatus three = DecideJobEnd(Ended("FAILED", 3, 0), Record(3, 0));
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_FALSE(three.canceled || three.timed_out);

  // A SIGTERM the shim took for a cancel is only one if Slurm says so.
  shim::ExitRecord termed = Record(0, 15);
  termed.canceled = true;
  EXPECT_FALSE(DecideJobEnd(Ended("FAILED", 143, 0), termed).canceled);
  EXPECT_TRUE(DecideJobEnd(Ended("CANCELLED", 0, 15), termed).canceled);

  // Slurm's time limit, with or without the shim's record.
  EXPECT_TRUE(DecideJobEnd(Ended("TIMEOUT", 0, 15), termed).timed_out);
  EXPECT_FALSE(DecideJobEnd(Ended("TIMEOUT", 0, 15), termed).canceled);
  EXPECT_TRUE(DecideJobEnd(Ended("TIMEOUT", 0, 15), std::nullopt).timed_out);
  // The shim's own deadline.
  shim::ExitRecord shim_timeout = Record(0, 15);
  shim_timeout.timed_out = true;
  EXPECT_TRUE(DecideJobEnd(Ended("FAILED", 143, 0), shim_timeout).timed_out);

  // Canceled while pending: no record, no start.
  ExitStatus pending_cancel = DecideJobEnd(Ended("CANCELLED", 0, 0, false), std::nullopt);
  EXPECT_TRUE(pending_cancel.canceled);
  EXPECT_TRUE(pending_cancel.failure.empty());

  // The shim could not even start: Slurm's code, said plainly.
  ExitStatus no_shim = DecideJobEnd(Ended("FAILED", 2, 0), std::nullopt);
  EXPECT_THAT(no_shim.failure, HasSubstr("Slurm job 42 ended FAILED with exit code 2:0"));
  EXPECT_TRUE(DecideJobEnd(Ended("COMPLETED", 0, 0), std::nullopt).failure.empty());

  shim::ExitRecord launch = Record(127, 0);
  launch.launch_error = "exec nope: No such file or directory";
  EXPECT_EQ(DecideJobEnd(Ended("FAILED", 127, 0), launch).launch_error,
            "exec nope: No such file or directory");

  JobInfo node_fail = Ended("NODE_FAIL", 0, 0);
  node_fail.reason = "NodeDown";
  EXPECT_EQ(DecideJobEnd(node_fail, std::nullopt).failure,
            "Slurm ended job 42 NODE_FAIL (NodeDown)");
  EXPECT_EQ(DecideJobEnd(Ended("OUT_OF_MEMORY", 0, 9), std::nullopt).failure,
            "out of memory: Slurm ended job 42 OUT_OF_MEMORY");
}

// The batch script through a real /bin/sh, with `srun` replaced by a script
// that prints the environment and arguments it got.
TEST(SlurmJob, BatchScriptQuotesForARealShell) {
  amld::testing::TempDir tmp("amld-slurm-job-");
  const fs::path& dir = tmp.path();
  fs::create_directories(dir / "bin");
  fs::create_directories(dir / "run dir" / "system_logs");
  {
    std::ofstream srun(dir / "bin" / "srun");
    // Python, not sh: dash drops variables whose names are not identifiers.
    srun << "#!/usr/bin/python3\nimport os, sys\n"
            "for a in sys.argv[1:]: print('[' + a + ']')\n"
            "print('ODD=' + os.environ.get('a.b', ''))\n"
            "print('QUOTED=' + os.environ.get('QUOTED', ''))\n"
            "print('EXPORT=' + os.environ.get('SLURM_EXPORT_ENV', ''))\n";
  }
  fs::permissions(dir / "bin" / "srun", fs::perms(0755));
  BatchScriptSpec spec;
  spec.run_id = "exp_1_ab";
  spec.shared_run_dir = dir / "run dir";
  spec.shim = dir / "amld-shim";
  spec.argv = {"python3", "train.py", "--name", "it's a \"test\" $HOME `x`", ""};
  spec.env = {{"PATH", (dir / "bin").string() + ":/usr/bin:/bin"},
              {"QUOTED", "a 'b' \"c\" $d\nline2"},
              {"a.b", "odd name"}};
  spec.max_duration = absl::Seconds(30);
  spec.kill_grace = absl::Seconds(2);
  {
    std::ofstream script(dir / "job.sh");
    script << BatchScript(spec);
  }
  std::string cmd = absl::StrCat("env -i PATH=", (dir / "bin").string(), ":/usr/bin:/bin /bin/sh ",
                                 (dir / "job.sh").string(), " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  EXPECT_THAT(out, HasSubstr("[--ntasks=1]\n"));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("[", (dir / "amld-shim").string(), "]\n[--foreground]\n")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("[--run-dir=", (dir / "run dir").string(), "]\n")));
  EXPECT_THAT(out, HasSubstr("[--max-duration-ns=30000000000]\n[--grace-ns=2000000000]\n[--]\n"
                             "[python3]\n[train.py]\n[--name]\n[it's a \"test\" $HOME `x`]\n[]\n"));
  EXPECT_THAT(out, HasSubstr("QUOTED=a 'b' \"c\" $d\nline2\n"));
  EXPECT_THAT(out, HasSubstr("ODD=odd name\n"));
  EXPECT_THAT(out, HasSubstr("EXPORT=ALL\n"));
  // srun's own stderr goes to the run's system_logs/slurm.log.
  EXPECT_TRUE(fs::exists(dir / "run dir" / "system_logs" / "slurm.log"));
}

// A distributed run's script: each node's NodeAddr from scontrol, in node
// order, and amld-shim itself (no srun around it) supervising amld-launch.
TEST(SlurmJob, DistributedBatchScriptPassesTheNodesAddressesToAmldLaunch) {
  amld::testing::TempDir tmp("amld-slurm-job-");
  const fs::path& dir = tmp.path();
  fs::create_directories(dir / "bin");
  fs::create_directories(dir / "run" / "system_logs");
  auto write_exe = [&](const fs::path& path, const std::string& text) {
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms(0755));
  };
  write_exe(dir / "bin" / "srun", "#!/bin/sh\nexit 99\n");
  write_exe(dir / "bin" / "scontrol",
            "#!/bin/sh\n"
            "if [ \"$1 $2\" = 'show hostnames' ]; then printf 'n1\\nn2\\n'; exit; fi\n"
            "echo \"NodeName=$4 Arch=x86_64 NodeAddr=10.0.0.${4#n} NodeHostName=h\"\n");
  write_exe(dir / "amld-shim", "#!/usr/bin/python3\nimport sys\nfor a in sys.argv[1:]: print('[' + a + ']')\n");
  BatchScriptSpec spec;
  spec.run_id = "exp_1_ab";
  spec.shared_run_dir = dir / "run";
  spec.shim = dir / "amld-shim";
  spec.launch = dir / "amld-launch";
  spec.argv = {"python3", "ddp.py"};
  spec.env = {{"PATH", (dir / "bin").string() + ":/usr/bin:/bin"}};
  spec.processes.kind = "pytorch";
  spec.processes.count = 4;
  spec.processes.nodes = 2;
  std::ofstream(dir / "job.sh") << BatchScript(spec);
  std::string cmd = absl::StrCat("env -i SLURM_JOB_NODELIST='n[1-2]' PATH=", (dir / "bin").string(),
                                 ":/usr/bin:/bin /bin/sh ", (dir / "job.sh").string(), " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  ::pclose(p);
  std::ifstream in(dir / "run" / "system_logs" / shim::kShimLogName);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(out, HasSubstr("[--foreground]\n"));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("[--]\n[", (dir / "amld-launch").string(),
                                          "]\n[--kind=pytorch]\n[--processes=4]\n[--nodes=2]\n")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("[--srun=", (dir / "bin" / "srun").string(), "]\n")));
  EXPECT_THAT(out, HasSubstr("[--hosts=10.0.0.1,10.0.0.2]\n[--]\n[python3]\n[ddp.py]\n"));
}

}  // namespace
}  // namespace amld::daemon::slurm
