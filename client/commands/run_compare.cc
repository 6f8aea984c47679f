#include "client/commands/run_compare.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/shell_quote.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

using amld::v1::Run;
using amld::v1::RunConfig;

// A row of `values`; differs when two of them do.
CompareRow RowOf(std::string label, std::vector<std::string> values) {
  CompareRow row{std::move(label), std::move(values), false};
  row.differs = std::adjacent_find(row.values.begin(), row.values.end(),
                                   std::not_equal_to<>()) != row.values.end();
  return row;
}

// The row of `label` with `text` of each run.
CompareRow MakeRow(std::string label, const std::vector<Run>& runs,
                   const std::function<std::string(const Run&)>& text) {
  std::vector<std::string> values;
  for (const Run& r : runs) values.push_back(text(r));
  return RowOf(std::move(label), std::move(values));
}

template <typename Map>
std::string JoinSorted(const Map& m) {
  std::vector<std::string> items;
  for (const auto& [k, v] : m) items.push_back(absl::StrCat(k, "=", v));
  std::sort(items.begin(), items.end());
  return absl::StrJoin(items, " ");
}

std::string ArgumentsText(const RunConfig& c) {
  std::vector<std::string> quoted;
  for (const std::string& a : c.arguments()) quoted.push_back(amld::base::ShellQuote(a));
  return absl::StrJoin(quoted, " ");
}

std::string EnvironmentName(const RunConfig& c) {
  const amld::v1::Environment& e = c.environment();
  if (!e.name().empty()) return e.version().empty() ? e.name() : e.name() + ":" + e.version();
  if (!e.digest().empty()) return "managed " + e.digest().substr(0, 12);
  return "user-managed";
}

std::string PackagesText(const RunConfig& c) {
  std::vector<std::string> all(c.environment().pip_requirements().begin(),
                               c.environment().pip_requirements().end());
  all.insert(all.end(), c.environment().conda_packages().begin(),
             c.environment().conda_packages().end());
  return absl::StrJoin(all, " ");
}

std::string DistributionText(const RunConfig& c) {
  const amld::v1::DistributedConfig& d = c.distributed();
  switch (d.config_case()) {
    case amld::v1::DistributedConfig::kMpi:
      return absl::StrCat("mpi, ", d.mpi().process_count_per_node(), " per node on ",
                          d.mpi().node_count(), " nodes");
    case amld::v1::DistributedConfig::kPytorch:
      return absl::StrCat(
          "pytorch (",
          d.pytorch().communication_backend().empty() ? "nccl"
                                                      : d.pytorch().communication_backend(),
          "), ", d.pytorch().process_count(), " processes on ", d.pytorch().node_count(),
          " nodes");
    case amld::v1::DistributedConfig::kTensorflow:
      return absl::StrCat("tensorflow, ", d.tensorflow().worker_count(), " workers, ",
                          d.tensorflow().parameter_server_count(), " parameter servers");
    case amld::v1::DistributedConfig::CONFIG_NOT_SET:
      break;
  }
  return "one process";
}

std::string GitText(const amld::v1::GitInfo& g) {
  if (g.commit().empty()) return "-";
  return absl::StrCat(g.branch().empty() ? "" : g.branch() + " ", g.commit().substr(0, 12),
                      g.dirty() ? " (dirty)" : "");
}

std::string StatusText(const Run& r) {
  const std::string exit = ExitStatusText(r);
  if (r.status() == amld::v1::RunStatus::COMPLETED || exit.empty()) return StatusName(r.status());
  return absl::StrCat(StatusName(r.status()), " (", exit, ")");
}

}  // namespace

std::vector<CompareRow> OutcomeRows(const std::vector<Run>& runs) {
  return {MakeRow("status", runs, StatusText), MakeRow("run time", runs,
                                                       [](const Run& r) {
                                                         const absl::Duration d = RunDuration(r);
                                                         return d > absl::ZeroDuration()
                                                                    ? HumanDuration(d)
                                                                    : std::string("-");
                                                       }),
          MakeRow("submitted", runs,
                  [](const Run& r) { return FormatTimestamp(r.created_time()); })};
}

std::vector<CompareRow> ConfigRows(const std::vector<Run>& runs) {
  using Text = std::function<std::string(const RunConfig&)>;
  const std::vector<std::pair<std::string, Text>> fields = {
      {"experiment", [](const RunConfig& c) { return c.experiment_name(); }},
      {"name", [](const RunConfig& c) { return c.display_name(); }},
      {"script", [](const RunConfig& c) { return c.script(); }},
      {"command", [](const RunConfig& c) { return c.command(); }},
      {"arguments", ArgumentsText},
      {"compute",
       [](const RunConfig& c) { return IsLocalTarget(c) ? "local" : c.compute_target(); }},
      {"environment", EnvironmentName},
      {"interpreter",
       [](const RunConfig& c) { return c.command().empty() ? InterpreterText(c) : ""; }},
      {"env", [](const RunConfig& c) { return JoinSorted(c.environment().environment_variables()); }},
      {"packages", PackagesText},
      {"distribution", DistributionText},
      {"resources",
       [](const RunConfig& c) {
         const int cpus = c.resources().cpus() > 0 ? c.resources().cpus() : 1;
         return absl::StrCat(cpus, cpus == 1 ? " CPU slot, " : " CPU slots, ",
                             c.resources().gpus(), c.resources().gpus() == 1 ? " GPU" : " GPUs");
       }},
      {"priority", [](const RunConfig& c) { return std::to_string(c.priority()); }},
      {"max duration",
       [](const RunConfig& c) {
         return c.max_run_duration_seconds() > 0
                    ? HumanDuration(absl::Seconds(c.max_run_duration_seconds()))
                    : std::string("none");
       }},
      {"snapshot",
       [](const RunConfig& c) {
         return c.snapshot_root().hash().empty() ? "-" : c.snapshot_root().hash().substr(0, 12);
       }},
      {"git", [](const RunConfig& c) { return GitText(c.git()); }},
  };
  std::vector<CompareRow> rows;
  for (const auto& [label, text] : fields) {
    CompareRow row = MakeRow(label, runs, [&text](const Run& r) { return text(r.config()); });
    // A field no run has (a command among script runs) says nothing.
    if (std::all_of(row.values.begin(), row.values.end(),
                    [](const std::string& v) { return v.empty(); })) {
      continue;
    }
    for (std::string& v : row.values) {
      if (v.empty()) v = "-";
    }
    rows.push_back(std::move(row));
  }
  // Tags as they are now (a run's tags change after submit), a row per key.
  std::set<std::string> keys;
  for (const Run& r : runs) {
    for (const auto& [k, v] : r.tags()) keys.insert(k);
  }
  for (const std::string& key : keys) {
    rows.push_back(MakeRow("tag " + key, runs, [&key](const Run& r) {
      auto it = r.tags().find(key);
      return it == r.tags().end() ? std::string("-") : it->second;
    }));
  }
  return rows;
}

std::vector<CompareRow> MetricRows(const std::vector<std::vector<MetricSummary>>& per_run) {
  // name → each run's summary of it (null: the run has none).
  std::map<std::string, std::vector<const MetricSummary*>> by_name;
  for (size_t i = 0; i < per_run.size(); ++i) {
    for (const MetricSummary& s : per_run[i]) {
      std::vector<const MetricSummary*>& of = by_name[s.name];
      of.resize(per_run.size(), nullptr);
      of[i] = &s;
    }
  }
  std::vector<CompareRow> rows;
  auto add = [&rows](std::string label, std::vector<std::string> values) {
    rows.push_back(RowOf(std::move(label), std::move(values)));
  };
  for (auto& [name, of] : by_name) {
    of.resize(per_run.size(), nullptr);
    std::vector<std::string> last, min, max;
    bool numeric = false;
    for (const MetricSummary* s : of) {
      if (s == nullptr) {
        for (auto* v : {&last, &min, &max}) v->push_back("-");
        continue;
      }
      const amld::v1::Metric& m = *s->values.back();
      last.push_back(absl::StrCat(FormatMetricValue(m), " (step ", m.step(), ")"));
      min.push_back(s->min ? FormatMetricNumber(*s->min) : "-");
      max.push_back(s->max ? FormatMetricNumber(*s->max) : "-");
      numeric = numeric || s->min.has_value();
    }
    add(name + " last", std::move(last));
    if (numeric) {
      add(name + " min", std::move(min));
      add(name + " max", std::move(max));
    }
  }
  return rows;
}

namespace {

struct CompareOptions {
  RunRefs runs;
  bool all = false;
};

nlohmann::json RowsJson(const std::vector<CompareRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const CompareRow& r : rows) {
    out.push_back({{"field", r.label}, {"values", r.values}, {"differs", r.differs}});
  }
  return out;
}

nlohmann::json MetricsJson(const std::vector<std::vector<MetricSummary>>& per_run) {
  std::map<std::string, nlohmann::json> by_name;
  for (size_t i = 0; i < per_run.size(); ++i) {
    for (const MetricSummary& s : per_run[i]) {
      nlohmann::json& of = by_name[s.name];
      if (of.is_null()) of = nlohmann::json::array();
      while (of.size() < i) of.push_back(nullptr);
      nlohmann::json j = MetricSummaryJson(s);
      j.erase("name");
      of.push_back(std::move(j));
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& [name, of] : by_name) {
    while (of.size() < per_run.size()) of.push_back(nullptr);
    out.push_back({{"name", name}, {"runs", std::move(of)}});
  }
  return out;
}

int RunCompare(const GlobalOptions& global, const CompareOptions& o) {
  constexpr const char* kCmd = "aml run compare";
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto resolved = ResolveRuns(*conn, o.runs);
  if (!resolved.ok()) return ReportError(global, resolved.status());
  // `last` and its full id name one run: it is compared once.
  std::vector<Run> runs;
  for (Run& r : *resolved) {
    if (std::none_of(runs.begin(), runs.end(), [&r](const Run& x) { return x.id() == r.id(); })) {
      runs.push_back(std::move(r));
    }
  }
  if (runs.size() < 2) {
    return ReportUsageError(global,
                            absl::StrCat("give two or more different runs to compare (",
                                         runs.size() == 1 ? "these all name " + runs[0].id() : "",
                                         "); `aml run show RUN` shows one"),
                            kCmd);
  }
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  std::vector<amld::v1::GetMetricsResponse> responses(runs.size());
  std::vector<std::vector<MetricSummary>> metrics;
  for (size_t i = 0; i < runs.size(); ++i) {
    grpc::ClientContext ctx;
    amld::v1::GetMetricsRequest req;
    req.set_run_id(runs[i].id());
    grpc::Status st = stub->GetMetrics(&ctx, req, &responses[i]);
    if (!st.ok()) {
      return ReportError(global, FromGrpcStatus(st, "read the metrics of run " + runs[i].id(),
                                                conn->socket_path));
    }
    metrics.push_back(SummarizeMetrics(responses[i]));
  }
  std::vector<CompareRow> outcome = OutcomeRows(runs);
  std::vector<CompareRow> config = ConfigRows(runs);
  if (global.json()) {
    nlohmann::json ids = nlohmann::json::array();
    for (const Run& r : runs) ids.push_back(r.id());
    std::vector<CompareRow> fields = outcome;
    fields.insert(fields.end(), config.begin(), config.end());
    std::cout << nlohmann::json{{"runs", std::move(ids)},
                                {"fields", RowsJson(fields)},
                                {"metrics", MetricsJson(metrics)}}
                     .dump(2)
              << std::endl;
    return kExitOk;
  }
  std::vector<std::string> header = {"RUN"};
  for (const Run& r : runs) header.push_back(r.id());
  std::vector<std::vector<std::string>> table;
  auto add = [&table](const CompareRow& row) {
    std::vector<std::string> cells = {row.label};
    cells.insert(cells.end(), row.values.begin(), row.values.end());
    table.push_back(std::move(cells));
  };
  for (const CompareRow& row : outcome) add(row);
  std::vector<std::string> same;
  for (const CompareRow& row : config) {
    if (o.all || row.differs) {
      add(row);
    } else {
      same.push_back(row.label);
    }
  }
  const std::vector<CompareRow> metric_rows = MetricRows(metrics);
  for (const CompareRow& row : metric_rows) add(row);
  TableStyle style = StdoutStyle();
  style.shrink_widest = true;
  if (style.width > 0) {
    // Where the ids do not fit whole, the columns are headed by what tells
    // them apart and `aml` takes as a run: the id's last part (its suffix).
    size_t widest = header[0].size();
    for (const auto& cells : table) widest = std::max(widest, cells[0].size());
    size_t total = widest;
    for (size_t i = 1; i < header.size(); ++i) {
      size_t w = header[i].size();
      for (const auto& cells : table) w = std::max(w, cells[i].size());
      total += 2 + w;
    }
    if (total > static_cast<size_t>(style.width)) {
      for (size_t i = 1; i < header.size(); ++i) {
        const size_t cut = header[i].rfind('_');
        if (cut != std::string::npos && header[i].size() - cut > 3) {
          header[i] = header[i].substr(cut + 1);
        }
      }
    }
  }
  PrintTable(std::cout, header, table, style);
  if (!same.empty()) {
    std::cerr << "the same in every run: " << absl::StrJoin(same, ", ") << " (--all shows them)"
              << std::endl;
  }
  if (metric_rows.empty()) std::cerr << "none of these runs has logged metrics" << std::endl;
  return kExitOk;
}

}  // namespace

void AddRunCompareCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd = run.add_subcommand(
      "compare",
      "runs side by side: how each ended, the config fields that differ, and each metric's "
      "last, min and max");
  AddRunsArgument(*cmd, o->runs);
  cmd->add_flag("--all", o->all, "every config field, also those the same in every run");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunCompare(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
