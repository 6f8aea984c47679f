// `aml run metrics RUN...`: the metrics runs logged (run.log inside the run,
// served by Runs.GetMetrics), one line per run and name with its last, min
// and max; with one --name, that metric's series, a column per run, to
// compare runs. Available while a run is still running as far as the daemon
// has read them.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_join.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/metric_summary.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct MetricsOptions {
  RunRefs runs;
  std::vector<std::string> names;
};

nlohmann::json RunJson(const std::string& run_id, const std::vector<MetricSummary>& summaries) {
  nlohmann::json metrics = nlohmann::json::array();
  for (const auto& s : summaries) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto* m : s.values) {
      values.push_back({{"step", m->step()},
                        {"value", MetricValueJson(*m)},
                        {"time", absl::FormatTime(absl::RFC3339_full, ToAbslTime(m->time()),
                                                  absl::UTCTimeZone())}});
    }
    nlohmann::json j = MetricSummaryJson(s);
    j["values"] = std::move(values);
    metrics.push_back(std::move(j));
  }
  return nlohmann::json{{"run_id", run_id}, {"metrics", std::move(metrics)}};
}

// One run's summary: a row per name (with the run's id first when
// `with_run`).
void AddSummaryRows(const std::string& run_id, const std::vector<MetricSummary>& summaries,
                    bool with_run, std::vector<std::vector<std::string>>* rows) {
  for (const auto& s : summaries) {
    const amld::v1::Metric& last = *s.values.back();
    std::vector<std::string> row = {s.name, std::to_string(s.values.size()),
                                    std::to_string(last.step()), FormatMetricValue(last),
                                    s.min ? FormatMetricNumber(*s.min) : "-",
                                    s.max ? FormatMetricNumber(*s.max) : "-"};
    if (with_run) row.insert(row.begin(), run_id);
    rows->push_back(std::move(row));
  }
}

// One metric's series: a row per step, a column per run (its last value at
// that step), so runs compare side by side.
void PrintSeries(const std::vector<std::pair<std::string, std::vector<MetricSummary>>>& runs) {
  std::map<int64_t, std::vector<std::string>> by_step;
  for (size_t i = 0; i < runs.size(); ++i) {
    for (const MetricSummary& s : runs[i].second) {
      for (const amld::v1::Metric* m : s.values) {
        std::vector<std::string>& row = by_step[m->step()];
        row.resize(runs.size(), "-");
        row[i] = FormatMetricValue(*m);
      }
    }
  }
  std::vector<std::string> header = {"STEP"};
  for (const auto& [id, summaries] : runs) header.push_back(runs.size() == 1 ? "VALUE" : id);
  std::vector<std::vector<std::string>> rows;
  for (auto& [step, values] : by_step) {
    values.resize(runs.size(), "-");
    values.insert(values.begin(), std::to_string(step));
    rows.push_back(std::move(values));
  }
  PrintTable(std::cout, header, rows);
}

int RunMetrics(const GlobalOptions& global, const MetricsOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto resolved = ResolveRuns(*conn, o.runs);
  if (!resolved.ok()) return ReportError(global, resolved.status());
  std::vector<std::string> ids;
  for (const amld::v1::Run& run : *resolved) ids.push_back(run.id());
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  std::vector<amld::v1::GetMetricsResponse> responses(ids.size());
  std::vector<std::pair<std::string, std::vector<MetricSummary>>> runs;
  for (size_t i = 0; i < ids.size(); ++i) {
    grpc::ClientContext ctx;
    amld::v1::GetMetricsRequest req;
    req.set_run_id(ids[i]);
    for (const auto& n : o.names) req.add_names(n);
    grpc::Status st = stub->GetMetrics(&ctx, req, &responses[i]);
    if (!st.ok()) {
      return ReportError(
          global, FromGrpcStatus(st, "read the metrics of run " + ids[i], conn->socket_path));
    }
    runs.emplace_back(ids[i], SummarizeMetrics(responses[i]));
  }
  if (global.json()) {
    if (runs.size() == 1) {
      std::cout << RunJson(runs[0].first, runs[0].second).dump(2) << std::endl;
    } else {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& [id, summaries] : runs) all.push_back(RunJson(id, summaries));
      std::cout << nlohmann::json{{"runs", std::move(all)}}.dump(2) << std::endl;
    }
    return kExitOk;
  }
  const bool any = std::any_of(runs.begin(), runs.end(),
                               [](const auto& r) { return !r.second.empty(); });
  if (!any) {
    std::cerr << (runs.size() == 1 ? "run " + ids[0] + " has" : "these runs have")
              << " logged no metrics"
              << (o.names.empty() ? "" : " named " + absl::StrJoin(o.names, ", ")) << " (yet)"
              << std::endl;
    return kExitOk;
  }
  if (o.names.size() == 1) {
    PrintSeries(runs);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [id, summaries] : runs) AddSummaryRows(id, summaries, runs.size() > 1, &rows);
  std::vector<std::string> header = {"NAME", "COUNT", "LAST STEP", "LAST", "MIN", "MAX"};
  if (runs.size() > 1) header.insert(header.begin(), "RUN");
  PrintTable(std::cout, header, rows);
  return kExitOk;
}

}  // namespace

void AddRunMetricsCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<MetricsOptions>();
  auto* cmd = run.add_subcommand(
      "metrics",
      "the metrics runs logged: count, last, min and max per name (works while they run); "
      "with --name NAME, the series side by side");
  AddRunsArgument(*cmd, o->runs);
  cmd->add_option("--name", o->names,
                  "only this metric (repeatable); with one name, its values step by step, a "
                  "column per run")
      ->allow_extra_args(false);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunMetrics(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
