// libFuzzer target: a run's exit.json (daemon/executors/shim/
// shim_protocol.h), which a run could overwrite or a full disk tear. What
// parses must format and parse back to the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/executors/shim/shim_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using amld::daemon::shim::FormatExitRecord;
  using amld::daemon::shim::ParseExitRecord;
  std::string error;
  auto record = ParseExitRecord(std::string_view(reinterpret_cast<const char*>(data), size), &error);
  if (!record.has_value()) return 0;
  std::string again_error;
  auto again = ParseExitRecord(FormatExitRecord(*record), &again_error);
  if (!again.has_value() || FormatExitRecord(*again) != FormatExitRecord(*record)) std::abort();
  return 0;
}
