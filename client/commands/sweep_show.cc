// `aml sweep show RUN`: a sweep (its spec, status and limits) and its
// children, best first by the primary metric (each child's best value).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/sweep_children.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

std::string Shorten(std::string s, size_t max) {
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

int RunSweepShow(const GlobalOptions& global, const std::string& run_id) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  amld::v1::Run parent;
  {
    grpc::ClientContext ctx;
    amld::v1::GetRunRequest req;
    req.set_run_id(run_id);
    grpc::Status st = stub->GetRun(&ctx, req, &parent);
    if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "look up " + run_id, conn->socket_path));
  }
  if (!parent.config().has_sweep()) {
    return ReportError(global, absl::InvalidArgumentError(absl::StrCat(
                                   run_id, " is not a sweep; see it with `aml run show ", run_id, "`")));
  }
  const amld::v1::SweepSpec& spec = parent.config().sweep();
  const bool maximize = spec.primary_metric_goal() == amld::v1::PrimaryMetricGoal::MAXIMIZE;
  auto ranked = RankSweepChildren(*conn, parent);
  if (!ranked.ok()) return ReportError(global, ranked.status());
  const std::vector<SweepChild>& children = *ranked;
  if (global.json()) {
    nlohmann::json j = {{"sweep", nlohmann::json::parse(ProtoToJson(parent))},
                        {"children", nlohmann::json::array()}};
    for (const SweepChild& c : children) {
      nlohmann::json row = {{"run_id", c.run.id()},
                            {"status", StatusName(c.run.status())},
                            {"hyperparameters", c.run.config().tags().contains("hyperparameters")
                                                    ? c.run.config().tags().at("hyperparameters")
                                                    : ""},
                            {"best_primary_metric", nullptr},
                            {"error", c.run.error()}};
      if (c.best) row["best_primary_metric"] = *c.best;
      j["children"].push_back(row);
    }
    std::cout << j.dump(2) << std::endl;
    return kExitOk;
  }
  std::cout << "sweep " << parent.id() << "  " << StatusWithError(parent) << "\n"
            << "primary metric: " << spec.primary_metric_name() << " ("
            << (maximize ? "maximize" : "minimize") << ")\n"
            << "children: " << children.size() << " of " << spec.max_total_runs() << ", at most "
            << spec.max_concurrent_runs() << " at a time\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const SweepChild& c : children) {
    const auto& tags = c.run.config().tags();
    rows.push_back({c.run.id(), StatusName(c.run.status()),
                    c.best ? absl::StrCat(*c.best) : "-", absl::StrCat(c.logged),
                    tags.contains("hyperparameters") ? tags.at("hyperparameters") : "",
                    Shorten(c.run.error(), 70)});
  }
  PrintTable(std::cout, {"RUN", "STATUS", "BEST " + spec.primary_metric_name(), "LOGGED",
                         "HYPERPARAMETERS", "ERROR"},
             rows);
  return kExitOk;
}

}  // namespace

void AddSweepShowCommand(CLI::App& sweep, CommandContext& ctx) {
  auto run_id = std::make_shared<std::string>();
  auto* cmd = sweep.add_subcommand("show", "a sweep and its children, best first");
  cmd->add_option("RUN", *run_id, "the sweep's run id")->required();
  cmd->callback([&ctx, run_id] {
    ctx.action = [&ctx, run_id] { return RunSweepShow(ctx.global, *run_id); };
  });
}

}  // namespace amld::client::commands
