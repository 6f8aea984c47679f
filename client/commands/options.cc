#include "client/commands/options.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/parse_duration.h"

namespace amld::client::commands {

CLI::Validator Duration() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto seconds = amld::base::ParseDurationSeconds(value);
        if (!seconds.ok()) return std::string(seconds.status().message());
        value = std::to_string(*seconds);
        return "";
      },
      "DURATION");
}

CLI::Validator AtLeast(int64_t min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        int64_t n;
        if (!absl::SimpleAtoi(value, &n)) return absl::StrCat("\"", value, "\" is not a whole number");
        if (n < min) return absl::StrCat("must be at least ", min, ", got ", n);
        return "";
      },
      absl::StrCat("INT>=", min));
}

}  // namespace amld::client::commands
