#include "client/commands/output.h"

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ostream>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
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
  if (run.exit_signal() == 0 && !run.has_exit_code()) return "exit code lost";
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

bool IsLocalTarget(const amld::v1::RunConfig& c) {
  return c.compute_target().empty() || c.compute_target() == "local";
}

std::string InterpreterText(const amld::v1::RunConfig& c) {
  if (!c.environment().interpreter_path().empty()) return c.environment().interpreter_path();
  if (!c.environment().digest().empty()) return "python of the managed environment";
  if (!IsLocalTarget(c)) return absl::StrCat("python3 on the PATH of ", c.compute_target());
  if (!c.has_submitter_environment()) return "python3 on the daemon's PATH";
  if (c.submitter_environment().python().empty()) {
    return "python3 (none was on the submitter's PATH)";
  }
  return absl::StrCat(c.submitter_environment().python(), " (python3 on the submitter's PATH)");
}

int ExitCodeFor(const Run& run) { return run.status() == amld::v1::RunStatus::COMPLETED ? 0 : 1; }

TableStyle StdoutStyle(int status_column) {
  TableStyle style;
  if (::isatty(STDOUT_FILENO) != 1) return style;
  struct winsize ws;
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) style.width = ws.ws_col;
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  style.colour = (no_color == nullptr || *no_color == '\0') &&
                 (term == nullptr || std::string_view(term) != "dumb");
  style.status_column = status_column;
  return style;
}

std::string Coloured(const std::string& status) {
  const char* code = status == "COMPLETED"                                 ? "32"
                     : status == "FAILED"                                  ? "31"
                     : status == "CANCELED" || status == "CANCEL_REQUESTED" ? "33"
                     : status == "RUNNING" || status == "FINALIZING"       ? "36"
                                                                           : nullptr;
  if (code == nullptr) return status;
  return absl::StrCat("\033[", code, "m", status, "\033[0m");
}

namespace {

// Bytes of `s` that fit in `columns` terminal cells (UTF-8 continuation
// bytes take none), cut at a character boundary.
size_t FitBytes(std::string_view s, size_t columns) {
  size_t cells = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (cells == columns) return i;
    ++cells;
  }
  return s.size();
}

size_t Cells(std::string_view s) {
  size_t cells = 0;
  for (char c : s) cells += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return cells;
}

}  // namespace

void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, const TableStyle& style) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  // Cells no column is narrowed below (shrink_widest).
  constexpr size_t kNarrowest = 8;
  std::vector<bool> narrowed(width.size(), false);
  if (style.shrink_widest && style.width > 0 && width.size() > 1) {
    size_t total = 2 * (width.size() - 1);
    for (size_t w : width) total += w;
    while (total > static_cast<size_t>(style.width)) {
      auto widest = std::max_element(width.begin() + 1, width.end());
      if (*widest <= kNarrowest) break;
      --*widest;
      --total;
      narrowed[widest - width.begin()] = true;
    }
  }
  auto print = [&](const std::vector<std::string>& row, bool is_header) {
    std::string line;
    size_t cells = 0;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      std::string cell = row[i];
      const bool last = i + 1 == row.size();
      if (narrowed[i] && Cells(cell) > width[i]) {
        cell = cell.substr(0, FitBytes(cell, width[i] - 1)) + "\u2026";
      }
      if (last && style.width > 0 && cells + Cells(cell) > static_cast<size_t>(style.width)) {
        const size_t room = static_cast<size_t>(style.width) > cells ? style.width - cells : 0;
        cell = room == 0 ? "" : cell.substr(0, FitBytes(cell, room - 1)) + "\u2026";
      }
      const size_t shown = narrowed[i] ? Cells(cell) : row[i].size();
      const size_t pad = last ? 0 : width[i] - std::min(width[i], shown) + 2;
      cells += Cells(cell) + pad;
      line += style.colour && !is_header && static_cast<int>(i) == style.status_column
                  ? Coloured(cell)
                  : cell;
      line += std::string(pad, ' ');
    }
    out << line << '\n';
  };
  print(header, true);
  for (const auto& row : rows) print(row, false);
}

namespace {

using OrderedJson = nlohmann::ordered_json;
namespace gp = google::protobuf;

// Proto's JSON mapping writes 64-bit integers as strings (for JavaScript);
// amld's numbers (sizes, seconds, steps) are written as numbers. Also: a
// run's compute target "" is `local`, and a run that has not ended has no
// exit code or signal (null, not 0).
void Normalize(OrderedJson& j, const gp::Descriptor* d) {
  if (!j.is_object() || d->file()->package() == "google.protobuf") return;
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    auto it = j.find(f->name());
    if (it == j.end()) continue;
    auto fix = [f](OrderedJson& v) {
      if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
        Normalize(v, f->message_type());
      } else if (v.is_string() && (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_INT64 ||
                                   f->cpp_type() == gp::FieldDescriptor::CPPTYPE_UINT64)) {
        int64_t n;
        if (absl::SimpleAtoi(v.get<std::string>(), &n)) v = n;
      }
    };
    if (f->is_map()) {
      const gp::FieldDescriptor* value = f->message_type()->map_value();
      for (auto& [k, v] : it->items()) {
        if (value->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
          Normalize(v, value->message_type());
        } else if (v.is_string() && (value->cpp_type() == gp::FieldDescriptor::CPPTYPE_INT64 ||
                                     value->cpp_type() == gp::FieldDescriptor::CPPTYPE_UINT64)) {
          int64_t n;
          if (absl::SimpleAtoi(v.get<std::string>(), &n)) v = n;
        }
      }
    } else if (f->is_repeated()) {
      for (auto& v : *it) fix(v);
    } else {
      fix(*it);
    }
  }
  if (d->full_name() == "amld.v1.RunConfig" && j.value("compute_target", "x").empty()) {
    j["compute_target"] = "local";
  }
  if (d->full_name() == "amld.v1.Run") {
    auto status = RunStatus::UNKNOWN;
    if (j.contains("status") && j["status"].is_string()) {
      RunStatus::Value_Parse(j["status"].get<std::string>(), &status);
    }
    if (!amld::storage::IsTerminal(status)) {
      j["exit_code"] = nullptr;
      j["exit_signal"] = nullptr;
    }
  }
}

}  // namespace

std::string ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string json;
  auto st = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!st.ok()) return absl::StrCat("{\"error\": \"cannot print as JSON: ", st.ToString(), "\"}");
  OrderedJson j = OrderedJson::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return json;
  Normalize(j, message.GetDescriptor());
  return j.dump(2);
}

}  // namespace amld::client::commands
