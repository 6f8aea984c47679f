// EnvironmentBuilder: builds managed Python environments (env_spec.h) once
// per spec digest into a cache under the data dir, and hands runs the
// prefix to run with.
//
// Layout of the cache (`EnvironmentOptions::root`, <data>/envs):
//   <root>/<digest>                  a symlink to the build folder: the
//                                    published environment
//   <root>/.build-<short>-<n>        a build folder: the venv (or conda
//                                    prefix), amld-requirements.txt,
//                                    amld-environment.txt (canonical text)
// A build happens in a new .build-* folder and is published only on success,
// by renaming a symlink onto <root>/<digest> (atomic): a reader sees a whole
// environment or none. A venv cannot be moved after it is made (its scripts
// name their folder), which is why the folder stays and the link moves. A
// failed build removes its folder; Start() removes folders no link names
// (a build cut short by a crash), so a later run retries cleanly.
//
// Keeping the cache within its budget (EnvironmentOptions::cache_budget):
// each environment records its size and last use (env_cache.h). A run holds
// a lease on its environment from Acquire until Release (the run manager
// releases at the run's end and, after a restart, holds again for the runs
// it re-adopts). After each build and each release the worker removes the
// least recently used environments no run holds and none is building until
// the cache fits; Prune() removes every unused one now. Removal unlinks
// <root>/<digest> under the lock (so Acquire sees the environment whole or
// not at all, and rebuilds it) and then removes the folder.
//
// Building: `<python3.X> -m venv DIR` (or, for conda packages, `<conda_path>
// create --yes --prefix DIR ...`), then `DIR/bin/python -m pip install -r
// DIR/amld-requirements.txt` with the package indexes of the daemon's config
// (index_url, extra_index_urls, find_links, no_index; none set: pip's own
// configuration). Every command goes through the CommandRunner, so tests
// script them. Output goes live to the requesting run's std log (stdout as
// it comes, stderr after each command), framed by "amld:" lines, and is
// copied to its system_logs/environment_build.log at the end.
//
// System mode (EnvironmentOptions::per_user: `amld --system`, as root): a
// build runs code from the package index, and its result is code every run
// using it executes, so no build runs as root and no user's build serves
// another user. Each user's environments are built by that user (their
// commands carry Command::run_as; pip's cache is in their HOME) into their
// own cache <root>/users/<uid>/ (env_cache.h: 0700, theirs), and the daemon
// touches the files there only with their rights (base/fs_identity.h),
// never root's. The shared cache <root> holds only specs whose spec alone
// decides what gets installed (DeterminesItsResult: hash-pinned pip lines;
// or a curated environment's spec), built by the unprivileged account
// `build_user` in a folder the daemon made theirs, then sealed root's and
// readable by all (SealForEveryone); a user's run takes the shared one for
// such a spec, its own cache otherwise. Without that account such specs go
// to the user's cache too. Leases, the budget and Prune apply per cache.
//
// Concurrency: one worker thread builds, one environment at a time (pip
// runs against one download cache). Runs asking for a digest that is being
// built wait for that build: N runs with one new spec build it once, and
// each is told when it is done (or why it failed).
//
// Thread-safety: thread-safe. `done` callbacks run on the worker thread (or
// on the caller's, when the environment is already built) without the
// builder's lock; they must be quick (post the rest elsewhere).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/envs/env_cache.h"
#include "daemon/envs/env_spec.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon {

struct EnvironmentOptions {
  // The cache; the daemon sets <data>/envs. Empty: managed environments are
  // refused at submit.
  std::filesystem::path root;
  // Registered environments (env_registry.h); the daemon sets
  // <data>/environments. Empty: no registry.
  std::filesystem::path registry;
  // pip's package indexes (amld.yaml `environments:`); all unset: pip's own
  // configuration decides.
  std::string index_url;
  std::vector<std::string> extra_index_urls;
  std::vector<std::string> find_links;
  bool no_index = false;
  // A conda, mamba or micromamba binary for conda packages beyond python
  // and pip; empty: those are refused at submit.
  std::string conda_path;
  // A build step (venv, pip install) running longer is killed and fails.
  absl::Duration build_timeout = absl::Hours(1);
  // The cache's size budget in bytes (amld.yaml environments.cache_budget);
  // 0: no budget, environments stay until `aml env prune`.
  int64_t cache_budget = int64_t{20} << 30;
  // System mode: per-user caches and the shared one (see above); the
  // daemon sets it with --system.
  bool per_user = false;
  // The account that builds the shared cache in system mode (amld.yaml
  // environments.build_user). Empty, unknown to passwd or root: none, and
  // every spec is built in its user's own cache.
  std::string build_user = "amld-build";
};

// The cache as a whole, for `aml daemon status`.
struct CacheUsage {
  int count = 0;
  int64_t bytes = 0;
  int in_use = 0;  // environments some run holds
};

// Where one run wants to see the build's output, and whose environment it is.
struct BuildRequest {
  std::string run_id;
  std::filesystem::path std_log;    // live output and "amld:" lines
  std::filesystem::path build_log;  // the whole build's output, when this run built it
  // System mode: the submitter's uid (their cache, their build); required
  // there. User mode: ignored (one cache, the daemon's user's).
  std::optional<uid_t> user;
};

class EnvironmentBuilder {
 public:
  EnvironmentBuilder(EnvironmentOptions options, CommandRunner* runner);
  // Stops a running build (its folder is removed) and joins the worker;
  // runs still waiting are not called back (a restarted daemon prepares
  // PREPARING runs again).
  ~EnvironmentBuilder();
  EnvironmentBuilder(const EnvironmentBuilder&) = delete;
  EnvironmentBuilder& operator=(const EnvironmentBuilder&) = delete;

  // Creates the cache folder, removes what interrupted builds left, and
  // starts the worker.
  absl::Status Start();

  // The spec of a submitted managed environment (SpecFromEnvironment with
  // this builder's conda setting). In system mode with `user`, conda
  // packages are refused (FAILED_PRECONDITION, saying why) when that user
  // cannot run the configured conda tool.
  absl::StatusOr<EnvironmentSpec> Check(const amld::v1::Environment& env,
                                        std::optional<uid_t> user = std::nullopt) const;

  // The published prefix of `spec` in the cache `user`'s runs take it from
  // (user mode: the one cache), or NOT_FOUND.
  absl::StatusOr<std::filesystem::path> Built(const EnvironmentSpec& spec,
                                              std::optional<uid_t> user = std::nullopt) const;
  // The same by digest, in the daemon's own cache <root> (user mode; in
  // system mode, the shared cache).
  absl::StatusOr<std::filesystem::path> Built(const std::string& digest) const;

  using Done = std::function<void(absl::StatusOr<std::filesystem::path> prefix)>;
  // Calls `done` with the environment's prefix once it is built (at once
  // when it already is), or with the build's failure (FAILED_PRECONDITION
  // with the tail of the failing command's output).
  void Acquire(const EnvironmentSpec& spec, BuildRequest request, Done done);

  // Builds done (not found in the cache) since Start, for tests and status.
  int builds_started() const;

  // Leases: `holder` (a run id) uses `digest` until Release(holder). Acquire
  // takes one for its request's run_id when it hands out a prefix; Hold
  // takes one for a run re-adopted after a restart (in system mode on the
  // digest in both caches `user`'s run may have taken it from). Release
  // also records the environment's last use and lets the worker trim.
  void Hold(const std::string& digest, const std::string& holder,
            std::optional<uid_t> user = std::nullopt);
  void Release(const std::string& holder);

  // Removes every environment no run holds and none is building, in
  // `user`'s cache (system mode) or in every cache (nullopt: user mode's
  // one; in system mode the shared one and every user's, for admins);
  // returns what it removed (bytes: what each freed).
  std::vector<CachedEnvironment> Prune(std::optional<uid_t> user = std::nullopt);
  // What `user`'s cache holds now (nullopt: every cache). Every `aml`
  // command asks (GetInfo), so a folder is listed only after a publish or
  // an eviction changed a cache.
  CacheUsage Usage(std::optional<uid_t> user = std::nullopt) const;
  // Asks the worker to bring the cache within its budget (at start, once
  // the run manager holds its re-adopted runs' environments).
  void RequestTrim();

 private:
  // One cache: a folder of environments and whose they are.
  struct Cache {
    std::filesystem::path dir;
    // A user's cache (system mode): its files are theirs and the daemon
    // touches them with their rights. nullopt: the daemon's own.
    std::optional<RunAs> owner;
    // Who runs the build's commands: the owner, or build_user for the
    // shared cache in system mode. nullopt: the daemon.
    std::optional<RunAs> build_as;
  };
  struct Waiter {
    BuildRequest request;
    Done done;
  };
  struct Build {
    Cache cache;
    EnvironmentSpec spec;
    std::string digest;
    std::vector<Waiter> waiters;  // the first one's run builds it
  };
  struct Lease {
    Cache cache;
    std::string digest;
  };

  // Where `user`'s run of `spec` takes its environment from (and where it
  // is built when missing).
  absl::StatusOr<Cache> CacheFor(const EnvironmentSpec& spec, const std::string& digest,
                                 std::optional<uid_t> user) const;
  absl::StatusOr<Cache> UserCache(uid_t uid) const;
  Cache SharedCache() const { return Cache{options_.root, std::nullopt, build_account_}; }
  // `user`'s cache, or every cache (nullopt).
  std::vector<Cache> CachesOf(std::optional<uid_t> user) const;
  // The published prefix of `digest` in `cache`, or NOT_FOUND.
  static absl::StatusOr<std::filesystem::path> BuiltIn(const Cache& cache,
                                                       const std::string& digest);

  void Work();
  absl::StatusOr<std::filesystem::path> RunBuild(const Build& build, int log_fd);
  // The folder a build makes its environment in, ready for its commands.
  absl::StatusOr<std::filesystem::path> NewBuildFolder(const Build& build);
  // Runs one step (as `as`, when set) with its output appended to `log_fd`;
  // a non-zero exit is FAILED_PRECONDITION with the output's tail.
  absl::Status Step(const std::string& what, std::vector<std::string> argv,
                    const std::optional<RunAs>& as, int log_fd);
  absl::Status Publish(const Cache& cache, const std::filesystem::path& folder,
                       const std::string& digest);
  void CleanUp(const Cache& cache);
  // Removes unused environments of `cache`, least recently used first,
  // until it holds at most `keep_bytes` (0: every unused one).
  std::vector<CachedEnvironment> Evict(const Cache& cache, int64_t keep_bytes);
  void TakeLeaseLocked(const Cache& cache, const std::string& digest, const std::string& holder)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The links (<dir>/<digest>) some run holds.
  std::set<std::filesystem::path> HeldLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const EnvironmentOptions options_;
  CommandRunner* const runner_;
  const int wake_fd_;  // eventfd: stops a step on shutdown
  // System mode: build_user's account, when it has one (set by Start).
  std::optional<RunAs> build_account_;
  // Digests of the curated environments that are managed: shared in
  // system mode whatever their lines are.
  std::set<std::string> curated_digests_;

  mutable absl::Mutex mu_;
  // Queued or running, by link (<cache dir>/<digest>).
  std::map<std::filesystem::path, Build> builds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::filesystem::path> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int builds_started_ ABSL_GUARDED_BY(mu_) = 0;
  int folder_counter_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Lease>> leases_ ABSL_GUARDED_BY(mu_);  // by holder
  bool trim_wanted_ ABSL_GUARDED_BY(mu_) = false;
  // Usage()'s listings, by cache folder, each with the change count it was
  // made at; Publish and Evict count changes.
  struct Listing {
    uint64_t at = 0;
    std::vector<CachedEnvironment> environments;
  };
  mutable std::map<std::filesystem::path, Listing> listed_ ABSL_GUARDED_BY(mu_);
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread worker_;
};

// pip's index options from the daemon's settings (--no-index, --index-url,
// --extra-index-url, --find-links), the same for local and remote builds.
std::vector<std::string> PipIndexOptions(const EnvironmentOptions& options);

// Sets `name` in `env`, which is sorted by name (run_plan.h) and stays so.
void SetSortedEnv(const std::string& name, std::string value,
                  std::vector<std::pair<std::string, std::string>>* env);

// Makes `argv`/`env` run inside the environment at `prefix`: a script's
// interpreter becomes <prefix>/bin/python, <prefix>/bin goes first on PATH
// and VIRTUAL_ENV names it (PYTHONHOME is dropped). `env` is sorted by name
// (run_plan.h) and stays so.
void ActivateEnvironment(const std::filesystem::path& prefix, bool is_script,
                         std::vector<std::string>* argv,
                         std::vector<std::pair<std::string, std::string>>* env);

}  // namespace amld::daemon
