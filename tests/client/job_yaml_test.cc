// Azure ML command job YAML (client/commands/job_yaml.h) and the shared
// reader pieces (yaml_reader.h): what maps to which RunConfig field, and
// errors at the right line.
#include "client/commands/job_yaml.h"

#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/match.h"
#include "tests/testing/test_util.h"

namespace amld::client::commands {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<JobFile> Parse(const std::string& text) {
  return ParseCommandJob(text, "/work/jobs/job.yml");
}

TEST(JobYamlTest, TheSeedsFieldsMapToTheRunConfig) {
  auto job = Parse(R"(type: command
experiment_name: train
display_name: first
compute: azureml:cluster
tags: {team: vision}
code: ./src
command: >-
  python train.py --epochs 3
environment_variables:
  MODE: fast
environment: azureml:train-env:2
distribution:
  type: pytorch
  process_count_per_instance: 2
resources:
  instance_count: 2
  gpus: 1
limits:
  timeout: 3600
)");
  ASSERT_TRUE(job.ok()) << job.status();
  const auto& c = job->config;
  EXPECT_EQ(c.experiment_name(), "train");
  EXPECT_EQ(c.display_name(), "first");
  EXPECT_EQ(c.compute_target(), "cluster");
  EXPECT_EQ(c.tags().at("team"), "vision");
  EXPECT_EQ(c.command(), "python train.py --epochs 3");
  EXPECT_EQ(c.environment().environment_variables().at("MODE"), "fast");
  EXPECT_EQ(c.distributed().pytorch().process_count(), 4);
  EXPECT_EQ(c.distributed().pytorch().node_count(), 2);
  EXPECT_EQ(c.resources().gpus(), 1);
  EXPECT_EQ(c.max_run_duration_seconds(), 3600);
  EXPECT_EQ(job->code, fs::path("/work/jobs/./src"));
  ASSERT_TRUE(job->environment_ref.has_value());
  EXPECT_EQ(job->environment_ref->name, "train-env");
  EXPECT_EQ(job->environment_ref->version, "2");
}

TEST(JobYamlTest, DefaultsAndOtherDistributions) {
  auto job = Parse("command: python3 a.py\ndistribution: {type: mpi, "
                   "process_count_per_instance: 3}\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.experiment_name(), "jobs");  // the YAML file's folder
  EXPECT_EQ(job->config.compute_target(), "");
  EXPECT_EQ(job->config.distributed().mpi().process_count_per_node(), 3);
  EXPECT_EQ(job->config.distributed().mpi().node_count(), 1);
  job = Parse("command: x\ndistribution: {type: tensorflow, worker_count: 2, "
              "parameter_server_count: 1}\nenvironment: azureml:base@latest\ncompute: local\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.distributed().tensorflow().worker_count(), 2);
  EXPECT_EQ(job->config.distributed().tensorflow().parameter_server_count(), 1);
  EXPECT_EQ(job->environment_ref->name, "base");
  EXPECT_EQ(job->environment_ref->version, "");
  EXPECT_EQ(job->config.compute_target(), "");
}

TEST(JobYamlTest, ErrorsSayFileLineAndWhatToDo) {
  auto expect_error = [](const std::string& text, const std::string& part) {
    auto job = Parse(text);
    ASSERT_FALSE(job.ok()) << text;
    EXPECT_TRUE(absl::StrContains(job.status().message(), part)) << job.status();
  };
  expect_error("command: x\nresources:\n  gpu_count: 1\n", "/work/jobs/job.yml:3:3: ");
  expect_error("command: x\nresources:\n  gpu_count: 1\n", "instance_count");  // the known keys
  expect_error("command: x\ncommand: y\n", "job.yml:2:1");
  expect_error("code: .\n", "command is required");
  expect_error("type: sweep\ncommand: x\n", "aml sweep submit -f");
  expect_error("command: x\nresources: {instance_count: 2}\n", "needs a distribution");
  expect_error("command: x\ndistribution: {type: horovod}\n", "not one of pytorch, mpi");
  expect_error("command: x\ndistribution: {type: pytorch}\n", "process_count_per_instance");
  expect_error("command: x\nresources: {instance_type: Standard_NC6}\n", "resources.cpus");
  expect_error("command: x\ninputs: {data: ./d}\n", "inputs are not supported");
  expect_error("command: x\nenvironment: {image: python:3.11}\n", "runs no containers");
  expect_error("command: [x\n", "job.yml:2:1: end of sequence");
  expect_error("command: x\nlimits: {timeout: 0}\n", "limits.timeout must be at least 1");
}

TEST(JobYamlTest, AnInlineCondaFileFillsTheManagedEnvironmentAsTheSdkDoes) {
  fs::path dir = amld::testing::MakeTempDir("job-yaml-");
  std::ofstream(dir / "conda.yml") << R"(name: e
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - pip:
    - torch==1.13.1
    - --find-links /wheels
)";
  auto job = ParseCommandJob("command: x\nenvironment:\n  conda_file: conda.yml\n",
                             dir / "job.yml");
  ASSERT_TRUE(job.ok()) << job.status();
  const auto& env = job->config.environment();
  EXPECT_EQ(env.name(), "job-environment");
  EXPECT_EQ(std::vector<std::string>(env.conda_packages().begin(), env.conda_packages().end()),
            (std::vector<std::string>{"python=3.11", "pip"}));
  EXPECT_EQ(std::vector<std::string>(env.conda_channels().begin(), env.conda_channels().end()),
            (std::vector<std::string>{"conda-forge"}));
  // Options first, as amld.core's CondaDependencies orders them.
  EXPECT_EQ(std::vector<std::string>(env.pip_requirements().begin(),
                                     env.pip_requirements().end()),
            (std::vector<std::string>{"--find-links /wheels", "torch==1.13.1"}));
  EXPECT_FALSE(job->environment_ref.has_value());
  auto missing = ParseCommandJob("command: x\nenvironment: {conda_file: nope.yml}\n",
                                 dir / "job.yml");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace amld::client::commands
