// Where a workspace lives, shared by the daemon (to listen) and the clients
// (to connect), so both always agree.
//
// User mode (one user's daemon):
//   socket:   $AMLD_SOCKET, else $XDG_RUNTIME_DIR/amld/amld.sock, else
//             /tmp/amld-$UID/amld.sock
//   data dir: $AMLD_DATA_DIR, else $XDG_DATA_HOME/amld, else
//             ~/.local/share/amld
// System mode (`amld --system`, one daemon shared by the machine's users):
//   socket:   /run/amld/amld.sock ($AMLD_SYSTEM_SOCKET names another, for
//             tests and unusual installs)
//   data dir: /var/lib/amld
// A client that is given no socket talks to the user daemon when one
// answers, else to the system daemon when its socket exists (ClientSocketPath).
//
// Thread-safety: thread-safe (reads the environment only).
#pragma once

#include <filesystem>

namespace amld::base {

std::filesystem::path DefaultSocketPath();
std::filesystem::path DefaultDataDir();

std::filesystem::path SystemSocketPath();
inline constexpr char kSystemDataDir[] = "/var/lib/amld";

// The socket a client connects to: $AMLD_SOCKET when set; else the user
// daemon's socket when a daemon answers there, or when no system socket
// exists (so errors name the user daemon to start); else SystemSocketPath().
std::filesystem::path ClientSocketPath();

}  // namespace amld::base
