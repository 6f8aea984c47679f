// Scheduler: the pure decision of which queued runs may start now. It holds
// no threads, no clock and no I/O: the run manager feeds it events (a run
// was queued, was canceled while queued, ended) and asks which runs to start;
// tests step it directly.
//
// Policy: first in, first out, at most `slots` runs holding a slot. A run
// holds its slot from the moment it is taken off the queue (PREPARING) until
// it is released (terminal). Runs re-adopted after a daemon restart take a
// slot even when that exceeds the limit (they are already running); new runs
// then wait until the count drops below the limit.
//
// Thread-safety: thread-compatible; the run manager guards it with its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace amld::daemon {

class Scheduler {
 public:
  // `slots` < 1 is treated as 1.
  explicit Scheduler(int slots);

  int slots() const { return slots_; }
  int64_t queued() const { return static_cast<int64_t>(queue_.size()); }
  int64_t holding_slots() const { return static_cast<int64_t>(holding_.size()); }
  bool IsQueued(const std::string& run_id) const;
  bool HoldsSlot(const std::string& run_id) const { return holding_.contains(run_id); }

  // Appends a run to the queue (no-op when it is already queued or holds a
  // slot).
  void Enqueue(const std::string& run_id);
  // Removes a queued run (a cancel before it started). False when it was not
  // queued.
  bool RemoveQueued(const std::string& run_id);
  // Gives a slot to a run that is already past the queue (re-adopted at
  // start), regardless of the limit.
  void Adopt(const std::string& run_id);
  // Frees the run's slot. False when it held none.
  bool Release(const std::string& run_id);
  // Takes runs off the front of the queue while slots are free; each
  // returned run now holds a slot. Oldest first.
  std::vector<std::string> TakeStartable();

 private:
  int slots_;
  std::deque<std::string> queue_;
  absl::flat_hash_set<std::string> holding_;
};

}  // namespace amld::daemon
