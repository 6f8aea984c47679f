// Interrupt: lets one thread stop another thread's blocking gRPC calls and
// sleeps, e.g. a follow loop stopped by Ctrl-C. A follow loop registers the
// ClientContext of its current call; Trigger() cancels it and wakes sleeps.
//
// SigintInterrupt turns SIGINT into Trigger(): the signal handler only
// writes to a pipe (async-signal-safe); a watcher thread does the rest.
// While one exists, Ctrl-C no longer kills the process: the command decides
// what to print and which exit code to use.
//
// Thread-safety: Interrupt is thread-safe. One SigintInterrupt at a time.
#pragma once

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class ClientContext;
}

namespace amld::client {

class Interrupt {
 public:
  // Cancels the registered call and wakes every SleepFor. Idempotent.
  void Trigger();
  bool triggered() const;
  // Sleeps up to `d`; returns true when interrupted (at once, or during it).
  bool SleepFor(absl::Duration d);

  // Registers `ctx` for the life of the guard; if Trigger() already
  // happened (or happens later), the call is cancelled.
  class CallGuard {
   public:
    CallGuard(Interrupt* interrupt, grpc::ClientContext* ctx);
    ~CallGuard();
    CallGuard(const CallGuard&) = delete;
    CallGuard& operator=(const CallGuard&) = delete;

   private:
    Interrupt* interrupt_;
  };

 private:
  mutable absl::Mutex mu_;
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class SigintInterrupt {
 public:
  // Installs the SIGINT (and SIGTERM) handler; the previous handlers come
  // back on destruction.
  explicit SigintInterrupt(Interrupt* interrupt);
  ~SigintInterrupt();
  SigintInterrupt(const SigintInterrupt&) = delete;
  SigintInterrupt& operator=(const SigintInterrupt&) = delete;

 private:
  Interrupt* interrupt_;
  int pipe_read_ = -1;
  std::thread watcher_;
};

}  // namespace amld::client
