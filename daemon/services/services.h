// The gRPC services of the amld.v1 contract (proto/amld/v1): Runs, Cas,
// Experiments, Daemon, Snapshots, ComputeTargets, Environments, Models. Each handler is thin: it checks the request's shape,
// calls the run manager or the stores, and converts the result with
// ToGrpcStatus (grpc_status.h). The generated *.grpc.pb.h headers stay in the
// .cc files; callers see only grpc::Service.
//
// Calling conventions: every RPC uses gRPC's sync API (its thread pool may
// block briefly on SQLite or the disk); the long-lived server streams WaitRun
// and StreamLogs (run_streams.h) hold a thread while they wait for a status
// change or log growth, and never use the callback API (sync_stream.h).
//
// Thread-safety: services are thread-safe; everything in ServiceDeps must
// outlive the grpc::Server they are registered with.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "daemon/services/access.h"
#include "daemon/watch/file_watcher.h"
#include "daemon/runs/run_manager.h"
#include "storage/cas.h"
#include "storage/state/gc.h"
#include "storage/state/state_store.h"

namespace grpc {
class Service;
class ServerContextBase;
}
namespace spdlog {
class logger;
}

namespace amld::daemon {

class ExecutorRegistry;
class SweepController;

// Largest BatchUpdateBlobs request accepted (DaemonInfo.max_batch_bytes).
inline constexpr int64_t kMaxBatchBytes = 4 << 20;
// Data per message of StreamLogs, DownloadFile.
inline constexpr int64_t kStreamChunkBytes = 1 << 20;

// Counters since start, shown by GetInfo.
struct DaemonCounters {
  std::atomic<int64_t> cas_blobs_uploaded{0};
  std::atomic<int64_t> cas_bytes_uploaded{0};
};

// Facts GetInfo reports that do not change while the daemon runs.
struct DaemonFacts {
  std::string version;
  std::filesystem::path data_dir;
  std::filesystem::path socket_path;
  int64_t pid = 0;
  absl::Time start_time;
  std::vector<std::string> executors;
};

struct ServiceDeps {
  RunManager* runs = nullptr;
  amld::storage::StateStore* store = nullptr;
  amld::storage::ContentStore* cas = nullptr;
  FileWatcher* watcher = nullptr;
  base::Clock* clock = nullptr;
  DaemonCounters* counters = nullptr;
  // The uid behind ServerContext::peer(); nullopt when unknown (then the
  // daemon's own uid is assumed: only it can connect in user mode).
  std::function<std::optional<uid_t>(const std::string& peer)> uid_of_peer;
  DaemonFacts facts;
  // The executors by compute target (ComputeTargets retires a deleted
  // target's); may be null in tests that define no targets.
  ExecutorRegistry* executors = nullptr;
  // Set when the daemon begins to stop: open streams (WaitRun, StreamLogs)
  // then end with UNAVAILABLE within kCancelCheckInterval (sync_stream.h),
  // instead of holding the server's shutdown until its deadline. May be null.
  const std::atomic<bool>* stopping = nullptr;
  // The daemon's log; may be null.
  std::shared_ptr<spdlog::logger> log;
  // Runs sweeps (SubmitRun of a config with a sweep); null: sweeps are
  // refused with UNIMPLEMENTED.
  SweepController* sweeps = nullptr;
  // Who may do what (access.h); the default allows everything (user mode).
  AccessPolicy access;
  // The CAS's garbage collector (Daemon.CollectGarbage, GetInfo's last_gc);
  // null: CollectGarbage is UNIMPLEMENTED.
  amld::storage::CasCollector* gc = nullptr;
};

// The uid of the caller on the connection `peer` (ServerContext::peer())
// names; the daemon's own uid when unknown (only it can connect in user mode).
uid_t PeerUid(const ServiceDeps& deps, const std::string& peer);

// Who makes `context`'s call: PeerUid of its connection, or for the
// daemon's in-process channel (the web view) the uid it names in
// base::kViewerUidMetadata (base/viewer_metadata.h says why that is safe).
uid_t CallerUid(const ServiceDeps& deps, const grpc::ServerContextBase& context);

std::unique_ptr<grpc::Service> NewRunsService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewCasService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewExperimentsService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewDaemonService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewComputeTargetsService(const ServiceDeps& deps);
// Registered and curated environments (deps.runs->environment_registry()).
std::unique_ptr<grpc::Service> NewEnvironmentsService(const ServiceDeps& deps);

// Registered models (proto amld/v1/models.proto).
std::unique_ptr<grpc::Service> NewModelsService(const ServiceDeps& deps);

class WatchedRoots;
// Snapshots (watched source roots); `roots` must outlive the server. In
// system mode only admins may use them (access.h); `uid_of_peer` as in
// ServiceDeps.
std::unique_ptr<grpc::Service> NewSnapshotsService(WatchedRoots* roots,
                                                   const ServiceDeps& deps);

}  // namespace amld::daemon
