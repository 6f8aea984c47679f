// Where a user-mode workspace lives, shared by the daemon (to listen) and
// the clients (to connect), so both always agree.
//
//   socket:   $AMLD_SOCKET, else $XDG_RUNTIME_DIR/amld/amld.sock, else
//             /tmp/amld-$UID/amld.sock
//   data dir: $AMLD_DATA_DIR, else $XDG_DATA_HOME/amld, else
//             ~/.local/share/amld
//
// Thread-safety: thread-safe (reads the environment only).
#pragma once

#include <filesystem>

namespace amld::base {

std::filesystem::path DefaultSocketPath();
std::filesystem::path DefaultDataDir();

}  // namespace amld::base
