// Server streams that stay open while they wait (WaitRun, StreamLogs,
// Health.Watch) run on gRPC's sync API: an open stream holds one thread of
// the server's pool and sleeps on a condition that whoever has news signals
// (the run manager's listener, the file watcher, the daemon stopping).
//
// Not on the callback API, on purpose: gRPC 1.51 runs callback-API reactors
// (and its built-in health service) on a completion queue drained by
// "nexting" threads that hold the server's epoll poller while they sleep
// 100 ms after each idle second, so one unrelated unary call a second waited
// up to 100 ms (docs/performance.md, "Status call p99"). With no reactor
// registered that queue is never created.
#pragma once

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class ServerContext;
class Status;
}

namespace amld::daemon {

// How often a waiting stream asks whether its call was cancelled: gRPC's
// sync API tells a handler only when asked. A client that goes away is
// noticed at the next write, or within this while the stream waits.
inline constexpr absl::Duration kCancelCheckInterval = absl::Milliseconds(200);

// Waits under `mu` until `ready` holds, and returns OK; or returns what the
// stream should end with: CANCELLED when `context`'s call is cancelled first
// (the client went away, or the server's shutdown deadline passed),
// UNAVAILABLE when `stopping` (may be null) is set first: the daemon is
// stopping, and a client that follows resumes once it is back.
grpc::Status AwaitForStream(absl::Mutex& mu, const absl::Condition& ready,
                            grpc::ServerContext* context, const std::atomic<bool>* stopping)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

// What a stream returns when a write fails: the client is gone.
grpc::Status ClientWentAway();

}  // namespace amld::daemon
