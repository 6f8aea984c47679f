// `aml daemon status`: whether amld answers, and what it is doing.
#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands/command.h"
#include "client/commands/output.h"

namespace amld::client::commands {
namespace {

int64_t Count(const amld::v1::DaemonInfo& info, const std::string& status) {
  auto it = info.run_counts().find(status);
  return it == info.run_counts().end() ? 0 : it->second;
}

int RunDaemonStatus(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  const auto& info = conn->info;
  if (global.json()) {
    std::cout << ProtoToJson(info) << std::endl;
    return kExitOk;
  }
  const absl::Duration uptime = absl::Now() - ToAbslTime(info.start_time());
  const bool system = info.mode() == amld::v1::DaemonInfo::SYSTEM;
  std::cout << "amld " << info.version() << " is running\n"
            << "mode:          "
            << (system ? "system (shared by this machine's users; runs run as their submitters)"
                       : "user (yours alone)")
            << '\n'
            << "pid:           " << info.pid() << '\n'
            << "uptime:        " << HumanDuration(uptime) << '\n'
            << "socket:        " << conn->socket_path.string() << '\n'
            << "data dir:      " << info.data_dir() << '\n'
            << "runs:          " << Count(info, "QUEUED") << " queued, " << Count(info, "RUNNING")
            << " running";
  if (info.max_concurrent_runs() > 0) {
    std::cout << " (at most " << info.max_concurrent_runs() << " at once)";
  }
  std::cout << '\n';
  if (info.cpus() > 0) {
    std::cout << "capacity:      " << info.cpus() << " CPU slots (" << info.free_cpus()
              << " free), ";
    if (info.gpus_size() == 0) {
      std::cout << "no GPUs\n";
    } else {
      std::cout << "GPUs " << absl::StrJoin(info.gpus(), ",") << " (free: "
                << (info.free_gpus_size() == 0 ? "none" : absl::StrJoin(info.free_gpus(), ","))
                << ")\n";
    }
    auto seconds = [](int64_t s) { return s > 0 ? absl::StrCat(s, " s") : std::string("none"); };
    std::cout << "run limits:    default duration " << seconds(info.default_run_duration_seconds())
              << ", max duration " << seconds(info.max_run_duration_seconds())
              << ", cancel grace " << info.kill_grace_seconds() << " s\n";
  }
  if (info.per_user_max_running_runs() > 0 || info.per_user_max_gpus() > 0) {
    auto cap = [](int n) { return n > 0 ? absl::StrCat(n) : std::string("no cap"); };
    std::cout << "per user:      at most " << cap(info.per_user_max_running_runs())
              << " running runs, " << cap(info.per_user_max_gpus()) << " GPUs\n";
  }
  for (const amld::v1::UserUsage& u : info.user_usage()) {
    std::cout << "  " << (u.user().empty() ? absl::StrCat("uid ", u.uid()) : u.user()) << ": "
              << u.running() << " running (" << u.gpus() << " GPUs), " << u.queued()
              << " queued\n";
  }
  if (info.gc_interval_seconds() > 0 || info.has_last_gc()) {
    std::cout << "cas gc:        "
              << (info.gc_interval_seconds() > 0
                      ? "every " + HumanDuration(absl::Seconds(info.gc_interval_seconds()))
                      : std::string("only by aml daemon gc"))
              << ", grace " << HumanDuration(absl::Seconds(info.gc_grace_seconds())) << "; last: ";
    if (!info.has_last_gc()) {
      std::cout << "none since start\n";
    } else if (!info.last_gc().error().empty()) {
      std::cout << HumanDuration(absl::Now() - ToAbslTime(info.last_gc().start_time()))
                << " ago, stopped: " << info.last_gc().error() << '\n';
    } else {
      std::cout << HumanDuration(absl::Now() - ToAbslTime(info.last_gc().start_time())) << " ago, "
                << GcSummary(info.last_gc()) << '\n';
    }
  }
  if (info.environment_cache_count() > 0 || info.environment_cache_budget_bytes() > 0) {
    std::cout << "environments:  " << info.environment_cache_count() << " built, "
              << HumanBytes(info.environment_cache_bytes()) << " ("
              << info.environment_cache_in_use() << " in use), budget "
              << (info.environment_cache_budget_bytes() > 0
                      ? HumanBytes(info.environment_cache_budget_bytes())
                      : std::string("none"))
              << '\n';
  }
  if (info.executors_size() > 0) {
    std::cout << "executors:     " << absl::StrJoin(info.executors(), ", ") << '\n';
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

void AddDaemonStatusCommand(CLI::App& daemon, CommandContext& ctx) {
  auto* cmd = daemon.add_subcommand("status", "show whether amld runs, its pid, uptime and queue");
  cmd->callback([&ctx] { ctx.action = [&ctx] { return RunDaemonStatus(ctx.global); }; });
}

}  // namespace amld::client::commands
