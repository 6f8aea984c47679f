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

Scheduler::Scheduler(TargetCapacity capacity, UserLimits per_user)
    : capacity_(std::move(capacity)), per_user_(per_user) {
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
  const int user_gpus = per_user_.max_gpus;
  if (user_gpus > 0 && r.gpus > user_gpus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the run asks for ", r.gpus, " GPUs but each user may hold at most ", user_gpus,
        " on this machine (per_user.max_gpus in the daemon's amld.yaml)"));
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
                      const std::vector<int>& gpus, uint32_t user) {
  RemoveQueued(run_id);
  if (holding_.contains(run_id)) return;
  Holding& h = holding_[run_id];
  h.resources = resources;
  h.user = user;
  for (int id : gpus) {
    // A GPU recorded twice (it never should be) stays with its first run.
    if (gpu_owner_.emplace(id, run_id).second) h.gpus.push_back(id);
  }
  cpus_held_ += resources.cpus;
  Held& held = held_by_user_[user];
  ++held.runs;
  held.gpus += static_cast<int>(h.gpus.size());
}

bool Scheduler::Release(const std::string& run_id) {
  auto it = holding_.find(run_id);
  if (it == holding_.end()) return false;
  for (int id : it->second.gpus) gpu_owner_.erase(id);
  cpus_held_ -= it->second.resources.cpus;
  auto held = held_by_user_.find(it->second.user);
  if (held != held_by_user_.end()) {
    held->second.gpus -= static_cast<int>(it->second.gpus.size());
    if (--held->second.runs <= 0) held_by_user_.erase(held);
  }
  holding_.erase(it);
  return true;
}

std::vector<UserUsage> Scheduler::Usage() const {
  absl::flat_hash_map<uint32_t, UserUsage> by_user;
  for (const auto& [user, held] : held_by_user_) {
    UserUsage& u = by_user[user];
    u.running = held.runs;
    u.gpus = held.gpus;
  }
  for (const Queued& q : queue_) ++by_user[q.request.user].queued;
  std::vector<UserUsage> usage;
  for (auto& [user, u] : by_user) {
    u.user = user;
    usage.push_back(u);
  }
  std::sort(usage.begin(), usage.end(),
            [](const UserUsage& a, const UserUsage& b) { return a.user < b.user; });
  return usage;
}

bool Scheduler::UnderUserLimits(const QueueRequest& request) const {
  const UserLimits& limits = per_user_;
  if (limits.max_running_runs <= 0 && limits.max_gpus <= 0) return true;
  auto it = held_by_user_.find(request.user);
  const Held held = it == held_by_user_.end() ? Held{} : it->second;
  if (limits.max_running_runs > 0 && held.runs >= limits.max_running_runs) return false;
  if (limits.max_gpus > 0 && held.gpus + request.resources.gpus > limits.max_gpus) return false;
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
  size_t best = queue_.size();
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (!UnderUserLimits(queue_[i].request)) continue;
    if (best == queue_.size() || key(queue_[i]) < key(queue_[best])) best = i;
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
    if (next == queue_.size()) break;  // every queued run's user is at a cap
    Queued q = queue_[next];
    if (!Fits(q.request.resources)) break;  // head-of-line blocking (see header)
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(next));
    Adopt(q.run_id, q.request.resources, TakeGpus(q.request.resources.gpus), q.request.user);
    last_served_[q.request.user] = ++serve_count_;
    start.push_back(std::move(q.run_id));
  }
  return start;
}

}  // namespace amld::daemon
