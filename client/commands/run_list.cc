// `aml run list`: the newest runs first, filtered by experiment, status,
// parent run and tags; with metric and tag columns and a sort order to
// compare runs (run_columns.h).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/status_macros.h"
#include "base/user_names.h"
#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/commands/run_columns.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct ListOptions {
  std::string experiment;
  std::vector<std::string> statuses;
  std::vector<std::string> tags;  // "K=V" or "K"
  std::string parent;
  std::string columns;  // empty: the defaults
  std::string sort;     // empty: newest first
  int limit = 50;
  bool all = false;
};

// The filters of the request and the tag filters, as typed:
// "experiment mnist, status FAILED, tag lr=0.1".
std::string FilterText(const amld::v1::ListRunsRequest& req, const std::vector<std::string>& tags) {
  std::vector<std::string> parts;
  if (!req.experiment_name().empty()) parts.push_back("experiment " + req.experiment_name());
  std::vector<std::string> statuses;
  for (int s : req.statuses()) {
    statuses.push_back(StatusName(static_cast<amld::v1::RunStatus::Value>(s)));
  }
  if (!statuses.empty()) parts.push_back("status " + absl::StrJoin(statuses, ","));
  if (!req.parent_run_id().empty()) parts.push_back("parent " + req.parent_run_id());
  for (const std::string& t : tags) parts.push_back("tag " + t);
  return absl::StrJoin(parts, ", ");
}

// What `aml run list` shows, parsed from its flags.
struct ListPlan {
  std::vector<RunColumn> columns;
  std::optional<RunSort> sort;
  std::vector<TagFilter> tags;
  std::vector<std::string> metric_names;  // to fetch, for columns and the sort
};

absl::StatusOr<ListPlan> PlanList(const ListOptions& o) {
  ListPlan plan;
  if (o.columns.empty()) {
    plan.columns = DefaultRunColumns();
  } else {
    AMLD_ASSIGN_OR_RETURN(plan.columns, ParseRunColumns(o.columns));
  }
  if (!o.sort.empty()) {
    AMLD_ASSIGN_OR_RETURN(plan.sort, ParseRunSort(o.sort));
    // What the runs are sorted by is shown.
    if (std::find(plan.columns.begin(), plan.columns.end(), plan.sort->column) ==
        plan.columns.end()) {
      plan.columns.insert(plan.columns.end() - (plan.columns.size() > 1 ? 1 : 0),
                          plan.sort->column);
    }
  }
  for (const std::string& t : o.tags) {
    AMLD_ASSIGN_OR_RETURN(TagFilter f, ParseTagFilter(t));
    plan.tags.push_back(std::move(f));
  }
  for (const RunColumn& c : plan.columns) {
    if (c.kind == RunColumn::Kind::kMetric) plan.metric_names.push_back(c.name);
  }
  return plan;
}

// The runs of `req`, newest first, that match `tags`: at most `limit`
// (0: all), page after page.
absl::StatusOr<std::vector<RunRow>> FetchRuns(const Connection& conn, amld::v1::ListRunsRequest req,
                                              const std::vector<TagFilter>& tags, int limit) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  std::vector<RunRow> rows;
  const size_t max = limit > 0 ? static_cast<size_t>(limit) : SIZE_MAX;
  while (rows.size() < max) {
    // Tag filters are applied here: ask for full pages when they drop runs.
    req.set_page_size(tags.empty() ? static_cast<int>(std::min<size_t>(1000, max - rows.size()))
                                   : 1000);
    grpc::ClientContext ctx;
    amld::v1::ListRunsResponse page;
    grpc::Status st = stub->ListRuns(&ctx, req, &page);
    if (!st.ok()) return FromGrpcStatus(st, "list runs", conn.socket_path);
    for (auto& r : *page.mutable_runs()) {
      if (rows.size() < max && MatchesTags(r, tags)) rows.push_back(RunRow{std::move(r), {}});
    }
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  return rows;
}

// The last value of each of `names` for every row: one GetMetrics per run.
absl::Status FetchMetrics(const Connection& conn, const std::vector<std::string>& names,
                          std::vector<RunRow>* rows) {
  if (names.empty()) return absl::OkStatus();
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  for (RunRow& row : *rows) {
    grpc::ClientContext ctx;
    amld::v1::GetMetricsRequest req;
    req.set_run_id(row.run.id());
    for (const std::string& n : names) req.add_names(n);
    amld::v1::GetMetricsResponse resp;
    grpc::Status st = stub->GetMetrics(&ctx, req, &resp);
    if (!st.ok()) {
      return FromGrpcStatus(st, "read the metrics of run " + row.run.id(), conn.socket_path);
    }
    row.metrics = LastMetricValues(resp);
  }
  return absl::OkStatus();
}

void PrintJson(const std::vector<RunRow>& rows, bool with_metrics) {
  nlohmann::json runs = nlohmann::json::array();
  for (const RunRow& row : rows) {
    nlohmann::json j = nlohmann::json::parse(ProtoToJson(row.run));
    if (with_metrics) {
      nlohmann::json metrics = nlohmann::json::object();
      for (const auto& [name, value] : row.metrics) {
        metrics[name] = std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
      }
      j["last_metrics"] = std::move(metrics);
    }
    runs.push_back(std::move(j));
  }
  std::cout << nlohmann::json{{"runs", std::move(runs)}}.dump(2) << std::endl;
}

int RunList(const GlobalOptions& global, const ListOptions& o) {
  constexpr const char* kCmd = "aml run list";
  amld::v1::ListRunsRequest req;
  req.set_experiment_name(o.experiment);
  req.set_parent_run_id(o.parent);
  for (const auto& arg : o.statuses) {
    for (absl::string_view name : absl::StrSplit(arg, ',', absl::SkipWhitespace())) {
      auto status = ParseStatusName(std::string(name));
      if (!status.ok()) {
        return ReportUsageError(global, std::string(status.status().message()), kCmd);
      }
      req.add_statuses(*status);
    }
  }
  absl::StatusOr<ListPlan> plan = PlanList(o);
  if (!plan.ok()) return ReportUsageError(global, std::string(plan.status().message()), kCmd);
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  // Sorting by anything but age needs every run, not the newest `limit`.
  auto rows = FetchRuns(*conn, req, plan->tags, o.all || plan->sort ? 0 : o.limit);
  if (!rows.ok()) return ReportError(global, rows.status());
  if (absl::Status got = FetchMetrics(*conn, plan->metric_names, &*rows); !got.ok()) {
    return ReportError(global, got);
  }
  if (plan->sort) SortRunRows(*plan->sort, &*rows);
  if (!o.all && rows->size() > static_cast<size_t>(o.limit)) rows->resize(o.limit);
  if (global.json()) {
    PrintJson(*rows, !plan->metric_names.empty());
    return kExitOk;
  }
  if (rows->empty()) {
    const std::string filter = FilterText(req, o.tags);
    std::cerr << (filter.empty() ? "no runs yet; submit one with `aml run submit SCRIPT`"
                                 : "no runs match " + filter)
              << std::endl;
    return kExitOk;
  }
  // A daemon shared by several users (system mode) lists everyone's runs:
  // say whose each is.
  const bool shared = conn->info.mode() == amld::v1::DaemonInfo::SYSTEM;
  std::vector<std::string> header;
  int status_column = -1;
  for (const RunColumn& c : plan->columns) {
    if (c.kind == RunColumn::Kind::kBuiltin && c.name == "status") {
      status_column = static_cast<int>(header.size());
    }
    header.push_back(ColumnHeader(c));
  }
  const size_t user_at = std::min<size_t>(2, header.size());
  if (shared) {
    header.insert(header.begin() + user_at, "USER");
    if (status_column >= static_cast<int>(user_at)) ++status_column;
  }
  std::vector<std::vector<std::string>> table;
  for (const RunRow& row : *rows) {
    std::vector<std::string> cells;
    for (const RunColumn& c : plan->columns) cells.push_back(CellText(c, row));
    if (shared) cells.insert(cells.begin() + user_at, base::NameOrUid(row.run.submitter_uid()));
    table.push_back(std::move(cells));
  }
  PrintTable(std::cout, header, table, StdoutStyle(status_column));
  return kExitOk;
}

}  // namespace

void AddRunListCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<ListOptions>();
  auto* cmd = run.add_subcommand("list", "list runs, newest first");
  cmd->add_option("-e,--experiment", o->experiment, "only runs of this experiment");
  cmd->add_option("--status", o->statuses,
                  "only runs in this status (repeatable, or comma-separated), e.g. RUNNING")
      ->allow_extra_args(false);
  cmd->add_option("--parent", o->parent, "only children of this run (a sweep's)");
  cmd->add_option("--tag", o->tags,
                  "only runs with this tag: KEY=VALUE, or KEY for any value (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--columns", o->columns,
                  "comma-separated: id, status, experiment, submitted, duration, script, name, "
                  "compute, priority, metric:NAME (its last value), tag:KEY; with + in front of "
                  "each (+metric:loss,+tag:lr) they are added to the default ones");
  cmd->add_option("--sort", o->sort,
                  "order by a column instead of age, - in front for descending: metric:loss, "
                  "-metric:accuracy, tag:lr, duration; runs without a value go last");
  cmd->add_option("--limit", o->limit, "at most this many runs (default 50)")
      ->check(AtLeast(1));
  cmd->add_flag("--all", o->all, "every matching run, page after page (no --limit)");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunList(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
