// libFuzzer target: amld.yaml (daemon/config.h). Whatever the text, a Status
// comes back: yaml-cpp's exceptions never escape, and what parses passes
// the daemon's own checks or is refused by them, never crashes them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  amld::daemon::DaemonOptions options;
  absl::Status s = amld::daemon::ParseDaemonConfig(
      std::string(reinterpret_cast<const char*>(data), size), "amld.yaml", &options);
  if (s.ok()) (void)amld::daemon::CheckDaemonOptions(options);
  return 0;
}
