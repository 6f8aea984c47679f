#include "client/interrupt.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace amld::client {

void Interrupt::Trigger() {
  absl::MutexLock lock(&mu_);
  triggered_ = true;
  if (call_ != nullptr) call_->TryCancel();
}

bool Interrupt::triggered() const {
  absl::MutexLock lock(&mu_);
  return triggered_;
}

bool Interrupt::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&triggered_), d);
  return triggered_;
}

Interrupt::CallGuard::CallGuard(Interrupt* interrupt, grpc::ClientContext* ctx)
    : interrupt_(interrupt) {
  if (interrupt_ == nullptr) return;
  absl::MutexLock lock(&interrupt_->mu_);
  interrupt_->call_ = ctx;
  if (interrupt_->triggered_) ctx->TryCancel();
}

Interrupt::CallGuard::~CallGuard() {
  if (interrupt_ == nullptr) return;
  absl::MutexLock lock(&interrupt_->mu_);
  interrupt_->call_ = nullptr;
}

namespace {

std::atomic<int> g_signal_pipe_write{-1};

void OnSignal(int) {
  const int saved_errno = errno;
  const int fd = g_signal_pipe_write.load();
  if (fd >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

struct sigaction g_old_sigint;
struct sigaction g_old_sigterm;

}  // namespace

SigintInterrupt::SigintInterrupt(Interrupt* interrupt) : interrupt_(interrupt) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;  // Ctrl-C then keeps its default action
  pipe_read_ = fds[0];
  g_signal_pipe_write.store(fds[1]);
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, &g_old_sigint);
  ::sigaction(SIGTERM, &sa, &g_old_sigterm);
  watcher_ = std::thread([this] {
    char byte;
    // A 0-byte read means the destructor closed the write end.
    while (true) {
      ssize_t n = ::read(pipe_read_, &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || byte == 0) break;
      interrupt_->Trigger();
    }
  });
}

SigintInterrupt::~SigintInterrupt() {
  if (pipe_read_ < 0) return;
  ::sigaction(SIGINT, &g_old_sigint, nullptr);
  ::sigaction(SIGTERM, &g_old_sigterm, nullptr);
  const int write_fd = g_signal_pipe_write.exchange(-1);
  const char stop = 0;
  [[maybe_unused]] ssize_t n = ::write(write_fd, &stop, 1);
  watcher_.join();
  ::close(write_fd);
  ::close(pipe_read_);
}

}  // namespace amld::client
