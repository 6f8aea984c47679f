#include "base/parse_duration.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace amld::base {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 86400;

absl::Status Bad(std::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", absl::string_view(text.data(), text.size()),
      "\" is not a duration; write seconds (90) or 90s, 15m, 1h30m, 2d, or H:MM:SS (1:30:00)"));
}

// Reads digits at `pos`; false when there are none or too many.
bool Number(std::string_view s, size_t& pos, int64_t& out) {
  const size_t start = pos;
  out = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (out > kMax / 10) return false;
    out = out * 10 + (s[pos++] - '0');
  }
  return pos > start;
}

}  // namespace

absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view text) {
  if (text.empty()) return Bad(text);
  size_t pos = 0;
  int64_t total = 0;
  if (text.find(':') != std::string_view::npos) {
    // [H:]M:SS, each part after the first below 60.
    int parts = 0;
    while (true) {
      int64_t n;
      if (!Number(text, pos, n) || (parts > 0 && n >= 60) || total > kMax / 60) return Bad(text);
      total = total * 60 + n;
      ++parts;
      if (pos == text.size()) break;
      if (text[pos++] != ':' || parts == 3) return Bad(text);
    }
    if (parts < 2) return Bad(text);
    return total;
  }
  std::string seen;
  while (pos < text.size()) {
    int64_t n;
    if (!Number(text, pos, n)) return Bad(text);
    if (pos == text.size()) {
      if (!seen.empty()) return Bad(text);  // "1h30": say 1h30m
      return n;
    }
    const char unit = text[pos++];
    int64_t scale;
    switch (unit) {
      case 'd': scale = 86400; break;
      case 'h': scale = 3600; break;
      case 'm': scale = 60; break;
      case 's': scale = 1; break;
      default: return Bad(text);
    }
    // Each unit once, largest first: "1h30m", not "30m1h".
    if (!seen.empty() && std::string("dhms").find(unit) <= std::string("dhms").find(seen.back())) {
      return Bad(text);
    }
    seen.push_back(unit);
    if (n > kMax / scale || total > kMax - n * scale) return Bad(text);
    total += n * scale;
  }
  return total;
}

}  // namespace amld::base
