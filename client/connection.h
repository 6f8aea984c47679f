// Connection to a running amld over its Unix socket.
//
// Connect() opens a channel to `unix:<socket>` and asks Daemon.GetInfo once,
// so a missing daemon is reported right away with the fix ("start it with
// `aml daemon start`") instead of surfacing later from some other call, and
// the caller learns the daemon's limits (max_batch_bytes) up front.
// Calls fail fast when nothing listens (gRPC's wait_for_ready is off).
//
// Thread-safety: a Connection is immutable after Connect(); its channel is
// thread-safe and may be shared by any number of stubs and threads.
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/daemon.pb.h"

namespace grpc {
class Channel;
}

namespace amld::client {

struct Connection {
  std::filesystem::path socket_path;
  std::shared_ptr<grpc::Channel> channel;
  // The daemon's answer to GetInfo at connect time.
  amld::v1::DaemonInfo info;
};

// A channel to `unix:<socket>`; nothing is sent yet.
std::shared_ptr<grpc::Channel> MakeChannel(const std::filesystem::path& socket);

// For a process that ends with _exit (aml): the first channel made after
// this call also takes a reference to gRPC that is never given back, so gRPC
// is not shut down (joining its threads, several ms) whenever the last
// channel goes, while a command that makes no call (--version, --help,
// completion) never starts gRPC's threads at all.
void HoldGrpcFromFirstChannel();

// One Daemon.GetInfo call with a deadline. UNAVAILABLE (with the "not
// running" message) when nothing answers at the socket.
absl::StatusOr<amld::v1::DaemonInfo> GetDaemonInfo(const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::filesystem::path& socket,
                                                   absl::Duration timeout = absl::Seconds(10));

// Connects and asks GetInfo; see the file comment.
absl::StatusOr<Connection> Connect(const std::filesystem::path& socket);

}  // namespace amld::client
