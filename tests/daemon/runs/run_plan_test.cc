#include "daemon/runs/run_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>

#include "daemon/runs/submit_validation.h"

namespace amld::daemon {
namespace {

using amld::v1::RunConfig;
using amld::v1::RunStatus;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::map<std::string, std::string> AsMap(const EnvList& env) {
  return std::map<std::string, std::string>(env.begin(), env.end());
}

TEST(RunPlanTest, RunIdIsExperimentSecondsAndEightHex) {
  absl::Time t = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(MakeRunId("mnist", t, 0xabc), "mnist_1700000000_00000abc");
  EXPECT_EQ(MakeRunId("x", t, 0xffffffffu), "x_1700000000_ffffffff");
}

TEST(RunPlanTest, ScriptRunsWithPython3OrTheGivenInterpreter) {
  RunConfig c;
  c.set_script("src/train.py");
  c.add_arguments("--lr");
  c.add_arguments("0.1");
  EXPECT_THAT(BuildArgv(c), ElementsAre("python3", "src/train.py", "--lr", "0.1"));
  c.mutable_environment()->set_interpreter_path("/opt/venv/bin/python");
  EXPECT_THAT(BuildArgv(c), ElementsAre("/opt/venv/bin/python", "src/train.py", "--lr", "0.1"));
}

TEST(RunPlanTest, CommandRunsInShellWithQuotedArguments) {
  RunConfig c;
  c.set_command("echo hi");
  EXPECT_THAT(BuildArgv(c), ElementsAre("/bin/sh", "-c", "echo hi"));
  c.add_arguments("a b");
  c.add_arguments("it's");
  c.add_arguments("");
  c.add_arguments("plain-1.0");
  EXPECT_THAT(BuildArgv(c), ElementsAre("/bin/sh", "-c", "echo hi 'a b' 'it'\\''s' '' plain-1.0"));
}

TEST(RunPlanTest, EnvironmentHasTheAmldVariablesAndTheRunsOwn) {
  RunConfig c;
  c.set_experiment_name("exp");
  (*c.mutable_environment()->mutable_environment_variables())["LR"] = "0.5";
  (*c.mutable_environment()->mutable_environment_variables())["HOME"] = "/custom";
  RunPaths paths = RunPathsFor("/data/runs", "exp_1_00000001");
  auto env =
      AsMap(BuildEnvironment({{"HOME", "/root"}, {"PATH", "/bin"}, {"PYTHONUNBUFFERED", "0"}},
                             "exp_1_00000001", c, paths));
  EXPECT_EQ(env["AMLD_RUN_ID"], "exp_1_00000001");
  EXPECT_EQ(env["AMLD_EXPERIMENT"], "exp");
  EXPECT_EQ(env["AMLD_COMPUTE_TARGET"], "local");
  EXPECT_EQ(env["AMLD_OUTPUTS_DIR"], "/data/runs/exp_1_00000001/wd/outputs");
  EXPECT_EQ(env["AMLD_LOGS_DIR"], "/data/runs/exp_1_00000001/wd/logs");
  EXPECT_EQ(env["AMLD_METRICS_FILE"], "/data/runs/exp_1_00000001/metrics.jsonl");
  EXPECT_EQ(env["PYTHONUNBUFFERED"], "1");
  EXPECT_EQ(env["PATH"], "/bin");
  EXPECT_EQ(env["LR"], "0.5");
  EXPECT_EQ(env["HOME"], "/custom");  // the run's own variables win
}

// The azureml alias: the daemon's folder first on a local run's PYTHONPATH;
// on another target the executor's copy of amld's Python (run_python); for
// an environment that opts out, neither.
TEST(RunPlanTest, TheAzuremlAliasGoesWhereTheRunRuns) {
  RunConfig c;
  c.set_experiment_name("exp");
  LaunchSpec local;
  local.env = {{"PATH", "/bin"}, {"PYTHONPATH", "/mine"}};
  AddAzuremlAlias("/data/azureml-alias", c, &local);
  EXPECT_EQ(AsMap(local.env)["PYTHONPATH"], "/data/azureml-alias:/mine");
  EXPECT_FALSE(local.run_python);
  LaunchSpec bare;
  bare.env = {{"A", "1"}, {"Z", "2"}};
  AddAzuremlAlias("/data/azureml-alias", c, &bare);
  EXPECT_THAT(bare.env, ElementsAre(std::pair<std::string, std::string>{"A", "1"},
                                    std::pair<std::string, std::string>{"PYTHONPATH",
                                                                        "/data/azureml-alias"},
                                    std::pair<std::string, std::string>{"Z", "2"}));

  c.set_compute_target("box");
  LaunchSpec remote;
  remote.env = {{"PYTHONPATH", "/mine"}};
  AddAzuremlAlias("/data/azureml-alias", c, &remote);
  EXPECT_TRUE(remote.run_python);
  EXPECT_EQ(AsMap(remote.env)["PYTHONPATH"], "/mine") << "the daemon's folder is not there";
  EXPECT_EQ(AsMap(BuildEnvironment({}, "exp_1_00000001", c,
                                   RunPathsFor("/data/runs", "exp_1_00000001")))
                ["AMLD_COMPUTE_TARGET"],
            "box");

  c.mutable_environment()->set_azureml_alias_off(true);
  LaunchSpec off;
  AddAzuremlAlias("/data/azureml-alias", c, &off);
  EXPECT_FALSE(off.run_python);
  c.clear_compute_target();
  AddAzuremlAlias("/data/azureml-alias", c, &off);
  EXPECT_TRUE(off.env.empty());
}

TEST(RunPlanTest, DaemonOnlyVariablesAreNotPassedOn) {
  ::setenv("LISTEN_FDS", "1", 1);
  ::setenv("AMLD_TEST_KEEP", "yes", 1);
  auto env = AsMap(CaptureDaemonEnvironment());
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("AMLD_TEST_KEEP");
  EXPECT_EQ(env.count("LISTEN_FDS"), 0u);
  EXPECT_EQ(env["AMLD_TEST_KEEP"], "yes");
}

TEST(RunPlanTest, ALocalRunTakesItsSubmittersEnvironmentAndPython) {
  RunConfig c;
  c.set_experiment_name("exp");
  c.set_script("train.py");
  (*c.mutable_environment()->mutable_environment_variables())["LR"] = "0.5";
  const RunPaths paths = RunPathsFor("/data/runs", "r");
  const EnvList daemon_env = {{"PATH", "/usr/bin"}, {"DAEMON_ONLY", "1"}};
  LaunchSpec spec = BuildLaunchSpec("r", c, paths, daemon_env, absl::Seconds(1));
  UseSubmitterEnvironment("r", c, paths, &spec);  // none sent: the daemon's stays
  EXPECT_EQ(AsMap(spec.env)["DAEMON_ONLY"], "1");
  EXPECT_EQ(spec.argv.front(), "python3");

  auto* sub = c.mutable_submitter_environment();
  (*sub->mutable_variables())["PATH"] = "/home/u/venv/bin:/usr/bin";
  (*sub->mutable_variables())["VIRTUAL_ENV"] = "/home/u/venv";
  (*sub->mutable_variables())["LISTEN_FDS"] = "3";
  (*sub->mutable_variables())["LR"] = "9";
  sub->set_python("/home/u/venv/bin/python3");
  spec = BuildLaunchSpec("r", c, paths, daemon_env, absl::Seconds(1));
  UseSubmitterEnvironment("r", c, paths, &spec);
  auto env = AsMap(spec.env);
  EXPECT_EQ(env["PATH"], "/home/u/venv/bin:/usr/bin");
  EXPECT_EQ(env["VIRTUAL_ENV"], "/home/u/venv");
  EXPECT_EQ(env.count("DAEMON_ONLY"), 0u) << "the submitter's replaces the daemon's";
  EXPECT_EQ(env.count("LISTEN_FDS"), 0u);
  EXPECT_EQ(env["LR"], "0.5") << "the run's own variables win";
  EXPECT_EQ(env["AMLD_RUN_ID"], "r");
  EXPECT_THAT(spec.argv, ElementsAre("/home/u/venv/bin/python3", "train.py"));
  EXPECT_TRUE(std::is_sorted(spec.env.begin(), spec.env.end()));
  // An interpreter the config names wins; a command has none.
  c.mutable_environment()->set_interpreter_path("/opt/py");
  spec = BuildLaunchSpec("r", c, paths, daemon_env, absl::Seconds(1));
  UseSubmitterEnvironment("r", c, paths, &spec);
  EXPECT_EQ(spec.argv.front(), "/opt/py");
}

TEST(RunPlanTest, AmldYamlAllowAndDenyDropSubmittersVariables) {
  amld::v1::SubmitterEnvironment e;
  for (const char* name : {"PATH", "HOME", "HTTP_PROXY", "CONDA_PREFIX", "SSH_AUTH_SOCK"}) {
    (*e.mutable_variables())[name] = "x";
  }
  e.add_left_out("GITHUB_TOKEN");
  FilterSubmitterEnvironment({}, &e);
  EXPECT_EQ(e.variables_size(), 5);
  FilterSubmitterEnvironment({.allow = {}, .deny = {"SSH_*", "*_PROXY"}}, &e);
  EXPECT_EQ(e.variables_size(), 3);
  EXPECT_THAT(e.left_out(), ElementsAre("GITHUB_TOKEN", "HTTP_PROXY", "SSH_AUTH_SOCK"));
  FilterSubmitterEnvironment({.allow = {"PATH", "CONDA_*"}, .deny = {}}, &e);
  EXPECT_EQ(e.variables_size(), 2);
  EXPECT_EQ(e.variables().count("HOME"), 0u);
  EXPECT_THAT(e.left_out(), ElementsAre("GITHUB_TOKEN", "HOME", "HTTP_PROXY", "SSH_AUTH_SOCK"));
}

TEST(RunPlanTest, OutcomeFollowsTheSupervisorsEvidence) {
  ExitStatus e;
  EXPECT_EQ(DecideOutcome(e, 0, "").status, RunStatus::COMPLETED);
  e.exit_code = 3;
  FinalOutcome f = DecideOutcome(e, 0, "");
  EXPECT_EQ(f.status, RunStatus::FAILED);
  EXPECT_EQ(f.error, "exit code 3");
  EXPECT_EQ(f.exit_code, 3);
  e = ExitStatus{};
  e.signal = SIGKILL;
  EXPECT_EQ(DecideOutcome(e, 0, "").error, "killed by signal 9 (SIGKILL)");
  e.timed_out = true;
  EXPECT_EQ(DecideOutcome(e, 600, "").error, "timed out after 600 s");
  e = ExitStatus{};
  e.canceled = true;
  e.signal = SIGTERM;
  f = DecideOutcome(e, 0, "user asked");
  EXPECT_EQ(f.status, RunStatus::CANCELED);
  EXPECT_EQ(f.error, "canceled: user asked");
  e = ExitStatus{};
  e.exit_code = 127;
  e.launch_error = "exec nope: No such file or directory";
  f = DecideOutcome(e, 0, "");
  EXPECT_EQ(f.status, RunStatus::FAILED);
  EXPECT_EQ(f.error, "could not start: exec nope: No such file or directory");
  f = DecideOutcome(absl::InternalError("supervisor lost: gone"), 0, "");
  EXPECT_EQ(f.status, RunStatus::FAILED);
  EXPECT_THAT(f.error, HasSubstr("daemon lost the run: supervisor lost"));
}

TEST(RunPlanTest, ACancelThatCameTooLateKeepsTheEarnedStatus) {
  ExitStatus e;  // ended by itself with 0 before the cancel reached it
  EXPECT_EQ(DecideOutcome(e, 0, "too late").status, RunStatus::COMPLETED);
}

TEST(SubmitValidationTest, RelativePathsMustStayInside) {
  EXPECT_TRUE(base::ValidateRelativePath("a/b.py", "script").ok());
  for (const char* bad : {"", "/etc/passwd", "../x.py", "a/../../x", "a//b", "./a", "a/."}) {
    absl::Status s = base::ValidateRelativePath(bad, "script");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

RunConfig Valid() {
  RunConfig c;
  c.set_experiment_name("exp");
  c.set_script("train.py");
  c.mutable_snapshot_root()->set_hash(std::string(64, 'a'));
  c.mutable_snapshot_root()->set_size_bytes(10);
  return c;
}

TEST(SubmitValidationTest, ConfigChecksUseTheDocumentedCodes) {
  EXPECT_TRUE(ValidateRunConfig(Valid()).ok());
  struct Case {
    std::function<void(RunConfig&)> change;
    absl::StatusCode code;
    std::string says;
  };
  std::vector<Case> cases = {
      {[](RunConfig& c) { c.set_experiment_name(""); }, absl::StatusCode::kInvalidArgument,
       "experiment"},
      {[](RunConfig& c) { c.set_experiment_name("a b"); }, absl::StatusCode::kInvalidArgument,
       "experiment"},
      {[](RunConfig& c) { c.set_command("ls"); }, absl::StatusCode::kInvalidArgument, "not both"},
      {[](RunConfig& c) { c.clear_script(); }, absl::StatusCode::kInvalidArgument,
       "nothing to run"},
      {[](RunConfig& c) { c.set_script("../train.py"); }, absl::StatusCode::kInvalidArgument, ".."},
      {[](RunConfig& c) { c.set_script("/abs/train.py"); }, absl::StatusCode::kInvalidArgument,
       "absolute"},
      {[](RunConfig& c) {
         (*c.mutable_environment()->mutable_environment_variables())["A=B"] = "";
       },
       absl::StatusCode::kInvalidArgument, "'='"},
      {[](RunConfig& c) { (*c.mutable_environment()->mutable_environment_variables())[""] = "x"; },
       absl::StatusCode::kInvalidArgument, "empty"},
      {[](RunConfig& c) {
         (*c.mutable_environment()->mutable_environment_variables())["AMLD_RUN_ID"] = "x";
       },
       absl::StatusCode::kInvalidArgument, "reserved"},
      {[](RunConfig& c) { c.set_max_run_duration_seconds(-1); }, absl::StatusCode::kInvalidArgument,
       "max_run_duration_seconds"},
      {[](RunConfig& c) { c.clear_snapshot_root(); }, absl::StatusCode::kInvalidArgument,
       "snapshot_root"},
      {[](RunConfig& c) { c.mutable_snapshot_root()->set_hash("xyz"); },
       absl::StatusCode::kInvalidArgument, ""},
      {[](RunConfig& c) { c.mutable_distributed()->mutable_pytorch()->set_process_count(2); },
       absl::StatusCode::kInvalidArgument, "PyTorchConfiguration.node_count must be at least 1"},
      {[](RunConfig& c) {
         auto* p = c.mutable_distributed()->mutable_pytorch();
         p->set_process_count(3);
         p->set_node_count(2);
       },
       absl::StatusCode::kInvalidArgument, "not a whole number of processes per node"},
      {[](RunConfig& c) {
         auto* p = c.mutable_distributed()->mutable_pytorch();
         p->set_process_count(2);
         p->set_node_count(1);
         p->set_communication_backend("mpi");
       },
       absl::StatusCode::kInvalidArgument, "communication_backend"},
      {[](RunConfig& c) { c.mutable_distributed()->mutable_mpi()->set_node_count(1); },
       absl::StatusCode::kInvalidArgument, "process_count_per_node must be at least 1"},
      {[](RunConfig& c) {
         c.mutable_distributed()->mutable_tensorflow()->set_parameter_server_count(1);
       },
       absl::StatusCode::kInvalidArgument, "worker_count must be at least 1"},
      {[](RunConfig& c) {
         auto* p = c.mutable_distributed()->mutable_pytorch();
         p->set_process_count(5000);
         p->set_node_count(1);
       },
       absl::StatusCode::kInvalidArgument, "too many"},
      {[](RunConfig& c) { c.mutable_environment()->set_docker_base_image("ubuntu"); },
       absl::StatusCode::kUnimplemented, "docker_base_image"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    RunConfig c = Valid();
    cases[i].change(c);
    absl::Status s = ValidateRunConfig(c);
    EXPECT_EQ(s.code(), cases[i].code) << "case " << i << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(cases[i].says)) << "case " << i;
  }
  RunConfig local = Valid();
  local.set_compute_target("local");
  EXPECT_TRUE(ValidateRunConfig(local).ok());
  // Whether a named target exists is the run manager's check (the store's
  // targets), not the config's.
  RunConfig named = Valid();
  named.set_compute_target("gpu-box");
  EXPECT_TRUE(ValidateRunConfig(named).ok());
  RunConfig empty_distributed = Valid();
  empty_distributed.mutable_distributed();  // set but naming no framework
  EXPECT_TRUE(ValidateRunConfig(empty_distributed).ok());
  EXPECT_TRUE(ProcessesOf(empty_distributed).kind.empty());
  RunConfig pytorch = Valid();
  pytorch.mutable_distributed()->mutable_pytorch()->set_process_count(2);
  pytorch.mutable_distributed()->mutable_pytorch()->set_node_count(1);
  EXPECT_TRUE(ValidateRunConfig(pytorch).ok());
  EXPECT_EQ(ProcessesOf(pytorch).kind, "pytorch");
  EXPECT_EQ(ProcessesOf(pytorch).count, 2);
  RunConfig tf = Valid();
  tf.mutable_distributed()->mutable_tensorflow()->set_worker_count(2);
  tf.mutable_distributed()->mutable_tensorflow()->set_parameter_server_count(1);
  EXPECT_TRUE(ValidateRunConfig(tf).ok());
  EXPECT_EQ(ProcessesOf(tf).count, 3);
  EXPECT_EQ(ProcessesOf(tf).parameter_servers, 1);
  // Several nodes are the run manager's check (only Slurm targets take them).
  RunConfig two_nodes = Valid();
  two_nodes.mutable_distributed()->mutable_pytorch()->set_process_count(4);
  two_nodes.mutable_distributed()->mutable_pytorch()->set_node_count(2);
  EXPECT_TRUE(ValidateRunConfig(two_nodes).ok());
  EXPECT_EQ(ProcessesOf(two_nodes).nodes, 2);
  EXPECT_EQ(ProcessesOf(two_nodes).count, 4);
  RunConfig mpi = Valid();
  mpi.mutable_distributed()->mutable_mpi()->set_process_count_per_node(3);
  mpi.mutable_distributed()->mutable_mpi()->set_node_count(2);
  EXPECT_EQ(ProcessesOf(mpi).nodes, 2);
  EXPECT_EQ(ProcessesOf(mpi).count, 6);
  EXPECT_EQ(BuildLaunchSpec("r", tf, RunPathsFor("/runs", "r"), {}, absl::Seconds(1))
                .processes.kind,
            "tensorflow");
}

TEST(RunPlanTest, VisibleGpusReplaceAnyInheritedValueAndKeepTheEnvironmentSorted) {
  LaunchSpec spec;
  spec.env = {{"A", "1"}, {"CUDA_VISIBLE_DEVICES", "0,1,2,3"}, {"Z", "2"}};  // the daemon's own
  SetVisibleGpus({2, 0}, &spec);
  EXPECT_THAT(spec.env, ElementsAre(std::pair<std::string, std::string>{"A", "1"},
                                    std::pair<std::string, std::string>{"CUDA_VISIBLE_DEVICES",
                                                                        "2,0"},
                                    std::pair<std::string, std::string>{"Z", "2"}));
  LaunchSpec none;
  none.env = {{"A", "1"}, {"PATH", "/bin"}};
  SetVisibleGpus({}, &none);
  ASSERT_EQ(none.env.size(), 3u);
  EXPECT_EQ(none.env[1], (std::pair<std::string, std::string>{"CUDA_VISIBLE_DEVICES", ""}));
}

TEST(RunPlanTest, EffectiveRunDurationAppliesTheDefaultAndTheCap) {
  EXPECT_EQ(*EffectiveRunDuration(0, 0, 0), 0);      // no limit anywhere
  EXPECT_EQ(*EffectiveRunDuration(0, 60, 0), 60);    // the default
  EXPECT_EQ(*EffectiveRunDuration(30, 60, 0), 30);   // the run's own
  EXPECT_EQ(*EffectiveRunDuration(0, 0, 120), 120);  // a cap alone bounds "no limit"
  EXPECT_EQ(*EffectiveRunDuration(120, 60, 120), 120);
  absl::StatusOr<int64_t> over = EffectiveRunDuration(121, 60, 120);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("limit of 120 s"));
  // Priority and resources are checked with the rest of the config.
  RunConfig c;
  c.set_experiment_name("e");
  c.set_command("true");
  c.mutable_snapshot_root()->set_hash(std::string(64, 'a'));
  c.mutable_snapshot_root()->set_size_bytes(1);
  ASSERT_TRUE(ValidateRunConfig(c).ok()) << ValidateRunConfig(c);
  c.set_priority(kMaxPriority + 1);
  EXPECT_EQ(ValidateRunConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c.set_priority(kMinPriority);
  c.mutable_resources()->set_gpus(-1);
  EXPECT_EQ(ValidateRunConfig(c).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amld::daemon
