#include "daemon/scheduler.h"

#include <algorithm>

namespace amld::daemon {

Scheduler::Scheduler(int slots) : slots_(std::max(slots, 1)) {}

bool Scheduler::IsQueued(const std::string& run_id) const {
  return std::find(queue_.begin(), queue_.end(), run_id) != queue_.end();
}

void Scheduler::Enqueue(const std::string& run_id) {
  if (holding_.contains(run_id) || IsQueued(run_id)) return;
  queue_.push_back(run_id);
}

bool Scheduler::RemoveQueued(const std::string& run_id) {
  auto it = std::find(queue_.begin(), queue_.end(), run_id);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

void Scheduler::Adopt(const std::string& run_id) {
  RemoveQueued(run_id);
  holding_.insert(run_id);
}

bool Scheduler::Release(const std::string& run_id) { return holding_.erase(run_id) > 0; }

std::vector<std::string> Scheduler::TakeStartable() {
  std::vector<std::string> start;
  while (!queue_.empty() && static_cast<int64_t>(holding_.size()) < slots_) {
    start.push_back(queue_.front());
    holding_.insert(queue_.front());
    queue_.pop_front();
  }
  return start;
}

}  // namespace amld::daemon
