#include "client/connection.h"

#include <grpc/grpc.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <system_error>

#include "amld/v1/daemon.grpc.pb.h"
#include "client/grpc_status.h"

namespace amld::client {

namespace {
std::atomic<bool> hold_grpc{false};
}  // namespace

void HoldGrpcFromFirstChannel() { hold_grpc = true; }

std::shared_ptr<grpc::Channel> MakeChannel(const std::filesystem::path& socket) {
  if (hold_grpc) {
    static std::once_flag once;
    std::call_once(once, [] { grpc_init(); });
  }
  grpc::ChannelArguments args;
  // Log and file chunks are at most a few MiB; leave room above gRPC's 4 MiB
  // default so a daemon with larger chunks still works.
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(-1);
  // Reconnect quickly after a daemon restart instead of gRPC's long backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials(),
                                   args);
}

absl::StatusOr<amld::v1::DaemonInfo> GetDaemonInfo(const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::filesystem::path& socket,
                                                   absl::Duration timeout) {
  std::error_code ec;
  if (!std::filesystem::exists(socket, ec)) return DaemonNotRunningError(socket);
  auto stub = amld::v1::Daemon::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  amld::v1::DaemonInfo info;
  grpc::Status st = stub->GetInfo(&ctx, amld::v1::GetInfoRequest(), &info);
  if (!st.ok()) return FromGrpcStatus(st, "ask amld for its info", socket);
  return info;
}

absl::StatusOr<Connection> Connect(const std::filesystem::path& socket) {
  Connection conn;
  conn.socket_path = socket;
  conn.channel = MakeChannel(socket);
  auto info = GetDaemonInfo(conn.channel, socket);
  if (!info.ok()) return info.status();
  conn.info = *std::move(info);
  return conn;
}

}  // namespace amld::client
