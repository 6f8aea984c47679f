// SocketListener: the daemon's Unix socket. gRPC cannot tell who is calling
// over a socket it listens on itself, so the daemon listens, accepts each
// connection, reads the caller's credentials (SO_PEERCRED), refuses callers
// other than the daemon's own user (user mode; a shared listener, for
// `amld --system`, accepts every user and access is decided per call,
// daemon/services/access.h), and hands the connection to
// the gRPC server (grpc::AddInsecureChannelFromFd). Handlers then find the
// caller's uid from ServerContext::peer() ("fd:N").
//
// The socket is either bound here — its folder created 0700, the socket made
// 0600 (shared: 0755 and 0666), a stale socket left by a dead daemon
// replaced — or inherited from
// systemd socket activation (LISTEN_PID/LISTEN_FDS, fd 3).
//
// Thread-safety: thread-safe. One accept thread, blocked in poll(2) while
// idle.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"

namespace grpc {
class Server;
}
namespace spdlog {
class logger;
}

namespace amld::daemon {

class SocketListener {
 public:
  // Creates the socket at `path`. FAILED_PRECONDITION when a live daemon
  // answers there, or the path is something other than a socket, or its
  // folder belongs to another user.
  static absl::StatusOr<std::unique_ptr<SocketListener>> Bind(const std::filesystem::path& path,
                                                              bool shared = false);
  // Takes an already listening Unix socket (from systemd). INVALID_ARGUMENT
  // when `fd` is not one.
  static absl::StatusOr<std::unique_ptr<SocketListener>> Adopt(int fd, bool shared = false);
  // The listening fd passed by systemd socket activation, or -1 when this
  // process was not socket-activated. Clears LISTEN_PID/LISTEN_FDS/
  // LISTEN_FDNAMES so children do not inherit them.
  static int TakeSocketActivationFd();

  ~SocketListener();  // Stop()

  const std::filesystem::path& path() const { return path_; }

  // Starts accepting; every accepted connection from an allowed caller is
  // added to `server`, which must outlive Stop().
  void Serve(grpc::Server* server, std::shared_ptr<spdlog::logger> log);
  // Stops accepting and joins the accept thread; removes the socket file
  // when this listener created it. Idempotent.
  void Stop();

  // The uid of the caller on the connection `peer` names (ServerContext::
  // peer(), "fd:N"); nullopt when unknown.
  std::optional<uid_t> UidOfPeer(const std::string& peer) const;

 private:
  SocketListener(amld::base::ScopedFd fd, std::filesystem::path path, bool owns_file,
                 bool shared);
  void AcceptLoop(grpc::Server* server);
  void HandleConnection(grpc::Server* server, int fd);

  amld::base::ScopedFd listen_fd_;
  amld::base::ScopedFd wake_fd_;
  std::filesystem::path path_;
  bool owns_file_;
  const bool shared_;  // every uid may connect
  ino_t socket_inode_ = 0;
  std::shared_ptr<spdlog::logger> log_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  // Refreshed on every accept: fd numbers are reused after a close.
  absl::flat_hash_map<int, uid_t> uid_by_fd_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
