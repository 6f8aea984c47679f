#include "daemon/runs/scheduler.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace amld::daemon {

RunResources NormalizeResources(int cpus, int gpus) {
  return RunResources{cpus == 0 ? 1 : cpus, gpus};
}

Scheduler::Scheduler(TargetCapacity capacity) : capacity_(std::move(capacity)) {
  capacity_.max_runs = std::max(capacity_.max_runs, 1);
  capacity_.cpus = std::max(capacity_.cpus, 1);
}

Scheduler::Scheduler(int slots) : Scheduler(TargetCapacity{slots, slots, {}}) {}

bool Scheduler::IsQueued(const std::string& run_id) const {
  return std::any_of(queue_.begin(), queue_.end(),
                     [&](const Queued& q) { return q.run_id == run_id; });
}

int Scheduler::free_cpus() const { return std::max(0, capacity_.cpus - cpus_held_); }

std::vector<int> Scheduler::free_gpus() const {
  std::vector<int> free;
  for (int id : capacity_.gpus) {
    if (!gpu_owner_.contains(id)) free.push_back(id);
  }
  return free;
}

std::vector<int> Scheduler::GpusOf(const std::string& run_id) const {
  auto it = holding_.find(run_id);
  return it == holding_.end() ? std::vector<int>{} : it->second.gpus;
}

absl::Status Scheduler::CheckFits(const RunResources& r) const {
  if (r.cpus < 0 || r.gpus < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resources must not be negative (cpus ", r.cpus, ", gpus ", r.gpus, ")"));
  }
  if (r.cpus > capacity_.cpus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the run asks for ", r.cpus, " CPU slots but the local target has ", capacity_.cpus,
        "; ask for at most ", capacity_.cpus, " (or raise `cpus` in the daemon's amld.yaml)"));
  }
  const int gpus = static_cast<int>(capacity_.gpus.size());
  if (r.gpus > gpus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the run asks for ", r.gpus, " GPUs but the local target has ", gpus,
        gpus == 0 ? "" : absl::StrCat(" (ids ", absl::StrJoin(capacity_.gpus, ","), ")"),
        "; ask for at most ", gpus, " (the daemon's amld.yaml lists them under `gpus`)"));
  }
  return absl::OkStatus();
}

bool Scheduler::Enqueue(const std::string& run_id, const QueueRequest& request) {
  if (holding_.contains(run_id) || IsQueued(run_id)) return false;
  if (!CheckFits(request.resources).ok()) return false;
  queue_.push_back(Queued{run_id, request, next_seq_++});
  return true;
}

bool Scheduler::RemoveQueued(const std::string& run_id) {
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Queued& q) { return q.run_id == run_id; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

void Scheduler::Adopt(const std::string& run_id, const RunResources& resources,
                      const std::vector<int>& gpus) {
  RemoveQueued(run_id);
  if (holding_.contains(run_id)) return;
  Holding& h = holding_[run_id];
  h.resources = resources;
  for (int id : gpus) {
    // A GPU recorded twice (it never should be) stays with its first run.
    if (gpu_owner_.emplace(id, run_id).second) h.gpus.push_back(id);
  }
  cpus_held_ += resources.cpus;
}

bool Scheduler::Release(const std::string& run_id) {
  auto it = holding_.find(run_id);
  if (it == holding_.end()) return false;
  for (int id : it->second.gpus) gpu_owner_.erase(id);
  cpus_held_ -= it->second.resources.cpus;
  holding_.erase(it);
  return true;
}

size_t Scheduler::NextIndex() const {
  // Highest priority, then the user served least recently (never served
  // counts as 0), then the oldest run. One pass; the queue is short.
  auto key = [&](const Queued& q) {
    auto served = last_served_.find(q.request.user);
    uint64_t last = served == last_served_.end() ? 0 : served->second;
    return std::make_tuple(-q.request.priority, last, q.seq);
  };
  size_t best = 0;
  for (size_t i = 1; i < queue_.size(); ++i) {
    if (key(queue_[i]) < key(queue_[best])) best = i;
  }
  return best;
}

bool Scheduler::Fits(const RunResources& r) const {
  return static_cast<int64_t>(holding_.size()) < capacity_.max_runs &&
         cpus_held_ + r.cpus <= capacity_.cpus && r.gpus <= static_cast<int>(free_gpus().size());
}

std::vector<int> Scheduler::TakeGpus(int count) {
  std::vector<int> taken;
  for (int id : capacity_.gpus) {
    if (static_cast<int>(taken.size()) == count) break;
    if (!gpu_owner_.contains(id)) taken.push_back(id);
  }
  return taken;
}

std::vector<std::string> Scheduler::TakeStartable() {
  std::vector<std::string> start;
  while (!queue_.empty()) {
    const size_t next = NextIndex();
    Queued q = queue_[next];
    if (!Fits(q.request.resources)) break;  // head-of-line blocking (see header)
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(next));
    Adopt(q.run_id, q.request.resources, TakeGpus(q.request.resources.gpus));
    last_served_[q.request.user] = ++serve_count_;
    start.push_back(std::move(q.run_id));
  }
  return start;
}

}  // namespace amld::daemon
