// Reading an Azure ML sweep job YAML (`aml sweep submit -f sweep.yml`) into
// the RunConfig of a sweep's parent (proto amld/v1/sweep.proto). The shape
// is Azure ML's:
//
//   type: sweep
//   experiment_name: tune
//   display_name: lr sweep            (optional)
//   compute: local                    ("azureml:NAME" is read as NAME)
//   tags: {k: v}                      (optional)
//   trial:
//     code: ./src                     (relative to the YAML file)
//     command: python train.py --lr ${{search_space.lr}}
//     environment_variables: {K: V}   (optional)
//     environment: azureml:NAME:VERSION  (optional; or {conda_file: env.yml})
//   search_space:
//     lr: {type: loguniform, min_value: -9, max_value: -2}
//     batch: {type: choice, values: [16, 32]}
//   sampling_algorithm: random        (or grid, bayesian, {type: random, seed: 7})
//   objective: {goal: minimize, primary_metric: loss}
//   limits: {max_total_trials: 12, max_concurrent_trials: 2, timeout: 3600,
//            trial_timeout: 600}     (seconds)
//   early_termination: {type: bandit, slack_factor: 0.1,
//                       evaluation_interval: 1, delay_evaluation: 3}
//
// An unknown key, a wrong type or a missing required key is an error
// "FILE:LINE:COLUMN: what is wrong". What amld cannot do (an image,
// inputs) is refused by name. The command's
// ${{search_space.NAME}} references are replaced per child by the daemon
// (daemon/sweeps/parameter_space.h).
//
// Thread-safety: pure functions.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/commands/yaml_reader.h"

namespace amld::client::commands {


// Parses `text`, read from `file` (named in errors; trial.code is relative
// to its folder). INVALID_ARGUMENT with file:line:column when the YAML is
// not a sweep job amld can run.
absl::StatusOr<JobFile> ParseSweepJob(const std::string& text, const std::filesystem::path& file);

}  // namespace amld::client::commands
