// `aml run cancel`: ask the daemon to stop runs (SIGTERM to each process
// group, SIGKILL after the grace period): the runs named (ids, unique
// prefixes or suffixes, `last`), or every run not yet ended that matches
// --experiment/--status. Returns at once; `aml run wait` follows a run to
// CANCELED.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct CancelOptions {
  std::vector<std::string> runs;
  std::string experiment;
  std::vector<std::string> statuses;
  std::string reason;
};

// The ids of every run matching the filters that has not ended.
absl::StatusOr<std::vector<std::string>> MatchingRuns(const Connection& conn,
                                                      const amld::v1::ListRunsRequest& filter) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  amld::v1::ListRunsRequest req = filter;
  req.set_page_size(1000);
  std::vector<std::string> ids;
  while (true) {
    grpc::ClientContext ctx;
    amld::v1::ListRunsResponse page;
    grpc::Status st = stub->ListRuns(&ctx, req, &page);
    if (!st.ok()) return FromGrpcStatus(st, "list runs", conn.socket_path);
    for (const auto& r : page.runs()) {
      if (!amld::storage::IsTerminal(r.status())) ids.push_back(r.id());
    }
    if (page.next_page_token().empty()) return ids;
    req.set_page_token(page.next_page_token());
  }
}

int RunCancel(const GlobalOptions& global, const CancelOptions& o) {
  const char* kCmd = "aml run cancel";
  const bool by_filter = o.runs.empty();
  if (by_filter && o.experiment.empty() && o.statuses.empty()) {
    return ReportUsageError(global, "name the runs, or select them with --experiment/--status",
                            kCmd);
  }
  if (!by_filter && !o.statuses.empty()) {
    return ReportUsageError(global, "give run ids or --status, not both", kCmd);
  }
  amld::v1::ListRunsRequest filter;
  filter.set_experiment_name(o.experiment);
  for (const auto& arg : o.statuses) {
    for (absl::string_view name : absl::StrSplit(arg, ',', absl::SkipWhitespace())) {
      auto status = ParseStatusName(std::string(name));
      if (!status.ok()) return ReportUsageError(global, std::string(status.status().message()), kCmd);
      filter.add_statuses(*status);
    }
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  // Resolve every id before cancelling any, so a typo cancels nothing.
  std::vector<std::string> ids;
  if (by_filter) {
    auto matching = MatchingRuns(*conn, filter);
    if (!matching.ok()) return ReportError(global, matching.status());
    ids = *std::move(matching);
  } else {
    for (const auto& typed : o.runs) {
      auto run = ResolveRun(*conn, {typed, o.experiment});
      if (!run.ok()) return ReportError(global, run.status());
      ids.push_back(run->id());
    }
  }
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  std::vector<amld::v1::Run> done;
  for (const auto& id : ids) {
    grpc::ClientContext ctx;
    amld::v1::CancelRunRequest req;
    req.set_run_id(id);
    req.set_reason(o.reason.empty() ? "canceled with aml run cancel" : o.reason);
    amld::v1::Run run;
    grpc::Status st = stub->CancelRun(&ctx, req, &run);
    if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "cancel run " + id, conn->socket_path));
    if (!global.json()) std::cout << "run " << run.id() << ": " << StatusWithError(run) << std::endl;
    done.push_back(std::move(run));
  }
  if (global.json()) {
    if (o.runs.size() == 1) {
      std::cout << ProtoToJson(done.front()) << std::endl;  // one run, as before
    } else {
      amld::v1::ListRunsResponse all;
      for (auto& r : done) *all.add_runs() = std::move(r);
      std::cout << ProtoToJson(all) << std::endl;
    }
  } else if (done.empty()) {
    std::cerr << "no run that has not ended matches the filter" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddRunCancelCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<CancelOptions>();
  auto* cmd = run.add_subcommand(
      "cancel", "stop runs (they end CANCELED): RUN... or every unfinished run of --experiment/--status");
  cmd->add_option("runs", o->runs,
                  "runs: ids, unique prefixes or suffixes (3+ characters), or `last`");
  cmd->add_option("-e,--experiment", o->experiment,
                  "without RUN: every unfinished run of EXP; with `last`: your newest run of EXP");
  cmd->add_option("--status", o->statuses,
                  "without RUN: only runs in this status (repeatable, or comma-separated)")
      ->allow_extra_args(false);
  cmd->add_option("--reason", o->reason, "why, recorded with the run");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunCancel(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
