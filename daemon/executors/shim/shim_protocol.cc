#include "daemon/executors/shim/shim_protocol.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "nlohmann/json.hpp"

namespace amld::daemon::shim {
namespace {

using nlohmann::json;

constexpr int kExitRecordVersion = 1;

// Reads an integer member without exceptions; absent members keep *out.
bool ReadInt(const json& obj, const char* key, int64_t* out, std::string* error) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_number_integer()) {
    *error = std::string("field \"") + key + "\" is not an integer";
    return false;
  }
  *out = it->get<int64_t>();
  return true;
}

bool ReadBool(const json& obj, const char* key, bool* out, std::string* error) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_boolean()) {
    *error = std::string("field \"") + key + "\" is not a boolean";
    return false;
  }
  *out = it->get<bool>();
  return true;
}

}  // namespace

std::string FormatExitRecord(const ExitRecord& r) {
  json j = {
      {"version", kExitRecordVersion},
      {"exit_code", r.exit_code},
      {"signal", r.signal},
      {"timed_out", r.timed_out},
      {"canceled", r.canceled},
      {"start_time_ns", r.start_time_ns},
      {"end_time_ns", r.end_time_ns},
      {"launch_error", r.launch_error},
      {"user_cpu_ns", r.user_cpu_ns},
      {"system_cpu_ns", r.system_cpu_ns},
      {"max_rss_kb", r.max_rss_kb},
  };
  // argv[0] in a launch error may be any bytes; never throw on bad UTF-8.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<ExitRecord> ParseExitRecord(std::string_view text, std::string* error) {
  if (text.empty()) {
    *error = "empty (a torn write: was the disk full?)";
    return std::nullopt;
  }
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  int64_t version = 0;
  if (!ReadInt(j, "version", &version, error)) return std::nullopt;
  if (version != kExitRecordVersion) {
    *error = "unsupported version " + std::to_string(version);
    return std::nullopt;
  }
  ExitRecord r;
  int64_t exit_code = 0, signal = 0;
  if (!ReadInt(j, "exit_code", &exit_code, error) || !ReadInt(j, "signal", &signal, error) ||
      !ReadBool(j, "timed_out", &r.timed_out, error) ||
      !ReadBool(j, "canceled", &r.canceled, error) ||
      !ReadInt(j, "start_time_ns", &r.start_time_ns, error) ||
      !ReadInt(j, "end_time_ns", &r.end_time_ns, error) ||
      !ReadInt(j, "user_cpu_ns", &r.user_cpu_ns, error) ||
      !ReadInt(j, "system_cpu_ns", &r.system_cpu_ns, error) ||
      !ReadInt(j, "max_rss_kb", &r.max_rss_kb, error)) {
    return std::nullopt;
  }
  r.exit_code = static_cast<int>(exit_code);
  r.signal = static_cast<int>(signal);
  if (auto it = j.find("launch_error"); it != j.end()) {
    if (!it->is_string()) {
      *error = "field \"launch_error\" is not a string";
      return std::nullopt;
    }
    r.launch_error = it->get<std::string>();
  }
  return r;
}

std::optional<uint64_t> ReadProcessStartTime(pid_t pid) {
  char path[64];
  if (pid == 0) {
    std::snprintf(path, sizeof path, "/proc/self/stat");
  } else {
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  }
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // comm (field 2) may hold spaces and ')', so count fields after the last ')'.
  std::string_view stat(buf, static_cast<size_t>(n));
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  // After ") " comes field 3; field 22 is 19 fields further on.
  const char* p = buf + paren + 1;
  for (int field = 3; field < 22; ++field) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\0') ++p;
    if (*p == '\0') return std::nullopt;
  }
  char* end = nullptr;
  unsigned long long start = std::strtoull(p, &end, 10);
  if (end == p) return std::nullopt;
  return static_cast<uint64_t>(start);
}

}  // namespace amld::daemon::shim
