#include "client/commands/job_yaml.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

// distribution: {type, process_count_per_instance | worker_count,
// parameter_server_count}; the node count comes from resources.
struct Distribution {
  std::string type;
  int64_t per_instance = 0, workers = 0, parameter_servers = 0;
  YAML::Node at;
};

absl::Status ApplyDistribution(const YamlReader& r, const Distribution& d, int64_t instances,
                               pb::RunConfig& c) {
  const std::string type = absl::AsciiStrToLower(d.type);
  if (type == "pytorch" || type == "mpi") {
    if (d.per_instance < 1) {
      return r.Error(d.at, "distribution.process_count_per_instance is required for " + type);
    }
    if (type == "pytorch") {
      pb::PyTorchConfiguration* p = c.mutable_distributed()->mutable_pytorch();
      p->set_process_count(static_cast<int32_t>(d.per_instance * instances));
      p->set_node_count(static_cast<int32_t>(instances));
    } else {
      pb::MpiConfiguration* m = c.mutable_distributed()->mutable_mpi();
      m->set_process_count_per_node(static_cast<int32_t>(d.per_instance));
      m->set_node_count(static_cast<int32_t>(instances));
    }
    return absl::OkStatus();
  }
  if (type == "tensorflow") {
    if (d.workers < 1) return r.Error(d.at, "distribution.worker_count is required for tensorflow");
    pb::TensorflowConfiguration* t = c.mutable_distributed()->mutable_tensorflow();
    t->set_worker_count(static_cast<int32_t>(d.workers));
    t->set_parameter_server_count(static_cast<int32_t>(d.parameter_servers));
    return absl::OkStatus();
  }
  return r.Error(d.at, absl::StrCat("distribution.type \"", d.type,
                                    "\" is not one of pytorch, mpi, tensorflow"));
}

}  // namespace

absl::StatusOr<JobFile> ParseCommandJob(const std::string& text,
                                           const std::filesystem::path& file) {
  YamlReader r(file);
  AMLD_ASSIGN_OR_RETURN(YAML::Node root, r.Load(text));
  JobFile job;
  pb::RunConfig& c = job.config;
  JobHeader header;
  CommandSection command;
  std::optional<Distribution> distribution;
  int64_t instances = 1;
  bool has_instances = false;
  std::map<std::string, YamlHandler> top;
  AddJobHeaderKeys(r, c, header, top);
  AddCommandKeys(r, "", c, command, top);
  top["distribution"] = [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
    Distribution d;
    d.at = v;
    auto count = [&r](int64_t* out, const std::string& name, int64_t min) {
      return [&r, out, name, min](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
        AMLD_ASSIGN_OR_RETURN(*out, r.Integer(k2, v2, "distribution." + name, min));
        return absl::OkStatus();
      };
    };
    AMLD_RETURN_IF_ERROR(r.ForEachKey(
        k, v, "distribution.",
        {{"type", r.TextInto(&d.type, "distribution.type")},
         {"process_count_per_instance", count(&d.per_instance, "process_count_per_instance", 1)},
         {"worker_count", count(&d.workers, "worker_count", 1)},
         {"parameter_server_count", count(&d.parameter_servers, "parameter_server_count", 0)}}));
    distribution = d;
    return absl::OkStatus();
  };
  top["resources"] = [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
    auto count = [&r](const std::string& name, std::function<void(int64_t)> set, int64_t min) {
      return [&r, name, set, min](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
        AMLD_ASSIGN_OR_RETURN(int64_t n, r.Integer(k2, v2, "resources." + name, min));
        set(n);
        return absl::OkStatus();
      };
    };
    return r.ForEachKey(
        k, v, "resources.",
        {{"instance_count", count("instance_count",
                                  [&](int64_t n) {
                                    instances = n;
                                    has_instances = true;
                                  },
                                  1)},
         {"cpus", count("cpus",
                        [&](int64_t n) {
                          c.mutable_resources()->set_cpus(static_cast<int32_t>(n));
                        },
                        1)},
         {"gpus", count("gpus",
                        [&](int64_t n) {
                          c.mutable_resources()->set_gpus(static_cast<int32_t>(n));
                        },
                        0)},
         {"instance_type", [&r](const YAML::Node& k2, const YAML::Node&) {
            return r.Error(k2, "amld has no instance types: ask for resources.cpus and "
                               "resources.gpus, or pick the compute target that has them");
          }}});
  };
  top["limits"] = [&](const YAML::Node& k, const YAML::Node& v) {
    return r.ForEachKey(k, v, "limits.",
                        {{"timeout", [&](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
                            AMLD_ASSIGN_OR_RETURN(int64_t s, r.Integer(k2, v2, "limits.timeout", 1));
                            c.set_max_run_duration_seconds(s);
                            return absl::OkStatus();
                          }}});
  };
  AMLD_RETURN_IF_ERROR(r.ForEachKey(root, root, "", top));
  if (!header.type.empty() && header.type != "command") {
    return r.Error(root, absl::StrCat("type \"", header.type, "\" is not a command job",
                                      header.type == "sweep" ? ": submit it with aml sweep submit -f"
                                                             : ""));
  }
  if (c.command().empty()) return r.Error(root, "command is required");
  if (distribution) {
    AMLD_RETURN_IF_ERROR(ApplyDistribution(r, *distribution, instances, c));
  } else if (has_instances && instances > 1) {
    return r.Error(root, "resources.instance_count above 1 needs a distribution (pytorch, mpi "
                         "or tensorflow) saying what runs on each node");
  }
  job.code = r.Resolve(command.code);
  if (c.experiment_name().empty()) {
    std::error_code ec;
    std::filesystem::path folder = std::filesystem::absolute(file, ec).parent_path().filename();
    c.set_experiment_name(folder.empty() ? "default" : folder.string());
  }
  job.environment_ref = command.environment_ref;
  return job;
}

}  // namespace amld::client::commands
