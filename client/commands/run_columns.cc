#include "client/commands/run_columns.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/commands/output.h"

namespace amld::client::commands {
namespace {

using Kind = RunColumn::Kind;

std::string WhatRan(const amld::v1::RunConfig& c) {
  std::string s = c.script().empty() ? c.command() : c.script();
  if (c.arguments_size() > 0) s += " " + absl::StrJoin(c.arguments(), " ");
  return s;
}

// A value to sort by: a number, a text, or none (sorted last).
struct SortKey {
  std::optional<double> number;
  std::optional<std::string> text;
};

SortKey KeyOf(const RunColumn& c, const RunRow& row) {
  const auto& r = row.run;
  switch (c.kind) {
    case Kind::kMetric: {
      auto it = row.metrics.find(c.name);
      if (it == row.metrics.end() || std::isnan(it->second)) return {};
      return {it->second, {}};
    }
    case Kind::kTag: {
      auto it = r.config().tags().find(c.name);
      if (it == r.config().tags().end()) return {};
      double d;
      if (absl::SimpleAtod(it->second, &d) && !std::isnan(d)) return {d, it->second};
      return {{}, it->second};
    }
    case Kind::kBuiltin:
      break;
  }
  if (c.name == "submitted") {
    return {static_cast<double>(r.created_time().seconds()) + r.created_time().nanos() * 1e-9, {}};
  }
  if (c.name == "duration") {
    const absl::Duration d = RunDuration(r);
    if (d <= absl::ZeroDuration()) return {};
    return {absl::ToDoubleSeconds(d), {}};
  }
  if (c.name == "priority") return {static_cast<double>(r.config().priority()), {}};
  return {{}, CellText(c, row)};
}

}  // namespace

const std::vector<std::string> kBuiltinColumns = {
    "id", "status", "experiment", "submitted", "duration", "script", "name", "compute", "priority"};

std::vector<RunColumn> DefaultRunColumns() {
  std::vector<RunColumn> out;
  for (const char* n : {"id", "status", "experiment", "submitted", "duration", "script"}) {
    out.push_back({Kind::kBuiltin, n});
  }
  return out;
}

absl::StatusOr<RunColumn> ParseRunColumn(std::string_view text) {
  absl::string_view t(text.data(), text.size());
  t = absl::StripAsciiWhitespace(t);
  for (auto [prefix, kind] : {std::pair{"metric:", Kind::kMetric}, std::pair{"tag:", Kind::kTag}}) {
    if (absl::ConsumePrefix(&t, prefix)) {
      if (t.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("column \"", std::string(text), "\" names no ",
                         kind == Kind::kMetric ? "metric: give metric:NAME" : "tag: give tag:KEY"));
      }
      return RunColumn{kind, std::string(t)};
    }
  }
  std::string lower = absl::AsciiStrToLower(t);
  if (lower == "run") lower = "id";
  if (std::find(kBuiltinColumns.begin(), kBuiltinColumns.end(), lower) != kBuiltinColumns.end()) {
    return RunColumn{Kind::kBuiltin, lower};
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown column \"", std::string(text),
                                                 "\"; columns are ",
                                                 absl::StrJoin(kBuiltinColumns, ", "),
                                                 ", metric:NAME (its last value) and tag:KEY"));
}

absl::StatusOr<std::vector<RunColumn>> ParseRunColumns(std::string_view spec) {
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',', absl::SkipWhitespace());
  for (std::string& p : parts) p = std::string(absl::StripAsciiWhitespace(p));
  if (parts.empty()) return absl::InvalidArgumentError("--columns names no column");
  const bool adding =
      std::all_of(parts.begin(), parts.end(), [](const std::string& p) { return p[0] == '+'; });
  std::vector<RunColumn> added;
  for (std::string& p : parts) {
    absl::StatusOr<RunColumn> c = ParseRunColumn(adding ? std::string_view(p).substr(1) : p);
    if (!c.ok()) return c.status();
    added.push_back(*std::move(c));
  }
  if (!adding) return added;
  std::vector<RunColumn> out = DefaultRunColumns();
  out.insert(out.end() - 1, added.begin(), added.end());  // before SCRIPT
  return out;
}

absl::StatusOr<RunSort> ParseRunSort(std::string_view text) {
  RunSort s;
  if (!text.empty() && text.front() == '-') {
    s.descending = true;
    text.remove_prefix(1);
  }
  absl::StatusOr<RunColumn> c = ParseRunColumn(text);
  if (!c.ok()) return c.status();
  s.column = *std::move(c);
  return s;
}

absl::StatusOr<TagFilter> ParseTagFilter(std::string_view text) {
  const size_t eq = text.find('=');
  TagFilter f;
  f.key = std::string(text.substr(0, eq));
  if (f.key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tag \"", std::string(text), "\" names no tag: give KEY=VALUE or KEY"));
  }
  if (eq != std::string_view::npos) f.value = std::string(text.substr(eq + 1));
  return f;
}

bool MatchesTags(const amld::v1::Run& run, const std::vector<TagFilter>& filters) {
  const auto& tags = run.config().tags();
  return std::all_of(filters.begin(), filters.end(), [&](const TagFilter& f) {
    auto it = tags.find(f.key);
    return it != tags.end() && (!f.value || it->second == *f.value);
  });
}

std::map<std::string, double> LastMetricValues(const amld::v1::GetMetricsResponse& resp) {
  std::map<std::string, double> out;
  for (const auto& m : resp.metrics()) {
    if (m.value_case() == amld::v1::Metric::kNumber) out[m.name()] = m.number();
  }
  return out;
}

std::string ColumnHeader(const RunColumn& c) {
  if (c.kind == Kind::kMetric) return absl::AsciiStrToUpper(c.name);
  if (c.kind == Kind::kTag) return absl::AsciiStrToUpper(c.name);
  if (c.name == "id") return "RUN";
  return absl::AsciiStrToUpper(c.name);
}

std::string CellText(const RunColumn& c, const RunRow& row) {
  const amld::v1::Run& r = row.run;
  switch (c.kind) {
    case Kind::kMetric: {
      auto it = row.metrics.find(c.name);
      return it == row.metrics.end() ? "-" : absl::StrFormat("%.6g", it->second);
    }
    case Kind::kTag: {
      auto it = r.config().tags().find(c.name);
      return it == r.config().tags().end() ? "-" : it->second;
    }
    case Kind::kBuiltin:
      break;
  }
  if (c.name == "id") return r.id();
  if (c.name == "status") return StatusName(r.status());
  if (c.name == "experiment") return r.config().experiment_name();
  if (c.name == "submitted") return FormatTimestamp(r.created_time());
  if (c.name == "duration") {
    const absl::Duration d = RunDuration(r);
    return d > absl::ZeroDuration() ? HumanDuration(d) : "-";
  }
  if (c.name == "script") return WhatRan(r.config());
  if (c.name == "name") return r.config().display_name().empty() ? "-" : r.config().display_name();
  if (c.name == "compute") {
    return r.config().compute_target().empty() ? "local" : r.config().compute_target();
  }
  if (c.name == "priority") return std::to_string(r.config().priority());
  return "-";
}

void SortRunRows(const RunSort& sort, std::vector<RunRow>* rows) {
  std::vector<std::pair<SortKey, size_t>> keys;
  keys.reserve(rows->size());
  for (size_t i = 0; i < rows->size(); ++i) keys.emplace_back(KeyOf(sort.column, (*rows)[i]), i);
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    const SortKey& x = a.first;
    const SortKey& y = b.first;
    const bool x_has = x.number || x.text;
    const bool y_has = y.number || y.text;
    if (x_has != y_has) return x_has;  // values first, whichever the direction
    if (!x_has) return false;
    if (x.number && y.number) return sort.descending ? *x.number > *y.number : *x.number < *y.number;
    if (x.number != y.number) return x.number.has_value();  // numbers before text
    return sort.descending ? *x.text > *y.text : *x.text < *y.text;
  });
  std::vector<RunRow> sorted;
  sorted.reserve(rows->size());
  for (const auto& [key, i] : keys) sorted.push_back(std::move((*rows)[i]));
  *rows = std::move(sorted);
}

}  // namespace amld::client::commands
