// TaskRunner: where the run manager does its slow work (materializing a
// snapshot, launching, storing outputs), off the gRPC threads and the
// executor's callback thread. An interface so tests can run the posted tasks
// one by one on their own thread and step the lifecycle deterministically.
//
// Thread-safety: Post() is thread-safe.
#pragma once

#include <functional>
#include <memory>

namespace amld::base {

class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  // Queues `task`; it runs later on some thread. Tasks posted after
  // Shutdown() are dropped (the daemon is stopping; recovery at the next
  // start redoes whatever they would have done).
  virtual void Post(std::function<void()> task) = 0;
};

// A fixed pool of threads that sleep on a condition variable while idle.
class ThreadPoolTaskRunner final : public TaskRunner {
 public:
  // Each thread calls `on_start` (when given) before its first task.
  explicit ThreadPoolTaskRunner(int threads, std::function<void()> on_start = {});
  ~ThreadPoolTaskRunner() override;  // Shutdown()

  void Post(std::function<void()> task) override;
  // Lets running tasks finish, drops queued ones, joins the threads.
  // Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// For a housekeeping pool's `on_start`: makes the calling thread the last to
// get CPU (nice 19) and disk (the idle I/O class), so that removing old run
// folders or copying a spare never slows a client or a run. Best effort.
void LowerThisThreadsPriority();

}  // namespace amld::base
