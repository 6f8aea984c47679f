// `aml run metrics RUN`: the metrics a run logged (run.log inside the run,
// served by Runs.GetMetrics), one line per name with its last, min and max.
// Available while the run is still running as far as the daemon has read
// them.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_format.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct MetricsOptions {
  RunRef run;
  std::vector<std::string> names;
};

// One metric name's values, in GetMetrics' order (step, then time).
struct MetricSummary {
  std::string name;
  std::vector<const amld::v1::Metric*> values;
  // Over the numeric values only; unset when there are none (text metrics).
  std::optional<double> min;
  std::optional<double> max;
};

std::vector<MetricSummary> Summarize(const amld::v1::GetMetricsResponse& resp) {
  std::vector<MetricSummary> out;
  for (const auto& m : resp.metrics()) {
    if (out.empty() || out.back().name != m.name()) out.push_back({m.name(), {}, {}, {}});
    MetricSummary& s = out.back();
    s.values.push_back(&m);
    // NaN is kept as a value but cannot order: it takes no part in min/max.
    if (m.value_case() != amld::v1::Metric::kNumber || std::isnan(m.number())) continue;
    s.min = s.min ? std::min(*s.min, m.number()) : m.number();
    s.max = s.max ? std::max(*s.max, m.number()) : m.number();
  }
  return out;
}

std::string FormatNumber(double v) { return absl::StrFormat("%.6g", v); }

std::string FormatValue(const amld::v1::Metric& m) {
  if (m.value_case() == amld::v1::Metric::kText) return m.text();
  if (m.value_case() == amld::v1::Metric::kNumber) return FormatNumber(m.number());
  return "-";
}

nlohmann::json ValueJson(const amld::v1::Metric& m) {
  if (m.value_case() == amld::v1::Metric::kText) return m.text();
  if (m.value_case() != amld::v1::Metric::kNumber) return nullptr;
  // JSON has no NaN or infinities; they are spelled as strings.
  if (std::isnan(m.number())) return "NaN";
  if (std::isinf(m.number())) return m.number() > 0 ? "Infinity" : "-Infinity";
  return m.number();
}

void PrintJson(const std::string& run_id, const std::vector<MetricSummary>& summaries) {
  nlohmann::json metrics = nlohmann::json::array();
  for (const auto& s : summaries) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto* m : s.values) {
      values.push_back(
          {{"step", m->step()}, {"value", ValueJson(*m)}, {"time", absl::FormatTime(absl::RFC3339_full, ToAbslTime(m->time()), absl::UTCTimeZone())}});
    }
    metrics.push_back({{"name", s.name},
                       {"count", s.values.size()},
                       {"last", ValueJson(*s.values.back())},
                       {"last_step", s.values.back()->step()},
                       {"min", s.min ? nlohmann::json(*s.min) : nlohmann::json()},
                       {"max", s.max ? nlohmann::json(*s.max) : nlohmann::json()},
                       {"values", std::move(values)}});
  }
  std::cout << nlohmann::json{{"run_id", run_id}, {"metrics", std::move(metrics)}}.dump(2)
            << std::endl;
}

void PrintText(const std::string& run_id, const std::vector<MetricSummary>& summaries) {
  if (summaries.empty()) {
    std::cerr << "run " << run_id << " has logged no metrics (yet)" << std::endl;
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : summaries) {
    const amld::v1::Metric& last = *s.values.back();
    rows.push_back({s.name, std::to_string(s.values.size()), std::to_string(last.step()),
                    FormatValue(last), s.min ? FormatNumber(*s.min) : "-",
                    s.max ? FormatNumber(*s.max) : "-"});
  }
  PrintTable(std::cout, {"NAME", "COUNT", "LAST STEP", "LAST", "MIN", "MAX"}, rows);
}

int RunMetrics(const GlobalOptions& global, const MetricsOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto run = ResolveRun(*conn, o.run);
  if (!run.ok()) return ReportError(global, run.status());
  const std::string& run_id = run->id();
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::GetMetricsRequest req;
  req.set_run_id(run_id);
  for (const auto& n : o.names) req.add_names(n);
  amld::v1::GetMetricsResponse resp;
  grpc::Status st = stub->GetMetrics(&ctx, req, &resp);
  if (!st.ok()) {
    return ReportError(
        global, FromGrpcStatus(st, "read the metrics of run " + run_id, conn->socket_path));
  }
  const std::vector<MetricSummary> summaries = Summarize(resp);
  if (global.json()) {
    PrintJson(run_id, summaries);
  } else {
    PrintText(run_id, summaries);
  }
  return kExitOk;
}

}  // namespace

void AddRunMetricsCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<MetricsOptions>();
  auto* cmd = run.add_subcommand(
      "metrics",
      "the metrics a run logged: count, last, min and max per name (works while it runs)");
  AddRunArgument(*cmd, o->run);
  cmd->add_option("--name", o->names, "only this metric (repeatable)")->allow_extra_args(false);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunMetrics(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
