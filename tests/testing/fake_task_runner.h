// Task runners for tests (base/task_runner.h): ManualTaskRunner holds posted
// tasks until the test runs them, so work "in the background" happens at a
// point the test chooses; InlineTaskRunner runs each task as it is posted.
//
// Thread-safety: not thread-safe; a test drives them from one thread.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <utility>

#include "base/task_runner.h"

namespace amld::testing {

class ManualTaskRunner final : public base::TaskRunner {
 public:
  void Post(std::function<void()> task) override { tasks_.push_back(std::move(task)); }
  // Runs tasks (and those they post) until none is left; how many ran.
  int RunAll() {
    int n = 0;
    while (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      task();
      ++n;
    }
    return n;
  }
  size_t pending() const { return tasks_.size(); }

 private:
  std::deque<std::function<void()>> tasks_;
};

class InlineTaskRunner final : public base::TaskRunner {
 public:
  void Post(std::function<void()> task) override { task(); }
};

}  // namespace amld::testing
