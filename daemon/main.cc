// amld: the daemon's command line. Flags override the config file
// (daemon/config.h); everything else lives in daemon.h.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
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
  CLI::App app{"amld: runs ML training scripts submitted with `aml` (user mode)", "amld"};
  amld::daemon::DaemonOptions options;
  std::string data_dir;
  std::string socket;
  std::string shim;
  std::string config_path;
  std::string gpus;
  int max_concurrent_runs = 0;
  int cpus = 0;
  int64_t kill_grace_seconds = 10;
  int64_t keep_finished_run_folders = 20;
  int64_t default_run_duration_seconds = 0;
  int64_t max_run_duration_seconds = 0;
  bool foreground = true;
  app.add_option("--data-dir", data_dir,
                 "workspace folder (default $AMLD_DATA_DIR, else ~/.local/share/amld)");
  app.add_option("--socket", socket,
                 "Unix socket to listen on (default $AMLD_SOCKET, else "
                 "$XDG_RUNTIME_DIR/amld/amld.sock, else /tmp/amld-$UID/amld.sock)");
  app.add_option("--config", config_path,
                 "YAML config file (default <data dir>/amld.yaml when it exists); flags "
                 "override it");
  app.add_option("--max-concurrent-runs", max_concurrent_runs,
                 "runs at once on this machine (default: number of cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cpus", cpus, "CPU slots runs draw on (default: number of cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--gpus", gpus,
                 "GPU ids handed to runs through CUDA_VISIBLE_DEVICES, e.g. 0,1 (default: none)");
  app.add_option("--kill-grace-seconds", kill_grace_seconds,
                 "seconds between SIGTERM and SIGKILL on cancel or timeout (default 10)")
      ->check(CLI::NonNegativeNumber);
  // Checked with the file's value (ApplyDaemonConfig): -1 is allowed.
  app.add_option("--keep-finished-run-folders", keep_finished_run_folders,
                 "folders of the newest finished runs kept under <data dir>/runs; older ones "
                 "are removed, their files stay stored (default 20; 0: remove each once its run "
                 "has ended; -1: keep all)");
  app.add_option("--default-run-duration-seconds", default_run_duration_seconds,
                 "time limit of runs that set none (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-run-duration-seconds", max_run_duration_seconds,
                 "longest time limit a run may ask for (default 0: no cap)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--shim", shim, "path of amld-shim (default: beside amld)");
  app.add_option("--max-snapshot-bytes", options.max_snapshot_bytes,
                 "largest snapshot of a watched source root, in bytes (default 2 GiB; 0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-snapshot-files", options.max_snapshot_files,
                 "most files in a snapshot of a watched source root (default 100000; 0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--foreground", foreground,
               "stay in the foreground (the default; `aml daemon start` backgrounds amld)");
  app.set_version_flag("--version", AMLD_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return e.get_exit_code() == 0 ? 0 : (code == 0 ? 0 : 2);
  }
  options.data_dir =
      data_dir.empty() ? amld::base::DefaultDataDir() : std::filesystem::path(data_dir);
  options.socket_path =
      socket.empty() ? amld::base::DefaultSocketPath() : std::filesystem::path(socket);
  options.shim_path = shim;

  amld::daemon::DaemonConfig flags;
  if (app.count("--max-concurrent-runs") > 0) flags.max_concurrent_runs = max_concurrent_runs;
  if (app.count("--cpus") > 0) flags.cpus = cpus;
  if (app.count("--kill-grace-seconds") > 0) flags.kill_grace_seconds = kill_grace_seconds;
  if (app.count("--keep-finished-run-folders") > 0) {
    flags.keep_finished_run_folders = keep_finished_run_folders;
  }
  if (app.count("--default-run-duration-seconds") > 0) {
    flags.default_run_duration_seconds = default_run_duration_seconds;
  }
  if (app.count("--max-run-duration-seconds") > 0) {
    flags.max_run_duration_seconds = max_run_duration_seconds;
  }
  if (app.count("--gpus") > 0) {
    absl::StatusOr<std::vector<int>> ids = amld::daemon::ParseGpuList(gpus);
    if (!ids.ok()) return Fail(absl::StrCat("--gpus: ", ids.status().message()));
    flags.gpus = *ids;
  }
  amld::daemon::DaemonConfig file;
  if (std::optional<std::filesystem::path> path =
          amld::daemon::ConfigFileToRead(config_path, options.data_dir)) {
    absl::StatusOr<amld::daemon::DaemonConfig> loaded = amld::daemon::LoadDaemonConfigFile(*path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    file = *loaded;
    options.config_file = *path;
  }
  absl::Status applied =
      amld::daemon::ApplyDaemonConfig(amld::daemon::Overlay(file, flags), &options);
  if (!applied.ok()) return Fail(std::string(applied.message()));

  absl::Status status = amld::daemon::Run(std::move(options));
  if (!status.ok()) return Fail(std::string(status.message()));
  return 0;
}
