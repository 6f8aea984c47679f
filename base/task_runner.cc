#include "base/task_runner.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <deque>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace amld::base {

struct ThreadPoolTaskRunner::Impl {
  absl::Mutex mu;
  std::deque<std::function<void()>> queue ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<std::thread> threads;

  void Work() {
    while (true) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](Impl* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu) {
              return self->stopping || !self->queue.empty();
            },
            this));
        if (stopping) return;
        task = std::move(queue.front());
        queue.pop_front();
      }
      task();
    }
  }
};

ThreadPoolTaskRunner::ThreadPoolTaskRunner(int threads, std::function<void()> on_start)
    : impl_(std::make_unique<Impl>()) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this, on_start] {
      if (on_start) on_start();
      impl_->Work();
    });
  }
}

void LowerThisThreadsPriority() {
  const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);  // this thread only, on Linux
  constexpr int kIoprioWhoProcess = 1;  // <linux/ioprio.h>, not in glibc's headers
  constexpr int kIoprioClassIdle = 3;
  constexpr int kIoprioClassShift = 13;
  (void)::syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, kIoprioClassIdle << kIoprioClassShift);
}

ThreadPoolTaskRunner::~ThreadPoolTaskRunner() { Shutdown(); }

void ThreadPoolTaskRunner::Post(std::function<void()> task) {
  absl::MutexLock lock(&impl_->mu);
  if (impl_->stopping) return;
  impl_->queue.push_back(std::move(task));
}

void ThreadPoolTaskRunner::Shutdown() {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
    impl_->queue.clear();
  }
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace amld::base
