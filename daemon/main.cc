// amld: the daemon's command line. Everything else lives in daemon.h.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "daemon/daemon.h"
#include "storage/workspace_paths.h"

int main(int argc, char** argv) {
  CLI::App app{"amld: runs ML training scripts submitted with `aml` (user mode)", "amld"};
  amld::daemon::DaemonOptions options;
  std::string data_dir;
  std::string socket;
  std::string shim;
  int kill_grace_seconds = 10;
  bool foreground = true;
  app.add_option("--data-dir", data_dir,
                 "workspace folder (default $AMLD_DATA_DIR, else ~/.local/share/amld)");
  app.add_option("--socket", socket,
                 "Unix socket to listen on (default $AMLD_SOCKET, else "
                 "$XDG_RUNTIME_DIR/amld/amld.sock, else /tmp/amld-$UID/amld.sock)");
  app.add_option("--max-concurrent-runs", options.max_concurrent_runs,
                 "runs at once on this machine (default: number of cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kill-grace-seconds", kill_grace_seconds,
                 "seconds between SIGTERM and SIGKILL on cancel or timeout")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--shim", shim, "path of amld-shim (default: beside amld)");
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
      data_dir.empty() ? amld::storage::DefaultDataDir() : std::filesystem::path(data_dir);
  options.socket_path =
      socket.empty() ? amld::storage::DefaultSocketPath() : std::filesystem::path(socket);
  options.shim_path = shim;
  options.kill_grace = absl::Seconds(kill_grace_seconds);
  absl::Status status = amld::daemon::Run(std::move(options));
  if (!status.ok()) {
    std::fprintf(stderr, "amld: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
