#include "client/commands/output.h"

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace amld::client::commands {

using amld::v1::Run;
using amld::v1::RunStatus;

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string FormatTimestamp(const google::protobuf::Timestamp& ts, bool millis) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime(millis ? "%Y-%m-%d %H:%M:%E3S" : "%Y-%m-%d %H:%M:%S", ToAbslTime(ts),
                          absl::LocalTimeZone());
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  if (d < absl::Seconds(1)) return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  if (d < absl::Minutes(1)) return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d));
  const int64_t s = absl::ToInt64Seconds(d);
  if (d < absl::Hours(1)) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
}

absl::StatusOr<RunStatus::Value> ParseStatusName(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  RunStatus::Value value;
  if (RunStatus::Value_Parse(upper, &value) && value != RunStatus::UNKNOWN) return value;
  std::vector<std::string> names;
  for (int v = RunStatus::Value_MIN; v <= RunStatus::Value_MAX; ++v) {
    if (RunStatus::Value_IsValid(v) && v != RunStatus::UNKNOWN) {
      names.push_back(RunStatus::Value_Name(static_cast<RunStatus::Value>(v)));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown run status \"", std::string(name),
                                                 "\"; use one of ", absl::StrJoin(names, ", ")));
}

const google::protobuf::Timestamp* TransitionTime(const Run& run, RunStatus::Value status) {
  const google::protobuf::Timestamp* found = nullptr;
  for (const auto& t : run.history()) {
    if (t.status() == status) found = &t.time();
  }
  return found;
}

absl::Duration RunDuration(const Run& run) {
  const auto* start = TransitionTime(run, RunStatus::RUNNING);
  if (start == nullptr) return absl::ZeroDuration();
  absl::Time end = absl::Now();
  for (auto s :
       {RunStatus::FINALIZING, RunStatus::COMPLETED, RunStatus::FAILED, RunStatus::CANCELED}) {
    if (const auto* t = TransitionTime(run, s)) {
      end = ToAbslTime(*t);
      break;
    }
  }
  return end - ToAbslTime(*start);
}

absl::Duration QueueWait(const Run& run) {
  // The history is oldest first and starts with QUEUED; whatever comes next
  // (PREPARING, or CANCELED/FAILED for a run that never left the queue)
  // ends the wait.
  const auto& h = run.history();
  if (h.empty() || h[0].status() != RunStatus::QUEUED) return absl::ZeroDuration();
  const absl::Time left = h.size() > 1 ? ToAbslTime(h[1].time()) : absl::Now();
  return left - ToAbslTime(h[0].time());
}

std::string ExitStatusText(const Run& run) {
  // The exit is recorded with FINALIZING; a run that never got there has none.
  if (TransitionTime(run, RunStatus::FINALIZING) == nullptr) return "";
  if (run.exit_signal() == 0) return absl::StrCat("exit code ", run.exit_code());
  const char* name = ::sigabbrev_np(run.exit_signal());
  return name == nullptr ? absl::StrCat("signal ", run.exit_signal())
                         : absl::StrCat("signal ", run.exit_signal(), " (SIG", name, ")");
}

std::string StatusWithError(const Run& run) {
  std::string s = StatusName(run.status());
  if (!run.error().empty()) absl::StrAppend(&s, " (", run.error(), ")");
  return s;
}

std::string FinalNote(const Run& run) {
  std::string note = absl::StrCat("run ", run.id(), " ", StatusWithError(run));
  if (const absl::Duration d = RunDuration(run); d > absl::ZeroDuration()) {
    absl::StrAppend(&note, " after ", HumanDuration(d));
  }
  return note;
}

int ExitCodeFor(const Run& run) { return run.status() == amld::v1::RunStatus::COMPLETED ? 0 : 1; }

void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << '\n';
  };
  print(header);
  for (const auto& row : rows) print(row);
}

std::string ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string json;
  auto st = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!st.ok()) return absl::StrCat("{\"error\": \"cannot print as JSON: ", st.ToString(), "\"}");
  // add_whitespace ends without a newline in some versions; callers add one.
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

}  // namespace amld::client::commands
