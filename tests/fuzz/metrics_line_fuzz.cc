// libFuzzer target: one line of a run's metrics file (daemon/ingest/
// metrics_tail.h), written by the run's code — anything at all.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "daemon/ingest/metrics_tail.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const absl::flat_hash_map<std::string, int64_t> earlier = {{"loss", 3}, {"acc", 0}};
  absl::string_view line(reinterpret_cast<const char*>(data), size);
  (void)amld::daemon::ParseMetricLine(line, absl::FromUnixSeconds(1700000000), earlier);
  return 0;
}
