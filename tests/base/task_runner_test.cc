// ThreadPoolTaskRunner: tasks run on its threads, each thread runs its
// on_start first, and the housekeeping priority reaches the thread only.
#include "base/task_runner.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <future>

namespace amld::daemon {
namespace {

int NiceOfThisThread() {
  return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
}

int IoClassOfThisThread() {
  constexpr int kIoprioWhoProcess = 1;
  const long prio = ::syscall(SYS_ioprio_get, kIoprioWhoProcess, ::syscall(SYS_gettid));
  return prio < 0 ? -1 : static_cast<int>(prio >> 13);
}

TEST(ThreadPoolTaskRunnerTest, RunsPostedTasksAfterEachThreadsStartHook) {
  std::atomic<int> started{0};
  base::ThreadPoolTaskRunner runner(2, [&] { ++started; });
  std::promise<int> seen;
  runner.Post([&] { seen.set_value(started.load()); });
  EXPECT_GE(seen.get_future().get(), 1);
  runner.Shutdown();
  EXPECT_EQ(started.load(), 2);
  runner.Post([] { FAIL() << "a task posted after Shutdown ran"; });  // dropped
}

TEST(ThreadPoolTaskRunnerTest, HousekeepingThreadsGetTheLowestPriorityAndOthersKeepTheirs) {
  const int own_nice = NiceOfThisThread();
  base::ThreadPoolTaskRunner housekeeping(1, base::LowerThisThreadsPriority);
  std::promise<std::pair<int, int>> seen;
  housekeeping.Post([&] { seen.set_value({NiceOfThisThread(), IoClassOfThisThread()}); });
  auto [nice, io_class] = seen.get_future().get();
  EXPECT_EQ(nice, 19);
  EXPECT_EQ(io_class, 3);                   // IOPRIO_CLASS_IDLE
  EXPECT_EQ(NiceOfThisThread(), own_nice);  // the rest of the process is untouched
}

}  // namespace
}  // namespace amld::daemon
