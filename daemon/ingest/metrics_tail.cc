#include "daemon/ingest/metrics_tail.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

using json = nlohmann::json;

constexpr size_t kReadChunk = 256 * 1024;
// Enough of a bad line for a person to recognize it.
constexpr size_t kExcerptBytes = 120;

// Python's json module writes NaN, Infinity and -Infinity, which JSON lacks.
// Outside strings they become strings holding a NUL-led marker: no JSON text
// yields a NUL in a string except by spelling \u0000, and lines that do are
// left alone (their non-finite numbers are then reported as malformed).
constexpr char kNaN[] = "\\u0000NaN";
constexpr char kInf[] = "\\u0000Infinity";
constexpr char kNegInf[] = "\\u0000-Infinity";

// Returns false, changing nothing, for a line that spells \u0000.
bool QuoteNonFiniteNumbers(absl::string_view line, std::string* out) {
  if (absl::StrContains(line, "\\u0000")) return false;
  out->reserve(line.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out->push_back(c);
      if (c == '\\' && i + 1 < line.size()) {
        out->push_back(line[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    in_string = c == '"';
    bool replaced = false;
    for (auto [token, marker] :
         {std::pair{"-Infinity", kNegInf}, std::pair{"Infinity", kInf}, std::pair{"NaN", kNaN}}) {
      if (absl::StartsWith(line.substr(i), token)) {
        absl::StrAppend(out, "\"", marker, "\"");
        i += strlen(token) - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out->push_back(c);
  }
  return true;
}

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

absl::Status SetValue(const json& value, bool markers, amld::v1::Metric* m) {
  if (value.is_number()) {
    m->set_number(value.get<double>());
    if (value.is_number_integer()) m->set_value_type(amld::v1::Metric::VALUE_INTEGER);
  } else if (value.is_boolean()) {
    m->set_number(value.get<bool>() ? 1 : 0);
    m->set_value_type(amld::v1::Metric::VALUE_BOOLEAN);
  } else if (value.is_null()) {
    m->set_number(std::numeric_limits<double>::quiet_NaN());
    m->set_value_type(amld::v1::Metric::VALUE_NONE);
  } else if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (!markers) {
      m->set_text(s);
    } else if (s == std::string_view("\0NaN", 4)) {
      m->set_number(std::numeric_limits<double>::quiet_NaN());
    } else if (s == std::string_view("\0Infinity", 9)) {
      m->set_number(std::numeric_limits<double>::infinity());
    } else if (s == std::string_view("\0-Infinity", 10)) {
      m->set_number(-std::numeric_limits<double>::infinity());
    } else {
      m->set_text(s);
    }
  } else {
    return Invalid(absl::StrCat("\"value\" must be a number, a string, true, false or null, not ",
                                value.type_name()));
  }
  return absl::OkStatus();
}

absl::Status SetStep(const json& step, amld::v1::Metric* m) {
  if (step.is_number_unsigned()) {
    if (step.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid("\"step\" is too large");
    }
  } else if (!step.is_number_integer()) {
    return Invalid("\"step\" must be an integer");
  }
  m->set_step(step.get<int64_t>());
  return absl::OkStatus();
}

absl::Status SetTime(const json& time, amld::v1::Metric* m) {
  // ±9e9 s keeps nanoseconds within int64.
  if (!time.is_number() || !std::isfinite(time.get<double>()) ||
      std::fabs(time.get<double>()) > 9e9) {
    return Invalid("\"time\" must be seconds since the epoch (a number)");
  }
  const double seconds = std::floor(time.get<double>());
  m->mutable_time()->set_seconds(static_cast<int64_t>(seconds));
  m->mutable_time()->set_nanos(
      std::min(999'999'999, static_cast<int>(std::llround((time.get<double>() - seconds) * 1e9))));
  return absl::OkStatus();
}

std::string Excerpt(absl::string_view line) {
  if (line.size() <= kExcerptBytes) return absl::CHexEscape(line);
  return absl::StrCat(absl::CHexEscape(line.substr(0, kExcerptBytes)), "…");
}

absl::Status StringMap(const json& doc, const char* key,
                       std::vector<std::pair<std::string, std::string>>* out) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return Invalid(absl::StrCat("\"", key, "\" must be an object"));
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) {
      return Invalid(absl::StrCat("\"", key, "\": the value of \"", k, "\" must be a string"));
    }
    out->emplace_back(k, v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> String(const json& doc, const char* key, bool required) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) {
    if (required) return Invalid(absl::StrCat("\"", key, "\" is missing"));
    return std::string();
  }
  if (!it->is_string()) return Invalid(absl::StrCat("\"", key, "\" must be a string"));
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<RunRecordLine> ParseRecordLine(absl::string_view line) {
  json doc;
  try {
    doc = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    return Invalid(absl::StrCat("not JSON (", e.what(), ")"));
  }
  if (!doc.is_object()) return Invalid("not a JSON object");
  AMLD_ASSIGN_OR_RETURN(std::string kind, String(doc, "kind", true));
  RunRecordLine r;
  if (kind == "tags") {
    AMLD_RETURN_IF_ERROR(StringMap(doc, "set", &r.labels.set_tags));
    auto remove = doc.find("remove");
    if (remove != doc.end() && !remove->is_null()) {
      if (!remove->is_array()) return Invalid("\"remove\" must be a list of strings");
      for (const json& k : *remove) {
        if (!k.is_string()) return Invalid("\"remove\" must be a list of strings");
        r.labels.remove_tags.push_back(k.get<std::string>());
      }
    }
  } else if (kind == "properties") {
    AMLD_RETURN_IF_ERROR(StringMap(doc, "add", &r.labels.add_properties));
  } else if (kind == "display_name") {
    AMLD_ASSIGN_OR_RETURN(std::string value, String(doc, "value", true));
    r.labels.display_name = value;
  } else if (kind == "fail") {
    AMLD_ASSIGN_OR_RETURN(std::string error, String(doc, "error", false));
    r.labels.failure = error;
  } else if (kind == "upload") {
    r.kind = RunRecordLine::Kind::kUpload;
    AMLD_ASSIGN_OR_RETURN(r.upload_name, String(doc, "name", true));
  } else if (kind == "register_model") {
    r.kind = RunRecordLine::Kind::kRegisterModel;
    AMLD_ASSIGN_OR_RETURN(std::string name, String(doc, "name", true));
    AMLD_ASSIGN_OR_RETURN(std::string path, String(doc, "path", true));
    AMLD_ASSIGN_OR_RETURN(std::string description, String(doc, "description", false));
    r.model.set_name(name);
    r.model.set_source_path(path);
    r.model.set_description(description);
    std::vector<std::pair<std::string, std::string>> tags, properties;
    AMLD_RETURN_IF_ERROR(StringMap(doc, "tags", &tags));
    AMLD_RETURN_IF_ERROR(StringMap(doc, "properties", &properties));
    for (auto& [k, v] : tags) (*r.model.mutable_tags())[k] = v;
    for (auto& [k, v] : properties) (*r.model.mutable_properties())[k] = v;
  } else {
    return Invalid(absl::StrCat("unknown \"kind\" \"", absl::CHexEscape(kind),
                                "\" (known: tags, properties, display_name, fail, upload, "
                                "register_model)"));
  }
  return r;
}

absl::StatusOr<amld::v1::Metric> ParseMetricLine(
    absl::string_view line, absl::Time now,
    const absl::flat_hash_map<std::string, int64_t>& earlier_values) {
  std::string quoted;
  const bool markers = QuoteNonFiniteNumbers(line, &quoted);
  json doc;
  try {
    doc = markers ? json::parse(quoted) : json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    return Invalid(absl::StrCat("not JSON (", e.what(), ")"));
  }
  if (!doc.is_object()) return Invalid("not a JSON object");
  auto name = doc.find("name");
  if (name == doc.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return Invalid("\"name\" must be a non-empty string");
  }
  amld::v1::Metric m;
  m.set_name(name->get<std::string>());
  auto value = doc.find("value");
  if (value == doc.end()) return Invalid("\"value\" is missing");
  absl::Status s = SetValue(*value, markers, &m);
  auto table = doc.find("table");
  if (s.ok() && table != doc.end() && !table->is_null()) {
    if (!table->is_string() || table->get_ref<const std::string&>().empty() ||
        !absl::StartsWith(m.name(), absl::StrCat(table->get_ref<const std::string&>(), "/")) ||
        m.name().size() == table->get_ref<const std::string&>().size() + 1) {
      s = Invalid("\"table\" must be a non-empty string and \"name\" \"<table>/<column>\"");
    } else {
      m.set_table(table->get<std::string>());
    }
  }
  if (s.ok()) {
    auto step = doc.find("step");
    if (step != doc.end() && !step->is_null()) {
      s = SetStep(*step, &m);
    } else {
      auto it = earlier_values.find(m.name());
      m.set_step(it == earlier_values.end() ? 0 : it->second);
    }
  }
  if (s.ok()) {
    auto time = doc.find("time");
    if (time != doc.end() && !time->is_null()) {
      s = SetTime(*time, &m);
    } else {
      const int64_t ns = absl::ToUnixNanos(now);
      m.mutable_time()->set_seconds(ns / 1'000'000'000);
      m.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    }
  }
  if (!s.ok()) return s;
  return m;
}

absl::StatusOr<MetricsTail::Batch> MetricsTail::Read(int fd, absl::Time now, bool at_end) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return amld::base::ErrnoStatus(errno, "stat", "metrics.jsonl");
  const MetricsTail before = *this;
  Batch batch;
  if (st.st_size < offset_) {
    batch.warnings.push_back(absl::StrCat("metrics.jsonl shrank from ", offset_, " to ", st.st_size,
                                          " bytes (rewritten?); reading it again from the top"));
    offset_ = 0;
    lines_ = 0;
    in_long_line_ = false;
  }
  // `line` holds the bytes from offset_ to pos: the start of a line whose
  // newline has not been read yet.
  std::string line;
  std::vector<char> buf(kReadChunk);
  for (int64_t pos = offset_; pos < st.st_size;) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(kReadChunk, st.st_size - pos));
    ssize_t n = ::pread(fd, buf.data(), want, pos);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      *this = before;
      return amld::base::ErrnoStatus(err, "read", "metrics.jsonl");
    }
    if (n == 0) break;  // truncated meanwhile; the next read notices
    pos += n;
    absl::string_view chunk(buf.data(), static_cast<size_t>(n));
    for (size_t nl; (nl = chunk.find('\n')) != absl::string_view::npos;) {
      if (in_long_line_) {
        in_long_line_ = false;
      } else {
        line.append(chunk.data(), nl);
        TakeLine(line, now, &batch);
      }
      line.clear();
      chunk.remove_prefix(nl + 1);
      offset_ = pos - static_cast<int64_t>(chunk.size());
    }
    if (in_long_line_) {
      offset_ = pos;
      continue;
    }
    line.append(chunk.data(), chunk.size());
    if (static_cast<int64_t>(line.size()) > kMaxMetricLineBytes) {
      ++lines_;
      if (skip_values_ == 0) {
        batch.warnings.push_back(absl::StrCat("metrics.jsonl line ", lines_,
                                              ": skipped: longer than ", kMaxMetricLineBytes,
                                              " bytes"));
        ++batch.lines_skipped;
      }
      in_long_line_ = true;
      line.clear();
      offset_ = pos;
    }
  }
  if (at_end && !line.empty()) {
    TakeLine(line, now, &batch);
    offset_ += static_cast<int64_t>(line.size());
  }
  return batch;
}

void MetricsTail::TakeLine(absl::string_view line, absl::Time now, Batch* batch) {
  ++lines_;
  if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
  if (absl::StripAsciiWhitespace(line).empty()) return;
  // Metric lines start {"name"; only record lines need a look for "kind".
  if (absl::StrContains(line, "\"kind\"") && static_cast<int64_t>(line.size()) <= kMaxMetricLineBytes) {
    absl::StatusOr<RunRecordLine> record = ParseRecordLine(line);
    if (record.ok()) {
      record->line = lines_;
      batch->records.push_back(*std::move(record));
      return;
    }
    if (!absl::IsInvalidArgument(record.status()) ||
        !absl::StrContains(record.status().message(), "\"kind\" is missing")) {
      if (skip_values_ == 0) {
        batch->warnings.push_back(absl::StrCat("metrics.jsonl line ", lines_, ": skipped: ",
                                               record.status().message(), ": ", Excerpt(line)));
        ++batch->lines_skipped;
      }
      return;
    }
  }
  absl::StatusOr<amld::v1::Metric> metric =
      static_cast<int64_t>(line.size()) > kMaxMetricLineBytes
          ? absl::InvalidArgumentError(absl::StrCat("longer than ", kMaxMetricLineBytes, " bytes"))
          : ParseMetricLine(line, now, values_per_name_);
  if (!metric.ok()) {
    // Lines before the restart point were reported by the last daemon.
    if (skip_values_ == 0) {
      batch->warnings.push_back(absl::StrCat("metrics.jsonl line ", lines_, ": skipped: ",
                                             metric.status().message(), ": ", Excerpt(line)));
      ++batch->lines_skipped;
    }
    return;
  }
  ++values_per_name_[metric->name()];
  if (skip_values_ > 0) {
    --skip_values_;
    return;
  }
  batch->metrics.push_back(*std::move(metric));
}

}  // namespace amld::daemon
