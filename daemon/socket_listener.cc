#include "daemon/socket_listener.h"

#include <fcntl.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::base::ErrnoStatus;
using amld::base::ScopedFd;

constexpr int kSystemdFirstFd = 3;  // SD_LISTEN_FDS_START

absl::StatusOr<sockaddr_un> UnixAddress(const fs::path& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  const std::string& s = path.native();
  if (s.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", s, " is longer than ",
                                                   sizeof(addr.sun_path) - 1,
                                                   " bytes; choose a shorter --socket"));
  }
  std::memcpy(addr.sun_path, s.data(), s.size());
  return addr;
}

// The socket's folder: created 0700 (shared: 0755) when missing; refused when another user
// owns it (someone could swap the socket). A folder of ours that is open to
// others is tightened only when it is amld's own ("amld", "amld-<uid>"), never
// a folder the user merely pointed --socket into.
absl::Status PrepareSocketDir(const fs::path& dir, bool shared) {
  const mode_t mode = shared ? 0755 : 0700;
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), mode) == 0) {
      // The daemon's umask (077) took the shared folder's bits away.
      if (::chmod(dir.c_str(), mode) != 0) return ErrnoStatus(errno, "chmod", dir);
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, "mkdir", dir);
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir.string(), " is not a folder"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket folder ", dir.string(), " belongs to uid ", st.st_uid,
                     ", not to you; remove it or choose another --socket"));
  }
  const std::string name = dir.filename().string();
  const bool wrong = shared ? (st.st_mode & 0777) != mode : (st.st_mode & 077) != 0;
  if (wrong && (name == "amld" || absl::StartsWith(name, "amld-"))) {
    if (::chmod(dir.c_str(), mode) != 0) return ErrnoStatus(errno, "chmod", dir);
  }
  return absl::OkStatus();
}

// Removes a socket file whose daemon is gone; refuses to touch a live one or
// a file that is not a socket.
absl::Status ClearStaleSocket(const fs::path& path, const sockaddr_un& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "stat", path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path.string(), " exists and is not a socket; remove it or choose another --socket"));
  }
  ScopedFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return ErrnoStatus(errno, "socket", path);
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("another daemon is listening on ", path.string(),
                     "; stop it (aml daemon stop) or choose another --socket"));
  }
  if (errno != ECONNREFUSED && errno != ENOENT) return ErrnoStatus(errno, "connect", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", path);
  return absl::OkStatus();
}

}  // namespace

SocketListener::SocketListener(ScopedFd fd, fs::path path, bool owns_file, bool shared)
    : listen_fd_(std::move(fd)), path_(std::move(path)), owns_file_(owns_file), shared_(shared) {
  wake_fd_ = ScopedFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  struct stat st;
  if (owns_file_ && ::stat(path_.c_str(), &st) == 0) socket_inode_ = st.st_ino;
}

SocketListener::~SocketListener() { Stop(); }

absl::StatusOr<std::unique_ptr<SocketListener>> SocketListener::Bind(const fs::path& path,
                                                                     bool shared) {
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  absl::Status s = PrepareSocketDir(path.parent_path(), shared);
  if (!s.ok()) return s;
  s = ClearStaleSocket(path, *addr);
  if (!s.ok()) return s;
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket", path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return ErrnoStatus(errno, "bind", path);
  }
  // bind() creates the file with the umask's mode; the 0700 folder covers
  // the moment until this chmod. Shared: anyone may connect (access is
  // decided per call).
  if (::chmod(path.c_str(), shared ? 0666 : 0600) != 0) return ErrnoStatus(errno, "chmod", path);
  if (::listen(fd.get(), SOMAXCONN) != 0) return ErrnoStatus(errno, "listen", path);
  return std::unique_ptr<SocketListener>(new SocketListener(std::move(fd), path, true, shared));
}

absl::StatusOr<std::unique_ptr<SocketListener>> SocketListener::Adopt(int fd, bool shared) {
  sockaddr_un addr = {};
  socklen_t len = sizeof(addr);
  int accepting = 0;
  socklen_t alen = sizeof(accepting);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sun_family != AF_UNIX ||
      ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) != 0 || !accepting) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd,
                     " passed by socket activation is not a listening Unix socket; "
                     "use ListenStream= with a path in the .socket unit"));
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  fs::path path;
  if (len > offsetof(sockaddr_un, sun_path) && addr.sun_path[0] != '\0') {
    path = std::string(addr.sun_path, strnlen(addr.sun_path, sizeof(addr.sun_path)));
  }
  return std::unique_ptr<SocketListener>(new SocketListener(ScopedFd(fd), path, false, shared));
}

int SocketListener::TakeSocketActivationFd() {
  const char* pid_env = std::getenv("LISTEN_PID");
  const char* fds_env = std::getenv("LISTEN_FDS");
  int64_t pid = 0;
  int64_t fds = 0;
  bool ours = pid_env != nullptr && fds_env != nullptr && absl::SimpleAtoi(pid_env, &pid) &&
              absl::SimpleAtoi(fds_env, &fds) && pid == ::getpid() && fds >= 1;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return ours ? kSystemdFirstFd : -1;
}

void SocketListener::Serve(grpc::Server* server, std::shared_ptr<spdlog::logger> log) {
  log_ = std::move(log);
  thread_ = std::thread([this, server] { AcceptLoop(server); });
}

void SocketListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
  if (owns_file_) {
    struct stat st;
    // Only our own socket: a newer daemon may have replaced it meanwhile.
    if (::lstat(path_.c_str(), &st) == 0 && st.st_ino == socket_inode_) ::unlink(path_.c_str());
    owns_file_ = false;
  }
  listen_fd_ = ScopedFd();
}

void SocketListener::AcceptLoop(grpc::Server* server) {
  while (true) {
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_->error("poll on the listening socket: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      log_->error("accept: {}; pausing 100 ms", std::strerror(errno));
      // Out of fds: the socket stays readable, so back off instead of
      // spinning; a stop request still ends the wait.
      struct pollfd wake = {wake_fd_.get(), POLLIN, 0};
      if (::poll(&wake, 1, 100) > 0) return;
      continue;
    }
    HandleConnection(server, fd);
  }
}

void SocketListener::HandleConnection(grpc::Server* server, int fd) {
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    log_->warn("connection without credentials refused: {}", std::strerror(errno));
    ::close(fd);
    return;
  }
  if (!shared_ && cred.uid != ::geteuid()) {
    // User mode: the socket's owner only (the 0600 socket should already
    // have kept others out).
    log_->warn("connection from uid {} (pid {}) refused: this daemon serves uid {} only", cred.uid,
               cred.pid, ::geteuid());
    ::close(fd);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    uid_by_fd_[fd] = cred.uid;
  }
  grpc::AddInsecureChannelFromFd(server, fd);
}

std::optional<uid_t> SocketListener::UidOfPeer(const std::string& peer) const {
  int fd = 0;
  if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = uid_by_fd_.find(fd);
  if (it == uid_by_fd_.end()) return std::nullopt;
  return it->second;
}

}  // namespace amld::daemon
