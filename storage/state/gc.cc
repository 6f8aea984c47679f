#include "storage/state/gc.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "base/status_macros.h"
#include "storage/snapshot/snapshot.h"

namespace amld::storage {

absl::StatusOr<GcStats> CollectUnreferencedBlobs(StateStore& state, ContentStore& cas,
                                                 absl::Duration min_age,
                                                 const ExtraLive& extra) {
  AMLD_ASSIGN_OR_RETURN(StateStore::References refs, state.ReferencedDigests());
  absl::flat_hash_set<Digest> live = extra.blobs;
  live.insert(refs.artifacts.begin(), refs.artifacts.end());
  refs.snapshot_roots.insert(refs.snapshot_roots.end(), extra.roots.begin(), extra.roots.end());
  for (const Digest& root : refs.snapshot_roots) {
    live.insert(root);
    // A corrupt tree stops the collection: deleting what it might still
    // reference would turn a repairable problem into lost data.
    AMLD_RETURN_IF_ERROR(CollectTreeDigests(cas, root, &live));
  }
  std::vector<std::string> removed;
  absl::StatusOr<GcStats> stats = cas.CollectGarbage(live, min_age, &removed);
  // Claims on what is gone go in the same sweep, also after an error part
  // way: a claim must not outlive its blob (a user who sends it again
  // proves it again, and the table does not grow without bound).
  absl::Status pruned = state.RemoveBlobClaims(removed);
  if (!stats.ok()) return stats;
  AMLD_RETURN_IF_ERROR(pruned);
  return stats;
}

CasCollector::CasCollector(Deps deps, CasCollectorOptions options)
    : deps_(std::move(deps)), options_(options) {
  if (deps_.clock == nullptr) deps_.clock = base::RealClock();
}

CasCollector::~CasCollector() { Stop(); }

void CasCollector::Start() {
  if (options_.interval <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] { Loop(); });
}

void CasCollector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void CasCollector::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time until = absl::Now() + options_.interval;
      while (!stopping_ && absl::Now() < until) wake_.WaitWithDeadline(&mu_, until);
      if (stopping_) return;
    }
    (void)CollectNow();
    if (deps_.on_report) deps_.on_report(Last());
  }
}

absl::StatusOr<GcReport> CasCollector::CollectNow(std::optional<absl::Duration> grace) {
  absl::MutexLock one(&collect_mu_);
  GcReport report;
  report.grace = grace.value_or(options_.grace);
  report.started = deps_.clock->Now();
  const absl::Time began = absl::Now();
  ExtraLive extra;
  if (deps_.extra_live) deps_.extra_live(&extra);
  absl::StatusOr<GcStats> stats =
      CollectUnreferencedBlobs(*deps_.state, *deps_.cas, report.grace, extra);
  report.took = absl::Now() - began;
  if (stats.ok()) {
    report.stats = *stats;
  } else {
    report.status = stats.status();
  }
  // Even a collection that stopped early may have removed some.
  if (deps_.on_removed && (!stats.ok() || stats->objects_removed > 0)) deps_.on_removed();
  {
    absl::MutexLock lock(&mu_);
    last_ = report;
  }
  if (!report.status.ok()) return report.status;
  return report;
}

GcReport CasCollector::Last() const {
  absl::MutexLock lock(&mu_);
  return last_;
}

}  // namespace amld::storage
