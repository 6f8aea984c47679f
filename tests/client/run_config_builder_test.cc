#include "client/run_config_builder.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace amld::client {
namespace {

namespace fs = std::filesystem;

TEST(DefaultExperimentNameTest, IsTheSanitizedFolderName) {
  EXPECT_EQ(DefaultExperimentName("/home/me/my project (v2)"), "my_project__v2_");
  EXPECT_EQ(DefaultExperimentName("/home/me/mnist-1.0/"), "mnist-1.0");
  EXPECT_EQ(DefaultExperimentName("/"), "default");
  EXPECT_EQ(DefaultExperimentName(std::string(200, 'a')).size(), 128u);
}

TEST(DefaultExperimentNameTest, DotIsTheCurrentFolder) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("exp_name_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path old = fs::current_path();
  fs::current_path(dir);
  EXPECT_EQ(DefaultExperimentName("."), dir.filename().string());
  fs::current_path(old);
  fs::remove_all(dir);
}

TEST(ParseKeyValueTest, SplitsAtTheFirstEquals) {
  auto kv = ParseKeyValue("--env", "A=b=c");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "A");
  EXPECT_EQ(kv->second, "b=c");
  kv = ParseKeyValue("--tag", "empty=");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->second, "");
}

TEST(ParseKeyValueTest, RefusesMissingKeyOrEquals) {
  for (const char* bad : {"novalue", "=x", ""}) {
    auto kv = ParseKeyValue("--tag", bad);
    ASSERT_FALSE(kv.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(kv.status()));
    EXPECT_NE(kv.status().message().find("--tag expects KEY=VALUE"), std::string::npos);
  }
}

TEST(NormalizeScriptPathTest, Normalizes) {
  EXPECT_EQ(*NormalizeScriptPath("./src//train.py"), "src/train.py");
  EXPECT_EQ(*NormalizeScriptPath("a/../b.py"), "b.py");
  EXPECT_FALSE(NormalizeScriptPath("/abs/train.py").ok());
  EXPECT_FALSE(NormalizeScriptPath("../train.py").ok());
  EXPECT_FALSE(NormalizeScriptPath("a/../../train.py").ok());
  EXPECT_FALSE(NormalizeScriptPath(".").ok());
  EXPECT_FALSE(NormalizeScriptPath("").ok());
}

TEST(BuildRunConfigTest, ScriptRunWithEverything) {
  SubmitSpec spec;
  spec.experiment = "mnist";
  spec.script = "./train.py";
  spec.arguments = {"--epochs", "3"};
  spec.compute_target = "local";
  spec.interpreter = "/usr/bin/python3";
  spec.max_duration_seconds = 60;
  spec.tags = {"lr=0.1", "team=vision"};
  spec.env = {"SEED=1"};
  auto config = BuildRunConfig(spec);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->experiment_name(), "mnist");
  EXPECT_EQ(config->script(), "train.py");
  EXPECT_EQ(config->command(), "");
  ASSERT_EQ(config->arguments_size(), 2);
  EXPECT_EQ(config->arguments(1), "3");
  EXPECT_EQ(config->compute_target(), "local");
  EXPECT_EQ(config->max_run_duration_seconds(), 60);
  EXPECT_EQ(config->tags().at("team"), "vision");
  EXPECT_TRUE(config->environment().user_managed_dependencies());
  EXPECT_EQ(config->environment().interpreter_path(), "/usr/bin/python3");
  EXPECT_EQ(config->environment().environment_variables().at("SEED"), "1");
}

TEST(BuildRunConfigTest, CommandRunWithDefaults) {
  SubmitSpec spec;
  spec.source_dir = "/work/projects/cifar";
  spec.command = "python3 train.py";
  auto config = BuildRunConfig(spec);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->experiment_name(), "cifar");
  EXPECT_EQ(config->command(), "python3 train.py");
  EXPECT_FALSE(config->has_environment());
  EXPECT_EQ(config->max_run_duration_seconds(), 0);
}

TEST(BuildRunConfigTest, PriorityAndResources) {
  SubmitSpec spec;
  spec.script = "train.py";
  auto plain = BuildRunConfig(spec);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->priority(), 0);
  EXPECT_FALSE(plain->has_resources());  // the daemon's default: 1 CPU slot, no GPU
  spec.priority = -7;
  spec.gpus = 2;
  auto asking = BuildRunConfig(spec);
  ASSERT_TRUE(asking.ok()) << asking.status();
  EXPECT_EQ(asking->priority(), -7);
  EXPECT_EQ(asking->resources().cpus(), 0);
  EXPECT_EQ(asking->resources().gpus(), 2);
  for (int bad : {101, -101}) {
    SubmitSpec s = spec;
    s.priority = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(s).status())) << bad;
  }
  SubmitSpec negative = spec;
  negative.cpus = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(negative).status()));
  // --gpus 0 asks for no GPU: it is sent, so amld.yaml's default_gpus does not apply.
  SubmitSpec none;
  none.script = "train.py";
  none.gpus = 0;
  auto no_gpu = BuildRunConfig(none);
  ASSERT_TRUE(no_gpu.ok()) << no_gpu.status();
  ASSERT_TRUE(no_gpu->has_resources());
  EXPECT_EQ(no_gpu->resources().gpus(), 0);
}

TEST(BuildRunConfigTest, UsageErrors) {
  SubmitSpec neither;
  EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(neither).status()));
  SubmitSpec both;
  both.script = "a.py";
  both.command = "b";
  EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(both).status()));
  SubmitSpec negative;
  negative.script = "a.py";
  negative.max_duration_seconds = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(negative).status()));
  SubmitSpec bad_tag;
  bad_tag.script = "a.py";
  bad_tag.tags = {"x"};
  EXPECT_TRUE(absl::IsInvalidArgument(BuildRunConfig(bad_tag).status()));
}

}  // namespace
}  // namespace amld::client
