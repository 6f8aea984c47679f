// `aml run show`: everything the daemon records about one run.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/sweep_children.h"
#include "client/commands/output.h"
#include "absl/strings/str_split.h"
#include "client/follow.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct ShowOptions {
  RunRef run;
};

void Field(std::ostream& out, std::string_view name, const std::string& value) {
  if (value.empty()) return;
  out << name << ':' << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ') << value << '\n';
}

std::string GitLine(const amld::v1::GitInfo& g) {
  if (g.commit().empty() && g.repository_uri().empty() && g.branch().empty()) return "";
  std::string s = g.repository_uri().empty() ? "(no origin)" : g.repository_uri();
  if (!g.branch().empty()) absl::StrAppend(&s, " branch ", g.branch());
  if (!g.commit().empty()) absl::StrAppend(&s, " commit ", g.commit());
  if (g.dirty()) absl::StrAppend(&s, " (dirty)");
  return s;
}

template <typename Map>
std::string JoinMap(const Map& m) {
  std::vector<std::string> items;
  for (const auto& [k, v] : m) items.push_back(absl::StrCat(k, "=", v));
  std::sort(items.begin(), items.end());
  return absl::StrJoin(items, ", ");
}

std::string EnvironmentText(const amld::v1::RunConfig& c) {
  if (!IsLocalTarget(c)) return absl::StrCat("the login environment of ", c.compute_target());
  if (!c.has_submitter_environment()) return "the daemon's (submitted with --daemon-env)";
  const auto& e = c.submitter_environment();
  std::string text = absl::StrCat("the submitter's, ", e.variables_size(), " variables");
  if (e.left_out_size() > 0) {
    absl::StrAppend(&text, "; left out: ", absl::StrJoin(e.left_out(), " "),
                    " (--pass-env NAME sends one)");
  }
  return text;
}

void PrintRun(const amld::v1::Run& r) {
  const auto& c = r.config();
  std::ostream& out = std::cout;
  Field(out, "run", r.id());
  Field(out, "experiment", c.experiment_name());
  Field(out, "display name", c.display_name());
  Field(out, "status", StatusName(r.status()));
  Field(out, "exit status", ExitStatusText(r));
  // The reason of a run that failed by its exit is that exit: said once.
  if (r.error() != ExitStatusText(r)) Field(out, "reason", r.error());
  Field(out, "queue wait", HumanDuration(QueueWait(r)));
  if (const absl::Duration d = RunDuration(r); d > absl::ZeroDuration()) {
    Field(out, "run time", HumanDuration(d));
  }
  Field(out, "script", c.script());
  Field(out, "command", c.command());
  Field(out, "arguments", absl::StrJoin(c.arguments(), " "));
  Field(out, "compute", c.compute_target().empty() ? "local" : c.compute_target());
  Field(out, "placement", r.placement());
  Field(out, "priority", std::to_string(c.priority()));
  const int cpus = c.resources().cpus() > 0 ? c.resources().cpus() : 1;
  Field(out, "resources", absl::StrCat(cpus, cpus == 1 ? " CPU slot, " : " CPU slots, ",
                                       c.resources().gpus(),
                                       c.resources().gpus() == 1 ? " GPU" : " GPUs"));
  Field(out, "GPUs", absl::StrJoin(r.assigned_gpus(), ","));
  if (c.command().empty()) Field(out, "interpreter", InterpreterText(c));
  Field(out, "environment", EnvironmentText(c));
  if (c.has_environment()) Field(out, "env", JoinMap(c.environment().environment_variables()));
  if (c.max_run_duration_seconds() > 0) {
    Field(out, "max duration", absl::StrCat(c.max_run_duration_seconds(), " s"));
  }
  Field(out, "tags", JoinMap(r.tags()));  // as changed since submit
  Field(out, "properties", JoinMap(r.properties()));
  Field(out, "git", GitLine(c.git()));
  Field(out, "snapshot",
        absl::StrCat(c.snapshot_root().hash(), "/", c.snapshot_root().size_bytes()));
  Field(out, "submitted by", absl::StrCat("uid ", r.submitter_uid()));
  Field(out, "parent run", r.parent_run_id());
  out << "history:\n";
  for (const auto& t : r.history()) {
    out << "  " << StatusName(t.status())
        << std::string(StatusName(t.status()).size() < 17 ? 17 - StatusName(t.status()).size() : 1,
                       ' ')
        << FormatTimestamp(t.time(), /*millis=*/true);
    if (!t.reason().empty()) out << "  " << t.reason();
    out << '\n';
  }
}

// Lines of the log a failed run's show ends with.
constexpr int kFailureTailLines = 10;

// For a failed run: the last lines of its output (or, when it wrote none,
// of the supervisor's log: a run that never started) and where the rest is.
void PrintFailureTail(const Connection& conn, const amld::v1::Run& r) {
  for (const char* path : {"user_logs/std_log.txt", "system_logs/amld-shim.log"}) {
    auto tail = ReadLogTail(conn, r.id(), path, kFailureTailLines);
    if (!tail.ok() || tail->text.empty()) continue;
    std::cout << "last lines of " << path << ":\n";
    absl::string_view text = tail->text;
    if (text.back() == '\n') text.remove_suffix(1);
    for (absl::string_view line : absl::StrSplit(text, '\n')) std::cout << "  " << line << '\n';
    std::cout << "the whole log: aml run logs " << r.id()
              << (std::string_view(path).starts_with("user_logs/") ? ""
                                                                   : std::string(" --path ") + path)
              << "; every file: aml run files " << r.id() << " --all\n";
    return;
  }
  std::cout << "the run wrote no output; its files: aml run files " << r.id() << " --all\n";
}

// For a distributed run: each process with its node, pid and exit, from
// system_logs/amld-processes.json (daemon/executors/launch/launch_protocol.h),
// which amld-launch writes when the processes have ended.
void PrintProcesses(const Connection& conn, const amld::v1::Run& r) {
  const amld::v1::DistributedConfig& d = r.config().distributed();
  if (d.config_case() == amld::v1::DistributedConfig::CONFIG_NOT_SET) return;
  auto list = ReadLogTail(conn, r.id(), "system_logs/amld-processes.json", 100000);
  nlohmann::json processes = list.ok() ? nlohmann::json::parse(list->text, nullptr, false)
                                       : nlohmann::json();
  if (!processes.is_array() || processes.empty()) {
    std::cout << "processes:     listed when they have ended; each one's output: aml run logs "
              << r.id() << " --rank N\n";
    return;
  }
  std::cout << "processes:\n";
  for (const nlohmann::json& p : processes) {
    if (!p.is_object()) continue;
    const int code = p.value("exit_code", -1);
    const int sig = p.value("signal", 0);
    std::cout << "  rank " << p.value("rank", -1) << "  node " << p.value("node", std::string("?"))
              << "  pid " << p.value("pid", 0) << "  "
              << (sig != 0    ? absl::StrCat("killed by signal ", sig)
                  : code >= 0 ? absl::StrCat("exit ", code)
                              : std::string("no exit recorded"))
              << '\n';
  }
}

// For a sweep's parent: its children and the best of them by the primary
// metric (`aml sweep show` has the whole table).
void PrintSweepSummary(const Connection& conn, const amld::v1::Run& r) {
  const amld::v1::SweepSpec& spec = r.config().sweep();
  auto children = RankSweepChildren(conn, r);
  if (!children.ok()) {
    std::cout << "children: cannot list them: " << children.status().message() << '\n';
    return;
  }
  Field(std::cout, "children",
        spec.max_total_runs() > 0
            ? absl::StrCat(children->size(), " of at most ", spec.max_total_runs())
            : absl::StrCat(children->size()));
  if (!children->empty() && children->front().best) {
    const SweepChild& best = children->front();
    Field(std::cout, "best child",
          absl::StrCat(best.run.id(), "  ", spec.primary_metric_name(), " ", *best.best, " (",
                       spec.primary_metric_goal() == amld::v1::PrimaryMetricGoal::MAXIMIZE
                           ? "maximize"
                           : "minimize",
                       ")"));
  } else {
    Field(std::cout, "best child",
          absl::StrCat("none yet: no child has logged ", spec.primary_metric_name()));
  }
  std::cout << "every child: aml sweep show " << r.id() << '\n';
}

int RunShow(const GlobalOptions& global, const ShowOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto found = ResolveRun(*conn, o.run);
  if (!found.ok()) return ReportError(global, found.status());
  const amld::v1::Run& run = *found;
  if (global.json()) {
    std::cout << ProtoToJson(run) << std::endl;
  } else {
    PrintRun(run);
    if (run.config().has_sweep()) PrintSweepSummary(*conn, run);
    PrintProcesses(*conn, run);
    if (run.status() == amld::v1::RunStatus::FAILED) PrintFailureTail(*conn, run);
  }
  return kExitOk;
}

}  // namespace

void AddRunShowCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<ShowOptions>();
  auto* cmd = run.add_subcommand(
      "show",
      "show a run: status with the time of each, queue wait, run time, exit status and reason, "
      "resources, git info, tags");
  AddRunArgument(*cmd, o->run);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunShow(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
