// amld: the daemon's command line. Flags override the config file
// (daemon/config.h); everything else lives in daemon.h.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "base/workspace_paths.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "amld: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amld: runs ML training scripts submitted with `aml` (user mode, or --system)", "amld"};
  // Flags write straight into the options struct that owns each setting.
  amld::daemon::DaemonOptions options;
  amld::daemon::RunManagerOptions& runs = options.runs;
  std::string config_path;
  std::string gpus;
  bool foreground = true;
  app.add_option("--data-dir", options.data_dir,
                 "workspace folder (default $AMLD_DATA_DIR, else ~/.local/share/amld)");
  app.add_option("--socket", options.socket_path,
                 "Unix socket to listen on (default $AMLD_SOCKET, else "
                 "$XDG_RUNTIME_DIR/amld/amld.sock, else /tmp/amld-$UID/amld.sock)");
  app.add_option("--config", config_path,
                 "YAML config file (default <data dir>/amld.yaml when it exists); flags "
                 "override it");
  app.add_option("--max-concurrent-runs", runs.max_concurrent_runs,
                 "runs at once on this machine (default: number of cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cpus", runs.cpus, "CPU slots runs draw on (default: number of cores)")
      ->check(CLI::NonNegativeNumber);
  // Parsed below, to say "--gpus:" in its errors.
  app.add_option("--gpus", gpus,
                 "GPU ids handed to runs through CUDA_VISIBLE_DEVICES, e.g. 0,1 (default: none)");
  app.add_option_function<int64_t>(
         "--kill-grace-seconds", [&](int64_t seconds) { runs.kill_grace = absl::Seconds(seconds); },
         "seconds between SIGTERM and SIGKILL on cancel or timeout (default 10)")
      ->check(CLI::NonNegativeNumber);
  // Checked with the file's values (CheckDaemonOptions): -1 is allowed.
  app.add_option("--keep-finished-run-folders", runs.folders.keep_finished_run_folders,
                 "folders of the newest finished runs kept under <data dir>/runs; older ones "
                 "are removed, their files stay stored (default 20; 0: remove each once its run "
                 "has ended; -1: keep all)");
  app.add_option("--default-run-duration-seconds", runs.default_run_duration_seconds,
                 "time limit of runs that set none (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-run-duration-seconds", runs.max_run_duration_seconds,
                 "longest time limit a run may ask for (default 0: no cap)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--shim", options.shim_path, "path of amld-shim (default: beside amld)");
  app.add_option("--max-snapshot-bytes", options.watched_roots.max_snapshot_bytes,
                 "largest snapshot of a watched source root, in bytes (default 2 GiB; 0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-snapshot-files", options.watched_roots.max_snapshot_files,
                 "most files in a snapshot of a watched source root (default 100000; 0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--system", options.system_mode,
               "system mode: one daemon, run as root, shared by this machine's users; socket "
               "/run/amld/amld.sock (0666), data /var/lib/amld, each run runs as its submitter "
               "(docs/shared-workstation.md)");
  app.add_flag("--foreground", foreground,
               "stay in the foreground (the default; `aml daemon start` backgrounds amld)");
  app.set_version_flag("--version", AMLD_VERSION);
  // -1: go on; else the exit code (--help, --version, a bad flag).
  auto parse_flags = [&]() -> int {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int code = app.exit(e);
      return e.get_exit_code() == 0 ? 0 : (code == 0 ? 0 : 2);
    }
    return -1;
  };
  // The flags name the data dir and the config file...
  if (int code = parse_flags(); code >= 0) return code;
  if (options.system_mode) {
    if (options.data_dir.empty()) options.data_dir = amld::base::kSystemDataDir;
    if (options.socket_path.empty()) options.socket_path = amld::base::SystemSocketPath();
  }
  if (options.data_dir.empty()) options.data_dir = amld::base::DefaultDataDir();
  if (options.socket_path.empty()) options.socket_path = amld::base::DefaultSocketPath();
  if (std::optional<std::filesystem::path> path =
          amld::daemon::ConfigFileToRead(config_path, options.data_dir)) {
    absl::Status loaded = amld::daemon::LoadDaemonConfigFile(*path, &options);
    if (!loaded.ok()) return Fail(std::string(loaded.message()));
    options.config_file = *path;
    // ...and override it: parsed again, over what the file set.
    if (int code = parse_flags(); code >= 0) return code;
  }
  if (app.count("--gpus") > 0) {
    absl::StatusOr<std::vector<int>> ids = amld::daemon::ParseGpuList(gpus);
    if (!ids.ok()) return Fail(absl::StrCat("--gpus: ", ids.status().message()));
    runs.gpus = *ids;
  }
  absl::Status checked = amld::daemon::CheckDaemonOptions(options);
  if (!checked.ok()) return Fail(std::string(checked.message()));

  absl::Status status = amld::daemon::Run(std::move(options));
  if (!status.ok()) return Fail(std::string(status.message()));
  return 0;
}
