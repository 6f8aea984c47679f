// Garbage collection of the content-addressed store: removes every object
// that no run refers to — neither through its snapshot tree nor as an
// artifact — and nothing the daemon holds otherwise (ExtraLive: its watched
// roots). What becomes garbage: uploads never submitted, old versions of a
// watched tree or of a run's output file, stale partial uploads. The users'
// claims on removed blobs (system mode's proof of content, table
// blob_claims) are dropped by the same collection.
//
// Blobs uploaded for a run that is not submitted yet are referenced by
// nothing; objects younger than `min_age` are therefore always kept, so a
// collection can run while clients upload. A blob found present by a store
// or by FindMissing has its mtime refreshed when older than ten minutes
// (ContentStore), so with a grace period of at least that, whatever a
// writer relies on outlives a collection running at the same time.
//
// Thread-safety: CollectUnreferencedBlobs is safe to run while the daemon
// works (under the grace rule above). CasCollector is thread-safe; one
// collection runs at a time.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "storage/cas.h"
#include "storage/state/state_store.h"

namespace amld::storage {

// What else is live besides what the state store references: trees (each
// root's Directory blobs and everything below them) and single blobs, e.g.
// the daemon's watched roots.
struct ExtraLive {
  std::vector<Digest> roots;
  absl::flat_hash_set<Digest> blobs;
};

absl::StatusOr<GcStats> CollectUnreferencedBlobs(StateStore& state, ContentStore& cas,
                                                 absl::Duration min_age = absl::Hours(1),
                                                 const ExtraLive& extra = {});

// One collection, as `aml daemon gc` and `aml daemon status` report it.
struct GcReport {
  absl::Time started = absl::InfinitePast();  // InfinitePast: none yet
  absl::Duration took;
  absl::Duration grace;
  GcStats stats;
  absl::Status status;  // why it stopped, when it did
};

struct CasCollectorOptions {
  // Objects younger than this are kept.
  absl::Duration grace = absl::Hours(1);
  // Time between collections of the background thread; zero: none (only
  // CollectNow).
  absl::Duration interval = absl::Hours(6);
};

// The daemon's collector: a background thread collecting every `interval`,
// and CollectNow for `aml daemon gc`.
class CasCollector {
 public:
  struct Deps {
    StateStore* state = nullptr;
    ContentStore* cas = nullptr;
    // Adds what else is live (the watched roots); may be null.
    std::function<void(ExtraLive*)> extra_live;
    base::Clock* clock = nullptr;
    // Told each background collection's report; may be null.
    std::function<void(const GcReport&)> on_report;
    // Called after a collection that removed objects, before CollectNow
    // returns: whoever remembers blobs as present forgets (the run
    // manager's checked snapshots). May be null.
    std::function<void()> on_removed;
  };
  CasCollector(Deps deps, CasCollectorOptions options);
  ~CasCollector();  // Stop()
  CasCollector(const CasCollector&) = delete;
  CasCollector& operator=(const CasCollector&) = delete;

  // Starts the background thread (when interval > 0); its first collection
  // comes one interval after the start.
  void Start();
  // Stops and joins the thread; a collection under way finishes first.
  void Stop();

  // Collects now, with `grace` (the configured one when absent), waiting
  // for a collection under way. Errors of the collection are in the
  // report's status, and returned.
  absl::StatusOr<GcReport> CollectNow(std::optional<absl::Duration> grace = std::nullopt);
  // The last collection's report (started == InfinitePast: none yet).
  GcReport Last() const;
  const CasCollectorOptions& options() const { return options_; }

 private:
  void Loop();

  Deps deps_;
  CasCollectorOptions options_;
  absl::Mutex collect_mu_;  // one collection at a time
  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  GcReport last_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace amld::storage
