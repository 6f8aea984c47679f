#include "daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/clock.h"
#include "daemon/watch/inotify.h"
#include "daemon/executor_factories.h"
#include "daemon/executors/executor_registry.h"
#include "daemon/executors/local/local_executor.h"
#include "daemon/watch/file_watcher.h"
#include "daemon/azureml_alias.h"
#include "daemon/data_dir.h"
#include "daemon/instance_lock.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/runs/run_manager.h"
#include "daemon/runs/run_plan.h"
#include "daemon/services/health_service.h"
#include "daemon/services/services.h"
#include "daemon/sweeps/sweep_controller.h"
#include "daemon/socket_listener.h"
#include "base/task_runner.h"
#include "daemon/watch/watched_roots.h"
#include "daemon/web/web_server.h"
#include "daemon/web/web_service.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "storage/cas.h"
#include "base/file_util.h"
#include "storage/state/state_store.h"
#include "base/status_macros.h"
#include "base/workspace_paths.h"

#ifndef AMLD_VERSION
#define AMLD_VERSION "0.0.0"
#endif

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

// Open streams (WaitRun, StreamLogs) are cancelled this long after shutdown
// begins; clients reconnect to the next daemon.
constexpr absl::Duration kShutdownGrace = absl::Seconds(2);
// Work threads beyond this queue their tasks; each task is one run's
// preparation or finalization, so more threads would only fight for disk.
constexpr int kMaxWorkThreads = 32;

absl::Status MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return amld::base::ErrnoStatus(errno, "mkdir", dir);
  }
  return absl::OkStatus();
}

// True when fd 2 already writes to `log_file` (`aml daemon start` sends the
// daemon's stderr there, to catch errors printed before the logger exists):
// a second sink would write every line twice.
bool StderrIsFile(const fs::path& log_file) {
  struct stat err_st, file_st;
  return ::fstat(STDERR_FILENO, &err_st) == 0 && ::stat(log_file.c_str(), &file_st) == 0 &&
         err_st.st_dev == file_st.st_dev && err_st.st_ino == file_st.st_ino;
}

std::shared_ptr<spdlog::logger> MakeLogger(const fs::path& log_file, bool to_stderr) {
  std::vector<spdlog::sink_ptr> sinks;
  if (to_stderr && StderrIsFile(log_file)) to_stderr = false;
  if (to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  try {
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file.string()));
  } catch (const spdlog::spdlog_ex& e) {
    // Logging to the file is a convenience; the daemon works without it.
    if (!to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  auto log = std::make_shared<spdlog::logger>("amld", sinks.begin(), sinks.end());
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e amld[%P] %l: %v");
  log->flush_on(spdlog::level::info);
  return log;
}

}  // namespace

struct Daemon::Impl {
  DaemonOptions options;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<InstanceLock> lock;
  std::unique_ptr<amld::storage::StateStore> store;
  std::unique_ptr<amld::storage::ContentStore> cas;
  std::unique_ptr<FileWatcher> watcher;
  // Live ingestion of running runs' outputs/, logs/ and metrics.
  std::unique_ptr<Watcher> dir_watcher;
  std::unique_ptr<LiveIngester> ingester;
  std::unique_ptr<IngestLoop> ingest_loop;
  // Routes each run to its compute target's executor (local, ssh, ...).
  std::unique_ptr<ExecutorRegistry> executor;
  std::unique_ptr<base::ThreadPoolTaskRunner> tasks;
  std::unique_ptr<base::ThreadPoolTaskRunner> housekeeping;  // one low-priority thread
  std::unique_ptr<RunManager> runs;
  std::unique_ptr<SweepController> sweeps;
  std::unique_ptr<WatchedRoots> watched_roots;
  std::unique_ptr<WebServer> web;
  std::unique_ptr<amld::storage::CasCollector> gc;
  DaemonCounters counters;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<HealthService> health;
  std::atomic<bool> stopping{false};  // ServiceDeps::stopping
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<SocketListener> listener;
  fs::path socket_path;
  bool stopped = false;
  RunPython run_python;  // <data>/run-python, for the remote executors

  absl::Status OpenStores() {
    AMLD_RETURN_IF_ERROR(PrepareDataDir(options.data_dir, options.system_mode));
    log = MakeLogger(options.data_dir / "amld.log", options.log_to_stderr);
    AMLD_ASSIGN_OR_RETURN(lock, InstanceLock::Acquire(options.data_dir));
    AMLD_ASSIGN_OR_RETURN(store, amld::storage::StateStore::Open(options.data_dir / "amld.db"));
    AMLD_ASSIGN_OR_RETURN(cas, amld::storage::ContentStore::Open(options.data_dir / "cas"));
    AMLD_RETURN_IF_ERROR(MakePrivateDir(options.data_dir / "runs"));
    absl::StatusOr<fs::path> alias = WriteAzuremlAlias(options.data_dir, options.system_mode);
    if (alias.ok()) {
      options.runs.azureml_alias_dir = *alias;
    } else {
      log->warn("runs get no azureml alias on their PYTHONPATH: {}", alias.status().ToString());
    }
    absl::StatusOr<fs::path> python = WriteRunPython(options.data_dir, options.system_mode);
    if (python.ok()) {
      run_python = RunPython{*python, std::string(RunPythonDigest())};
    } else {
      log->warn("runs on SSH and Slurm targets get no amld SDK on their PYTHONPATH: {}",
                python.status().ToString());
    }
    return absl::OkStatus();
  }

  absl::Status StartRuns() {
    AMLD_ASSIGN_OR_RETURN(watcher, NewInotifyFileWatcher());
    AMLD_ASSIGN_OR_RETURN(dir_watcher, NewInotifyWatcher());
    ingester = std::make_unique<LiveIngester>(
        LiveIngesterDeps{store.get(), cas.get(), dir_watcher.get(), base::RealClock(), log},
        options.ingest);
    ingest_loop = std::make_unique<IngestLoop>(ingester.get(), dir_watcher.get(), base::RealClock());
    fs::path shim = options.shim_path.empty() ? ShimPathBesideExecutable() : options.shim_path;
    AMLD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> local,
                          NewLocalExecutor(LocalExecutorOptions{shim}));
    executor = std::make_unique<ExecutorRegistry>(
        std::move(local), MakeExecutorFactories({options.data_dir, shim, run_python, options.system_mode}), store.get());
    tasks = std::make_unique<base::ThreadPoolTaskRunner>(
        std::clamp(options.runs.max_concurrent_runs, 2, kMaxWorkThreads));
    housekeeping = std::make_unique<base::ThreadPoolTaskRunner>(1, base::LowerThisThreadsPriority);
    RunManagerDeps deps{store.get(), cas.get(), executor.get(), base::RealClock(), tasks.get(), log};
    deps.ingester = ingester.get();
    deps.housekeeping = housekeeping.get();
    runs = std::make_unique<RunManager>(std::move(deps), options.runs);
    AMLD_RETURN_IF_ERROR(runs->Start());
    sweeps = std::make_unique<SweepController>(
        SweepControllerDeps{runs.get(), store.get(), base::RealClock(), log});
    AMLD_RETURN_IF_ERROR(sweeps->Start());
    sweeps->StartThread();
    return absl::OkStatus();
  }

  absl::Status StartWatchedRoots() {
    watched_roots = std::make_unique<WatchedRoots>(
        WatchedRootsDeps{cas.get(), base::RealClock(), log}, options.watched_roots);
    AMLD_ASSIGN_OR_RETURN(std::unique_ptr<Watcher> tree_watcher, NewInotifyWatcher());
    return watched_roots->Start(std::move(tree_watcher));
  }

  // After the watched roots: what they hold is live.
  void StartGc() {
    amld::storage::CasCollector::Deps deps;
    deps.state = store.get();
    deps.cas = cas.get();
    WatchedRoots* roots = watched_roots.get();
    deps.extra_live = [roots](amld::storage::ExtraLive* extra) {
      roots->AddLiveDigests(&extra->roots, &extra->blobs);
    };
    RunManager* run_manager = runs.get();
    deps.on_removed = [run_manager] { run_manager->ForgetCheckedSnapshots(); };
    std::shared_ptr<spdlog::logger> logger = log;
    deps.on_report = [logger](const amld::storage::GcReport& r) {
      if (!r.status.ok()) {
        logger->error("gc stopped: {}", r.status.ToString());
        return;
      }
      logger->info("gc: {} objects removed, {} bytes freed, {} kept, {} ms",
                   r.stats.objects_removed, r.stats.bytes_removed, r.stats.objects_kept,
                   absl::ToInt64Milliseconds(r.took));
    };
    gc = std::make_unique<amld::storage::CasCollector>(std::move(deps), options.gc);
    gc->Start();
  }

  absl::Status StartServer() {
    if (options.listen_fd >= 0) {
      AMLD_ASSIGN_OR_RETURN(listener, SocketListener::Adopt(options.listen_fd, options.system_mode));
    } else {
      AMLD_ASSIGN_OR_RETURN(listener,
                            SocketListener::Bind(options.socket_path, options.system_mode));
    }
    AMLD_ASSIGN_OR_RETURN(AccessPolicy access, AccessPolicy::Create(options.access));
    socket_path = listener->path();
    ServiceDeps deps;
    deps.runs = runs.get();
    deps.store = store.get();
    deps.cas = cas.get();
    deps.watcher = watcher.get();
    deps.clock = base::RealClock();
    deps.counters = &counters;
    SocketListener* l = listener.get();
    deps.uid_of_peer = [l](const std::string& peer) { return l->UidOfPeer(peer); };
    deps.facts = DaemonFacts{AMLD_VERSION, options.data_dir, socket_path,
                             ::getpid(),   absl::Now(),      executor->Kinds()};
    deps.executors = executor.get();
    deps.log = log;
    deps.sweeps = sweeps.get();
    deps.access = std::move(access);
    deps.gc = gc.get();
    deps.stopping = &stopping;
    services.push_back(NewRunsService(deps));
    services.push_back(NewCasService(deps));
    services.push_back(NewExperimentsService(deps));
    services.push_back(NewDaemonService(deps));
    services.push_back(NewComputeTargetsService(deps));
    services.push_back(NewEnvironmentsService(deps));
    services.push_back(NewModelsService(deps));
    services.push_back(NewSnapshotsService(watched_roots.get(), deps));
    web = std::make_unique<WebServer>(options.web, log);
    services.push_back(NewWebViewService(web.get(), deps.uid_of_peer));
    // For clients nobody here wrote (IDE plugins, grpcurl): the standard
    // health service (health_service.h; not gRPC's built-in one, which runs
    // on the callback API: sync_stream.h) and server reflection
    // (grpc.reflection.v1alpha), which describes every service and message
    // from the descriptors linked into the daemon. docs/api.md says how.
    health = NewHealthService();
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    for (auto& service : services) builder.RegisterService(service.get());
    builder.RegisterService(health->service());
    // Room for a full batch plus its framing; bigger blobs go through Write.
    builder.SetMaxReceiveMessageSize(static_cast<int>(4 * kMaxBatchBytes));
    server = builder.BuildAndStart();
    if (server == nullptr) return absl::InternalError("the gRPC server did not start");
    listener->Serve(server.get(), log);
    // The web view reads through the services above, in process.
    grpc::ChannelArguments web_channel;
    web_channel.SetMaxReceiveMessageSize(-1);
    web->SetChannel(server->InProcessChannel(web_channel));
    if (options.web.enabled) return web->EnsureServing();
    return absl::OkStatus();
  }

  void Shutdown() {
    if (stopped) return;
    stopped = true;
    stopping = true;                            // open streams end (services.h)
    if (health != nullptr) health->Shutdown();  // NOT_SERVING to health watchers
    if (web != nullptr) web->Stop();  // its requests call the server
    if (listener != nullptr) listener->Stop();
    if (server != nullptr) {
      server->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownGrace));
      server->Wait();
    }
    if (tasks != nullptr) tasks->Shutdown();
    if (housekeeping != nullptr) housekeeping->Shutdown();
    // No exit callbacks after this; undelivered ones come back on Reattach.
    // Before the executor goes: its last exit callbacks may still wake it.
    if (sweeps != nullptr) sweeps->Shutdown();
    executor.reset();
    server.reset();
    services.clear();
    health.reset();
    web.reset();
    sweeps.reset();
    runs.reset();
    if (gc != nullptr) gc->Stop();
    gc.reset();
    if (watched_roots != nullptr) watched_roots->Shutdown();
    watched_roots.reset();
    ingest_loop.reset();
    ingester.reset();
    dir_watcher.reset();
    watcher.reset();
    listener.reset();
    store.reset();
    cas.reset();
    if (log != nullptr && lock != nullptr)
      log->info("stopped; runs keep going under their supervisors");
    lock.reset();
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() { Shutdown(); }
void Daemon::Shutdown() { impl_->Shutdown(); }
const fs::path& Daemon::data_dir() const { return impl_->options.data_dir; }
const fs::path& Daemon::socket_path() const { return impl_->socket_path; }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  if (options.system_mode) {
    if (::geteuid() != 0) {
      return absl::FailedPreconditionError(
          "amld --system runs as root (it starts each run as its submitter); start it as root, "
          "e.g. with the amld.service system unit, or start a user daemon without --system");
    }
    if (options.data_dir.empty()) options.data_dir = amld::base::kSystemDataDir;
    if (options.socket_path.empty()) options.socket_path = amld::base::SystemSocketPath();
  }
  options.access.system_mode = options.system_mode;
  options.runs.run_as_submitter = options.system_mode;
  options.runs.environments.per_user = options.system_mode;
  if (options.data_dir.empty()) options.data_dir = amld::base::DefaultDataDir();
  if (options.socket_path.empty()) options.socket_path = amld::base::DefaultSocketPath();
  PrivateUmask();  // before anything is created: the data dir is the user's alone
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.runs.max_concurrent_runs <= 0) options.runs.max_concurrent_runs = cores;
  if (options.runs.cpus <= 0) options.runs.cpus = cores;
  std::error_code ec;
  options.data_dir = fs::absolute(options.data_dir, ec);
  // What derives from the data dir and the process, not a setting.
  options.runs.folders.runs_root = options.data_dir / "runs";
  options.runs.environments.root = options.data_dir / "envs";
  options.runs.environments.registry = options.data_dir / "environments";
  options.runs.base_env = CaptureDaemonEnvironment();
  options.watched_roots.state_file = options.data_dir / "watched-roots";
  options.watched_roots.data_dir = options.data_dir;
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  absl::Status s = impl->OpenStores();
  if (s.ok()) s = impl->StartRuns();
  if (s.ok()) s = impl->StartWatchedRoots();
  if (s.ok()) impl->StartGc();
  if (s.ok()) s = impl->StartServer();
  if (!s.ok()) {
    if (impl->log != nullptr && impl->lock != nullptr)
      impl->log->error("cannot start: {}", s.ToString());
    impl->Shutdown();
    return s;
  }
  impl->log->info(
      "amld {} serving {} on {} ({}; {} concurrent runs, {} CPU slots, GPUs [{}]; "
      "config {})",
      AMLD_VERSION, impl->options.data_dir.string(), impl->socket_path.string(),
      impl->options.system_mode ? "system mode: shared, runs run as their submitters"
                                : "user mode",
      impl->options.runs.max_concurrent_runs, impl->options.runs.cpus,
      absl::StrJoin(impl->options.runs.gpus, ","),
      impl->options.config_file.empty() ? "none" : impl->options.config_file.string());
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

// ---------------------------------------------------------------------------
// Run(): signals arrive through a self-pipe (an eventfd written by the
// handler), so no thread's signal mask changes — runs inherit none.

namespace {

int g_signal_fd = -1;

extern "C" void OnStopSignal(int) {
  int saved = errno;
  uint64_t one = 1;
  (void)!::write(g_signal_fd, &one, sizeof(one));
  errno = saved;
}

}  // namespace

absl::Status Run(DaemonOptions options) {
  if (options.listen_fd < 0) options.listen_fd = SocketListener::TakeSocketActivationFd();
  amld::base::ScopedFd signal_fd(::eventfd(0, EFD_CLOEXEC));
  if (!signal_fd.valid()) return amld::base::ErrnoStatus(errno, "eventfd", "signal");
  g_signal_fd = signal_fd.get();
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  struct sigaction old_term, old_int;
  ::sigaction(SIGTERM, &action, &old_term);
  ::sigaction(SIGINT, &action, &old_int);

  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(std::move(options));
  if (daemon.ok()) {
    uint64_t count;
    while (::read(signal_fd.get(), &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    (*daemon)->Shutdown();
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  g_signal_fd = -1;
  return daemon.ok() ? absl::OkStatus() : daemon.status();
}

}  // namespace amld::daemon
