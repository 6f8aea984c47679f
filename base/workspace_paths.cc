#include "base/workspace_paths.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "base/file_util.h"

namespace amld::base {
namespace {

const char* NonEmptyEnv(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

std::filesystem::path HomeDir() {
  if (const char* home = NonEmptyEnv("HOME")) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return "/";
}

}  // namespace

std::filesystem::path DefaultSocketPath() {
  if (const char* s = NonEmptyEnv("AMLD_SOCKET")) return s;
  if (const char* run = NonEmptyEnv("XDG_RUNTIME_DIR")) {
    return std::filesystem::path(run) / "amld" / "amld.sock";
  }
  return std::filesystem::path("/tmp") / ("amld-" + std::to_string(::getuid())) / "amld.sock";
}

std::filesystem::path DefaultDataDir() {
  if (const char* d = NonEmptyEnv("AMLD_DATA_DIR")) return d;
  if (const char* x = NonEmptyEnv("XDG_DATA_HOME")) return std::filesystem::path(x) / "amld";
  return HomeDir() / ".local" / "share" / "amld";
}

std::filesystem::path SystemSocketPath() {
  if (const char* s = NonEmptyEnv("AMLD_SYSTEM_SOCKET")) return s;
  return "/run/amld/amld.sock";
}

namespace {

// True when something accepts connections at the Unix socket `path`.
bool Answers(const std::filesystem::path& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd.valid() &&
         ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

std::filesystem::path ClientSocketPath() {
  std::filesystem::path user = DefaultSocketPath();
  if (NonEmptyEnv("AMLD_SOCKET") != nullptr) return user;
  const std::filesystem::path system = SystemSocketPath();
  struct stat st;
  if (::stat(system.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return user;
  return Answers(user) ? user : system;
}

}  // namespace amld::base
