// Reading an Azure ML command job YAML (`aml run submit -f job.yml`) into a
// RunConfig. The shape is Azure ML's:
//
//   $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
//   type: command                       (optional; "command" if given)
//   experiment_name: train              (default: the YAML file's folder name)
//   display_name: first try             (optional)
//   compute: azureml:cluster            ("local" or absent: this machine)
//   tags: {k: v}
//   code: ./src                         (relative to the YAML file; default .)
//   command: python3 train.py --lr 0.1
//   environment_variables: {K: V}
//   environment: azureml:NAME:VERSION   (or azureml:NAME@latest, or inline
//                                        {conda_file: conda.yml})
//   distribution:                       (optional)
//     type: pytorch                     (process_count_per_instance)
//     type: mpi                         (process_count_per_instance)
//     type: tensorflow                  (worker_count, parameter_server_count)
//   resources:
//     instance_count: 2                 (nodes of a distributed job)
//     cpus: 4, gpus: 1                  (amld's: slots and GPUs of the run)
//   limits: {timeout: 3600}             (seconds)
//
// An unknown key, a wrong type or a missing required key is an error
// "FILE:LINE:COLUMN: what is wrong"; what amld cannot do (images, inputs,
// instance_type) is refused by name.
//
// Thread-safety: pure functions.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/commands/yaml_reader.h"

namespace amld::client::commands {

absl::StatusOr<JobFile> ParseCommandJob(const std::string& text,
                                           const std::filesystem::path& file);

}  // namespace amld::client::commands
