#include "client/commands/sweep_yaml.h"

#include <yaml-cpp/yaml.h>


#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

// The numeric arguments of each search space type, in the proto's order.
const std::map<std::string, std::vector<std::string>>& Distributions() {
  static const auto* d = new std::map<std::string, std::vector<std::string>>{
      {"choice", {}},
      {"randint", {"upper"}},
      {"uniform", {"min_value", "max_value"}},
      {"quniform", {"min_value", "max_value", "q"}},
      {"loguniform", {"min_value", "max_value"}},
      {"qloguniform", {"min_value", "max_value", "q"}},
      {"normal", {"mu", "sigma"}},
      {"qnormal", {"mu", "sigma", "q"}},
      {"lognormal", {"mu", "sigma"}},
      {"qlognormal", {"mu", "sigma", "q"}},
  };
  return *d;
}

absl::Status ReadParameter(const YamlReader& r, const YAML::Node& key, const YAML::Node& value,
                         pb::ParameterExpression* p) {
  const std::string name = "search_space." + key.Scalar();
  if (!value.IsMap() || !value["type"]) {
    return r.Error(value.IsNull() ? key : value,
                 name + " must be a mapping with a type, e.g. {type: uniform, min_value: 0, "
                        "max_value: 1}");
  }
  AMLD_ASSIGN_OR_RETURN(std::string type, r.Text(key, value["type"], name + ".type"));
  auto dist = Distributions().find(type);
  if (dist == Distributions().end()) {
    std::vector<std::string> known;
    for (const auto& [k, _] : Distributions()) known.push_back(k);
    return r.Error(value["type"], absl::StrCat("unknown type \"", type, "\" of ", name,
                                             "; use one of ", absl::StrJoin(known, ", ")));
  }
  p->set_distribution(type);
  std::map<std::string, double> args;
  std::map<std::string, YamlHandler> handlers = {
      {"type", [](const YAML::Node&, const YAML::Node&) { return absl::OkStatus(); }}};
  if (type == "choice") {
    handlers["values"] = [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
      if (!v.IsSequence() || v.size() == 0) {
        return r.Error(v.IsNull() ? k : v, name + ".values must be a non-empty list");
      }
      for (const YAML::Node& option : v) {
        if (!option.IsScalar()) return r.Error(option, name + ".values holds plain values");
        double d = 0;
        if (absl::SimpleAtod(option.Scalar(), &d) && std::isfinite(d) &&
            option.Tag() != "!") {  // a quoted scalar stays a text
          p->add_choices()->set_number(d);
        } else {
          p->add_choices()->set_text(option.Scalar());
        }
      }
      return absl::OkStatus();
    };
  }
  for (const std::string& arg : dist->second) {
    handlers[arg] = [&, arg](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
      AMLD_ASSIGN_OR_RETURN(args[arg], r.Number(k, v, name + "." + arg));
      return absl::OkStatus();
    };
  }
  AMLD_RETURN_IF_ERROR(r.ForEachKey(key, value, name + ".", handlers));
  for (const std::string& arg : dist->second) {
    if (!args.contains(arg)) return r.Error(value, absl::StrCat(name, " needs ", arg));
    p->add_args(args[arg]);
  }
  if (type == "choice" && p->choices_size() == 0) return r.Error(value, name + " needs values");
  return absl::OkStatus();
}

std::string Lower(std::string s) { return absl::AsciiStrToLower(s); }

}  // namespace

absl::StatusOr<JobFile> ParseSweepJob(const std::string& text, const std::filesystem::path& file) {
  YamlReader r(file);
  AMLD_ASSIGN_OR_RETURN(YAML::Node root, r.Load(text));
  JobFile job;
  pb::RunConfig& c = job.config;
  pb::SweepSpec& s = *c.mutable_sweep();
  bool has_trial = false, has_objective = false, has_space = false, has_sampling = false;
  CommandSection trial;
  auto text_into = [&r](std::string* out, const std::string& name) {
    return r.TextInto(out, name);
  };
  JobHeader header;
  std::map<std::string, YamlHandler> top;
  AddJobHeaderKeys(r, c, header, top);
  top["trial"] = [&](const YAML::Node& k, const YAML::Node& v) {
    has_trial = true;
    std::map<std::string, YamlHandler> keys;
    AddCommandKeys(r, "trial.", c, trial, keys);
    return r.ForEachKey(k, v, "trial.", keys);
  };
  top.insert({
      {"search_space",
       [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
         has_space = true;
         if (!v.IsMap()) return r.Error(v.IsNull() ? k : v, "search_space must be a mapping");
         for (const auto& e : v) {
           pb::ParameterExpression* p = s.add_parameters();
           p->set_name(e.first.Scalar());
           AMLD_RETURN_IF_ERROR(ReadParameter(r, e.first, e.second, p));
         }
         return absl::OkStatus();
       }},
      {"sampling_algorithm",
       [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
         has_sampling = true;
         std::string algorithm;
         if (v.IsScalar()) {
           algorithm = v.Scalar();
         } else {
           AMLD_RETURN_IF_ERROR(r.ForEachKey(
               k, v, "sampling_algorithm.",
               {{"type", text_into(&algorithm, "sampling_algorithm.type")},
                {"seed", [&](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
                   AMLD_ASSIGN_OR_RETURN(int64_t seed,
                                         r.Integer(k2, v2, "sampling_algorithm.seed", 0));
                   s.set_seed(static_cast<uint64_t>(seed));
                   return absl::OkStatus();
                 }}}));
         }
         algorithm = Lower(algorithm);
         if (algorithm == "random") {
           s.set_sampling(pb::SamplingAlgorithm::RANDOM);
         } else if (algorithm == "grid") {
           s.set_sampling(pb::SamplingAlgorithm::GRID);
         } else if (algorithm == "bayesian") {
           s.set_sampling(pb::SamplingAlgorithm::BAYESIAN);
         } else {
           return r.Error(v, absl::StrCat("sampling_algorithm \"", algorithm,
                                          "\" is not one of random, grid, bayesian"));
         }
         return absl::OkStatus();
       }},
      {"objective",
       [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
         has_objective = true;
         std::string goal;
         AMLD_RETURN_IF_ERROR(r.ForEachKey(
             k, v, "objective.",
             {{"goal", text_into(&goal, "objective.goal")},
              {"primary_metric", text_into(s.mutable_primary_metric_name(),
                                           "objective.primary_metric")}}));
         goal = Lower(goal);
         if (goal == "maximize") {
           s.set_primary_metric_goal(pb::PrimaryMetricGoal::MAXIMIZE);
         } else if (goal == "minimize") {
           s.set_primary_metric_goal(pb::PrimaryMetricGoal::MINIMIZE);
         } else {
           return r.Error(v, "objective.goal must be maximize or minimize");
         }
         if (s.primary_metric_name().empty()) {
           return r.Error(v, "objective.primary_metric names the metric the script logs");
         }
         return absl::OkStatus();
       }},
      {"limits",
       [&](const YAML::Node& k, const YAML::Node& v) {
         auto integer = [&](const std::string& name, std::function<void(int64_t)> set) {
           return [&r, name, set](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
             AMLD_ASSIGN_OR_RETURN(int64_t n, r.Integer(k2, v2, "limits." + name, 1));
             set(n);
             return absl::OkStatus();
           };
         };
         return r.ForEachKey(
             k, v, "limits.",
             {{"max_total_trials",
               integer("max_total_trials", [&](int64_t n) { s.set_max_total_runs(n); })},
              {"max_concurrent_trials",
               integer("max_concurrent_trials", [&](int64_t n) { s.set_max_concurrent_runs(n); })},
              {"timeout", integer("timeout", [&](int64_t n) {
                 s.set_max_duration_minutes((n + 59) / 60);
               })},
              {"trial_timeout",
               integer("trial_timeout", [&](int64_t n) { c.set_max_run_duration_seconds(n); })}});
       }},
      {"early_termination",
       [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
         std::string policy;
         double slack_factor = 0, slack_amount = 0;
         int64_t interval = 0, delay = 0, percentage = 0;
         auto number = [&](double* out, const std::string& name) {
           return [&r, out, name](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
             AMLD_ASSIGN_OR_RETURN(*out, r.Number(k2, v2, "early_termination." + name));
             return absl::OkStatus();
           };
         };
         auto integer = [&](int64_t* out, const std::string& name) {
           return [&r, out, name](const YAML::Node& k2, const YAML::Node& v2) -> absl::Status {
             AMLD_ASSIGN_OR_RETURN(*out, r.Integer(k2, v2, "early_termination." + name, 0));
             return absl::OkStatus();
           };
         };
         AMLD_RETURN_IF_ERROR(r.ForEachKey(
             k, v, "early_termination.",
             {{"type", text_into(&policy, "early_termination.type")},
              {"slack_factor", number(&slack_factor, "slack_factor")},
              {"slack_amount", number(&slack_amount, "slack_amount")},
              {"evaluation_interval", integer(&interval, "evaluation_interval")},
              {"delay_evaluation", integer(&delay, "delay_evaluation")},
              {"truncation_percentage", integer(&percentage, "truncation_percentage")}}));
         policy = Lower(policy);
         pb::EarlyTerminationPolicy* p = s.mutable_policy();
         if (policy == "bandit") {
           p->mutable_bandit()->set_slack_factor(slack_factor);
           p->mutable_bandit()->set_slack_amount(slack_amount);
           p->mutable_bandit()->set_evaluation_interval(interval);
           p->mutable_bandit()->set_delay_evaluation(delay);
         } else if (policy == "median_stopping") {
           p->mutable_median_stopping()->set_evaluation_interval(interval);
           p->mutable_median_stopping()->set_delay_evaluation(delay);
         } else if (policy == "truncation_selection") {
           p->mutable_truncation_selection()->set_truncation_percentage(percentage);
           p->mutable_truncation_selection()->set_evaluation_interval(interval);
           p->mutable_truncation_selection()->set_delay_evaluation(delay);
         } else {
           return r.Error(v, absl::StrCat("early_termination.type \"", policy,
                                          "\" is not one of bandit, median_stopping, "
                                          "truncation_selection"));
         }
         return absl::OkStatus();
       }},
  });
  AMLD_RETURN_IF_ERROR(r.ForEachKey(root, root, "", top));
  if (header.type != "sweep") {
    return r.Error(root, absl::StrCat("type must be sweep, got \"", header.type, "\""));
  }
  for (auto [present, what] : {std::pair{has_trial, "trial (code and command)"},
                               std::pair{has_space, "search_space"},
                               std::pair{has_sampling, "sampling_algorithm"},
                               std::pair{has_objective, "objective"}}) {
    if (!present) return r.Error(root, absl::StrCat("a sweep job needs ", what));
  }
  if (c.command().empty()) return r.Error(root, "trial.command is required");
  if (c.experiment_name().empty()) return r.Error(root, "experiment_name is required");
  job.code = r.Resolve(trial.code);
  job.environment_ref = trial.environment_ref;
  return job;
}

}  // namespace amld::client::commands
