#include "daemon/executors/run_handle.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace amld::daemon {

RunHandle& RunHandle::Set(absl::string_view key, std::string value) {
  fields_[std::string(key)] = std::move(value);
  return *this;
}

RunHandle& RunHandle::Set(absl::string_view key, int64_t value) {
  fields_[std::string(key)] = value;
  return *this;
}

RunHandle& RunHandle::Set(absl::string_view key, uint64_t value) {
  fields_[std::string(key)] = value;
  return *this;
}

std::string RunHandle::Encode() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : fields_) {
    std::visit([&j, &key = key](const auto& v) { j[key] = v; }, value);
  }
  return j.dump();
}

absl::StatusOr<RunHandle> RunHandle::Parse(absl::string_view kind, absl::string_view run_id,
                                           const std::string& text) {
  RunHandle h;
  h.kind_ = std::string(kind);
  h.run_id_ = std::string(run_id);
  h.text_ = text;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return h.Invalid("not a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) {
      h.fields_[key] = value.get<std::string>();
    } else if (value.is_number_unsigned()) {
      h.fields_[key] = value.get<uint64_t>();
    } else if (value.is_number_integer()) {
      h.fields_[key] = value.get<int64_t>();
    }  // other types: no field of any executor
  }
  return h;
}

absl::Status RunHandle::Invalid(absl::string_view why) const {
  return absl::InvalidArgumentError(
      absl::StrCat("handle of run ", run_id_, " is not ", kind_, " handle (", why, "): ", text_));
}

absl::StatusOr<std::string> RunHandle::String(absl::string_view key) const {
  auto it = fields_.find(key);
  if (it == fields_.end() || !std::holds_alternative<std::string>(it->second)) {
    return Invalid(absl::StrCat("no ", key));
  }
  return std::get<std::string>(it->second);
}

absl::StatusOr<int64_t> RunHandle::Int(absl::string_view key) const {
  auto it = fields_.find(key);
  if (it != fields_.end()) {
    if (const int64_t* v = std::get_if<int64_t>(&it->second)) return *v;
    if (const uint64_t* v = std::get_if<uint64_t>(&it->second);
        v != nullptr && *v <= static_cast<uint64_t>(INT64_MAX)) {
      return static_cast<int64_t>(*v);
    }
  }
  return Invalid(absl::StrCat("no ", key));
}

absl::StatusOr<uint64_t> RunHandle::Uint(absl::string_view key) const {
  auto it = fields_.find(key);
  if (it != fields_.end()) {
    if (const uint64_t* v = std::get_if<uint64_t>(&it->second)) return *v;
  }
  return Invalid(absl::StrCat("no ", key));
}

void SetShimIdentity(const ShimIdentity& id, RunHandle& handle) {
  handle.Set("shim_pid", static_cast<int64_t>(id.pid))
      .Set("shim_start_time", id.start_time)
      .Set("boot_id", id.boot_id);
}

absl::StatusOr<ShimIdentity> GetShimIdentity(const RunHandle& handle, bool boot_id_required) {
  absl::StatusOr<int64_t> pid = handle.Int("shim_pid");
  if (!pid.ok() || *pid <= 0 || *pid > INT32_MAX) return handle.Invalid("no positive shim_pid");
  absl::StatusOr<uint64_t> start = handle.Uint("shim_start_time");
  if (!start.ok()) return start.status();
  ShimIdentity id;
  id.pid = static_cast<pid_t>(*pid);
  id.start_time = *start;
  absl::StatusOr<std::string> boot = handle.String("boot_id");
  if (boot.ok()) {
    id.boot_id = *boot;
  } else if (boot_id_required) {
    return boot.status();
  }
  return id;
}

absl::StatusOr<ShimIdentity> ParseShimOkLine(absl::string_view line) {
  absl::string_view rest = line;
  if (absl::ConsumePrefix(&rest, "ok ")) {
    std::vector<absl::string_view> parts = absl::StrSplit(rest, ' ');
    int pid = 0;
    ShimIdentity id;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &pid) &&
        absl::SimpleAtoi(parts[1], &id.start_time) && pid > 0) {
      id.pid = pid;
      return id;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("not an amld-shim ok report: ", line));
}

}  // namespace amld::daemon
