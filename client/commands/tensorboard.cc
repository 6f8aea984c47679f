// `aml tensorboard RUN...`: TensorBoard over runs' logs/ (the azureml
// Tensorboard's job; the SDK's amld.tensorboard runs this command).
//
// A LogMirror (client/log_mirror.h) keeps <logdir>/<run id>/ in line with
// each run's logs/ as the daemon stores them — live from any target while
// the run runs, restored from the store once it has ended — once a second,
// until Ctrl-C (or SIGTERM). TensorBoard is `--tensorboard`, else
// $AMLD_TENSORBOARD, else `tensorboard` on PATH, started as
//   tensorboard --logdir_spec <run id>:<folder>,... --port P --host 127.0.0.1
// after the first pass; its URL is printed once it accepts connections.
// Without one, a message says how to install it, and the mirror goes on all
// the same (the folder can be given to a TensorBoard started elsewhere).
// With --output json, one line {"url", "logdir", "runs", "tensorboard",
// "message"} is printed when ready; TensorBoard's own output goes to stderr.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "client/commands/command.h"
#include "client/interrupt.h"
#include "client/log_mirror.h"

namespace amld::client::commands {
namespace {

struct TensorboardOptions {
  RunRefs runs;
  std::string logdir;
  int port = 6006;
  std::string tensorboard;
  bool no_open = false;
};

constexpr char kInstallHint[] =
    "TensorBoard is not installed here: install it with `pip install tensorboard` (or point "
    "AMLD_TENSORBOARD or --tensorboard at one)";

std::string FindTensorboard(const TensorboardOptions& options) {
  if (!options.tensorboard.empty()) return options.tensorboard;
  if (const char* env = std::getenv("AMLD_TENSORBOARD"); env != nullptr && *env != '\0') {
    return env;
  }
  return FindOnPath("tensorboard");
}

std::filesystem::path DefaultLogdir() {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  if (cache != nullptr && *cache == '/') return std::filesystem::path(cache) / "amld/tensorboard";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/tmp") / ".cache/amld/tensorboard";
}

bool Accepts(int port) {
  amld::base::ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// "exited with code 1", "was killed by signal 9"; empty while it runs.
std::string Exited(pid_t pid) {
  int status;
  if (::waitpid(pid, &status, WNOHANG) != pid) return "";
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  return absl::StrCat("was killed by signal ", WTERMSIG(status));
}

int RunTensorboard(const GlobalOptions& global, const TensorboardOptions& options) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  absl::StatusOr<std::vector<amld::v1::Run>> runs = ResolveRuns(*conn, options.runs);
  if (!runs.ok()) return ReportError(global, runs.status());
  std::vector<std::string> ids;
  for (const auto& r : *runs) ids.push_back(r.id());
  const std::filesystem::path logdir =
      std::filesystem::absolute(
      options.logdir.empty() ? DefaultLogdir() : std::filesystem::path(options.logdir));
  if (logdir.string().find_first_of(",:") != std::string::npos) {
    return ReportError(global, absl::InvalidArgumentError(absl::StrCat(
                                   "the log folder ", logdir.string(),
                                   " holds a ',' or ':', which TensorBoard's --logdir_spec cannot "
                                   "carry: give another with --logdir")));
  }
  LogMirror mirror(&*conn, ids, logdir);
  Interrupt interrupt;
  SigintInterrupt on_sigint(&interrupt);
  absl::StatusOr<LogMirror::Pass> first = mirror.Sync(&interrupt);
  if (!first.ok()) return ReportError(global, first.status());

  const std::string tensorboard = FindTensorboard(options);
  std::string url, message;
  pid_t child = -1;
  if (tensorboard.empty()) {
    message = absl::StrCat(kInstallHint, ". The logs are mirrored to ", logdir.string(),
                           " and followed until Ctrl-C.");
  } else {
    std::vector<std::string> spec;
    for (const std::string& id : ids) spec.push_back(absl::StrCat(id, ":", mirror.RunFolder(id).string()));
    absl::StatusOr<pid_t> pid =
        StartHelper({tensorboard, "--logdir_spec", absl::StrJoin(spec, ","), "--port",
                     absl::StrCat(options.port), "--host", "127.0.0.1"},
                    HelperOutput::kToOurStderr);
    if (!pid.ok()) return ReportError(global, pid.status());
    child = *pid;
    // Ready when it accepts connections; a TensorBoard that ends first (a
    // busy port) says why on stderr.
    for (;;) {
      if (Accepts(options.port)) break;
      if (std::string how = Exited(child); !how.empty()) {
        return ReportError(global, absl::FailedPreconditionError(absl::StrCat(
                                       tensorboard, " ", how, " before it served port ",
                                       options.port, " (its messages are above; another port: "
                                       "--port)")));
      }
      if (interrupt.SleepFor(absl::Milliseconds(100))) break;
    }
    url = absl::StrCat("http://127.0.0.1:", options.port, "/");
  }
  if (global.json()) {
    nlohmann::json folders = nlohmann::json::object();
    for (const std::string& id : ids) folders[id] = mirror.RunFolder(id).string();
    std::cout << nlohmann::json{{"url", url.empty() ? nlohmann::json() : nlohmann::json(url)},
                                {"logdir", logdir.string()},
                                {"runs", folders},
                                {"tensorboard", tensorboard.empty() ? nlohmann::json()
                                                                    : nlohmann::json(tensorboard)},
                                {"message", message}}
                     .dump()
              << std::endl;
  } else if (!url.empty()) {
    std::cout << url << std::endl;
    std::cerr << "aml: TensorBoard over " << ids.size() << " run(s), logs mirrored to "
              << logdir.string() << "; Ctrl-C stops it" << std::endl;
  } else {
    std::cerr << "aml: " << message << std::endl;
  }
  if (!url.empty() && !options.no_open && !global.json()) (void)OpenInBrowser(url);

  bool final_reported = first->all_final;
  std::string last_error;
  int code = kExitOk;
  while (!interrupt.SleepFor(absl::Seconds(1))) {
    if (child > 0) {
      if (std::string how = Exited(child); !how.empty()) {
        std::cerr << "aml: " << tensorboard << " " << how << "; the logs stay in "
                  << logdir.string() << std::endl;
        child = -1;
        code = kExitFailure;
        break;
      }
    }
    if (final_reported) continue;
    absl::StatusOr<LogMirror::Pass> pass = mirror.Sync(&interrupt);
    if (!pass.ok()) {
      // The daemon may be restarting: say so once, keep trying.
      if (std::string e(pass.status().message()); e != last_error && !interrupt.triggered()) {
        std::cerr << "aml: " << e << " (still trying)" << std::endl;
        last_error = e;
      }
      continue;
    }
    last_error.clear();
    if (pass->all_final) {
      final_reported = true;
      std::cerr << "aml: every run has ended; its logs are complete in " << logdir.string()
                << std::endl;
    }
  }
  if (child > 0) {
    ::kill(child, SIGTERM);
    int status;
    ::waitpid(child, &status, 0);
  }
  return code;
}

}  // namespace

void AddTensorboardCommand(CLI::App& app, CommandContext& ctx) {
  auto options = std::make_shared<TensorboardOptions>();
  auto* cmd = app.add_subcommand(
      "tensorboard",
      "start TensorBoard over runs' logs/, mirrored live to a local folder (Ctrl-C stops)");
  AddRunsArgument(*cmd, options->runs);
  cmd->add_option("--logdir", options->logdir,
                  "the local folder of the runs' logs (one folder per run; default "
                  "~/.cache/amld/tensorboard)");
  cmd->add_option("--port", options->port, "TensorBoard's port (default 6006)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--tensorboard", options->tensorboard,
                  "the tensorboard program (default: $AMLD_TENSORBOARD, else on PATH)");
  cmd->add_flag("--no-open", options->no_open, "do not open the link in a browser");
  cmd->callback([&ctx, options] {
    ctx.action = [&ctx, options] { return RunTensorboard(ctx.global, *options); };
  });
}

}  // namespace amld::client::commands
