#include "base/workspace_paths.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

}  // namespace amld::base
