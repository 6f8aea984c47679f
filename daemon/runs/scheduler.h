// Scheduler: the pure decision of which queued runs may start now, and with
// which GPUs. It holds no threads, no clock and no I/O: the run manager feeds
// it events (a run was queued, was canceled while queued, ended) and asks
// which runs to start; tests step it directly.
//
// Capacity (the local target, from the daemon's config): at most `max_runs`
// runs hold a slot, their CPU slots add up to at most `cpus`, and each GPU id
// of `gpus` belongs to at most one run at a time. A run holds its share from
// the moment it is taken off the queue (PREPARING) until it is released
// (terminal). GPUs are given lowest position in `gpus` first.
//
// Order: the highest priority first; among runs of equal priority the
// submitting users take turns (the user served least recently goes next; a
// user not served yet goes before all who were, oldest run first), and each
// user's runs start in submit order (FIFO).
//
// Policy when the next run does not fit: strict head-of-line blocking. The
// queue waits until the run at its head fits; nothing behind it starts first.
// Why not backfill: without runtime estimates a backfilled small run can
// keep a large request (say, all GPUs) waiting forever, and runs would start
// out of the order people were promised (priority, then turns, then FIFO).
// Blocking costs idle capacity while a large run waits for its share; in
// exchange the order is exactly predictable and no request starves. A
// request the target could never satisfy is refused before queueing
// (CheckFits), so it cannot block the queue.
//
// Per-user caps (amld.yaml `per_user:`, for a machine several people share):
// a user holding `max_running_runs` runs, or GPUs such that the next run's
// would exceed `max_gpus`, is passed over — their runs wait, everyone
// else's go on in the order above (a capped user does not block the queue).
// A run asking for more GPUs than the per-user cap is refused (CheckFits).
//
// Runs re-adopted after a daemon restart (Adopt) keep the GPUs they were
// given and take their share even when that exceeds the capacity (they are
// already running); new runs then wait until enough is free again.
//
// Thread-safety: thread-compatible; the run manager guards it with its mutex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace amld::daemon {

// What one run holds while it runs (amld.v1.ResourceRequest, normalized).
// A run for another target holds {0, 0}: a slot, no local CPUs or GPUs.
struct RunResources {
  int cpus = 1;
  int gpus = 0;
};

// What one user may hold at once; 0: no cap.
struct UserLimits {
  int max_running_runs = 0;
  int max_gpus = 0;
};

// The compute one target offers.
struct TargetCapacity {
  int max_runs = 1;       // < 1 is treated as 1
  int cpus = 1;           // CPU slots; < 1 is treated as 1
  std::vector<int> gpus;  // GPU ids, distinct
};

// What one user holds and has queued.
struct UserUsage {
  uint32_t user = 0;
  int running = 0;  // runs holding a slot
  int gpus = 0;
  int queued = 0;
};

// A queued run's place in the order.
struct QueueRequest {
  int priority = 0;   // higher starts first
  uint32_t user = 0;  // the submitter's uid
  RunResources resources;
};

class Scheduler {
 public:
  explicit Scheduler(TargetCapacity capacity, UserLimits per_user = {});
  // max_runs = cpus = `slots`, no GPUs.
  explicit Scheduler(int slots);

  const TargetCapacity& capacity() const { return capacity_; }
  int slots() const { return capacity_.max_runs; }
  int64_t queued() const { return static_cast<int64_t>(queue_.size()); }
  int64_t holding_slots() const { return static_cast<int64_t>(holding_.size()); }
  bool IsQueued(const std::string& run_id) const;
  bool HoldsSlot(const std::string& run_id) const { return holding_.contains(run_id); }
  // CPU slots not held (0 when adopted runs hold more than the capacity).
  int free_cpus() const;
  // GPU ids not held, in capacity order.
  std::vector<int> free_gpus() const;
  // The GPUs a run holding a slot was given (empty otherwise).
  std::vector<int> GpusOf(const std::string& run_id) const;

  // OK when the target could run `resources` once it is idle; otherwise
  // INVALID_ARGUMENT saying what it has, so the run is refused instead of
  // queued forever. Negative counts are INVALID_ARGUMENT too.
  absl::Status CheckFits(const RunResources& resources) const;

  // Appends a run to the queue. Returns false and changes nothing when it is
  // already queued or holds a slot, or when CheckFits refuses it.
  bool Enqueue(const std::string& run_id, const QueueRequest& request = {});
  // Removes a queued run (a cancel before it started). False when it was not
  // queued.
  bool RemoveQueued(const std::string& run_id);
  // Gives a slot to a run that is already past the queue (re-adopted at
  // start) with the GPUs it was given before, regardless of the capacity.
  void Adopt(const std::string& run_id, const RunResources& resources = {},
             const std::vector<int>& gpus = {}, uint32_t user = 0);
  // Per user with a run holding a slot or queued, by uid.
  std::vector<UserUsage> Usage() const;
  // Frees the run's share. False when it held none.
  bool Release(const std::string& run_id);
  // Takes runs off the queue, in the order above, while the next one fits;
  // each returned run now holds its share (GpusOf says which GPUs).
  std::vector<std::string> TakeStartable();

 private:
  struct Queued {
    std::string run_id;
    QueueRequest request;
    uint64_t seq = 0;  // submit order
  };
  struct Holding {
    RunResources resources;
    std::vector<int> gpus;
    uint32_t user = 0;
  };
  struct Held {
    int runs = 0;
    int gpus = 0;
  };

  // Index into queue_ of the run that goes next, or queue_.size() when every
  // queued run's user is at a cap.
  size_t NextIndex() const;
  bool UnderUserLimits(const QueueRequest& request) const;
  bool Fits(const RunResources& resources) const;
  std::vector<int> TakeGpus(int count);

  TargetCapacity capacity_;
  const UserLimits per_user_;
  std::vector<Queued> queue_;  // in submit order
  absl::flat_hash_map<std::string, Holding> holding_;
  absl::flat_hash_map<int, std::string> gpu_owner_;  // GPU id → run
  absl::flat_hash_map<uint32_t, Held> held_by_user_;
  int cpus_held_ = 0;
  uint64_t next_seq_ = 1;
  // When each user last had a run started (a counter, not a time).
  absl::flat_hash_map<uint32_t, uint64_t> last_served_;
  uint64_t serve_count_ = 0;
};

// RunResources from a run's ResourceRequest fields: cpus 0 means 1.
RunResources NormalizeResources(int cpus, int gpus);

}  // namespace amld::daemon
