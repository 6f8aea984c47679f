// `aml run list`: the newest runs first, filtered by experiment, status and
// parent run.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <pwd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

// The login name of `uid` on this machine, else the number.
std::string UserName(uint32_t uid) {
  std::vector<char> buf(16384);
  passwd pw;
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    return pw.pw_name;
  }
  return std::to_string(uid);
}

struct ListOptions {
  std::string experiment;
  std::vector<std::string> statuses;
  std::string parent;
  int limit = 50;
};

// The script and all its arguments (what tells sweep runs apart); the
// table cuts it at the terminal's width, never before.
std::string WhatRan(const amld::v1::RunConfig& c) {
  std::string s = c.script().empty() ? c.command() : c.script();
  if (c.arguments_size() > 0) s += " " + absl::StrJoin(c.arguments(), " ");
  return s;
}

// The filters of the request, as typed: "experiment mnist, status FAILED".
std::string FilterText(const amld::v1::ListRunsRequest& req) {
  std::vector<std::string> parts;
  if (!req.experiment_name().empty()) parts.push_back("experiment " + req.experiment_name());
  std::vector<std::string> statuses;
  for (int s : req.statuses()) {
    statuses.push_back(StatusName(static_cast<amld::v1::RunStatus::Value>(s)));
  }
  if (!statuses.empty()) parts.push_back("status " + absl::StrJoin(statuses, ","));
  return absl::StrJoin(parts, ", ");
}

int RunList(const GlobalOptions& global, const ListOptions& o) {
  amld::v1::ListRunsRequest req;
  req.set_experiment_name(o.experiment);
  req.set_parent_run_id(o.parent);
  for (const auto& arg : o.statuses) {
    for (absl::string_view name : absl::StrSplit(arg, ',', absl::SkipWhitespace())) {
      auto status = ParseStatusName(std::string(name));
      if (!status.ok()) {
        return ReportUsageError(global, std::string(status.status().message()), "aml run list");
      }
      req.add_statuses(*status);
    }
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  amld::v1::ListRunsResponse all;
  while (all.runs_size() < o.limit) {
    req.set_page_size(std::min(1000, o.limit - all.runs_size()));
    grpc::ClientContext ctx;
    amld::v1::ListRunsResponse page;
    grpc::Status st = stub->ListRuns(&ctx, req, &page);
    if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "list runs", conn->socket_path));
    for (auto& r : *page.mutable_runs()) {
      if (all.runs_size() < o.limit) *all.add_runs() = std::move(r);
    }
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  if (global.json()) {
    std::cout << ProtoToJson(all) << std::endl;
    return kExitOk;
  }
  if (all.runs().empty()) {
    const std::string filter = FilterText(req);
    std::cerr << (filter.empty() ? "no runs yet; submit one with `aml run submit SCRIPT`"
                                 : "no runs match " + filter)
              << std::endl;
    return kExitOk;
  }
  // A daemon shared by several users (system mode) lists everyone's runs:
  // say whose each is.
  const bool shared = conn->info.mode() == amld::v1::DaemonInfo::SYSTEM;
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : all.runs()) {
    const absl::Duration d = RunDuration(r);
    rows.push_back({r.id(), StatusName(r.status()), r.config().experiment_name(),
                    FormatTimestamp(r.created_time()),
                    d > absl::ZeroDuration() ? HumanDuration(d) : "-", WhatRan(r.config())});
    if (shared) rows.back().insert(rows.back().begin() + 2, UserName(r.submitter_uid()));
  }
  std::vector<std::string> header = {"RUN",       "STATUS",   "EXPERIMENT",
                                     "SUBMITTED", "DURATION", "SCRIPT"};
  if (shared) header.insert(header.begin() + 2, "USER");
  PrintTable(std::cout, header, rows, StdoutStyle(/*status_column=*/1));
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
  cmd->add_option("--limit", o->limit, "at most this many runs (default 50)")
      ->check(AtLeast(1));
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunList(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
