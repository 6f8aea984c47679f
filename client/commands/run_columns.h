// The columns, sort order and tag filter of `aml run list`, for comparing
// runs: built-in columns (id, status, ...), a tag's value (`tag:lr`) and a
// metric's last logged value (`metric:loss`). Pure: the command fetches the
// runs and their metrics; these functions say what to show and in which
// order, so every rule is unit-tested.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"

namespace amld::client::commands {

struct RunColumn {
  enum class Kind { kBuiltin, kTag, kMetric };
  Kind kind = Kind::kBuiltin;
  // A built-in column's name (kBuiltinColumns), a tag's key or a metric's name.
  std::string name;
  bool operator==(const RunColumn&) const = default;
};

// id status experiment submitted duration script name compute priority.
extern const std::vector<std::string> kBuiltinColumns;
// id,status,experiment,submitted,duration,script.
std::vector<RunColumn> DefaultRunColumns();

// "metric:loss", "tag:lr" or a built-in name; INVALID_ARGUMENT naming the
// choices otherwise.
absl::StatusOr<RunColumn> ParseRunColumn(std::string_view text);

// `--columns`: comma-separated columns. When every entry starts with '+',
// they are added to the default columns, before SCRIPT (the one the table
// cuts at the terminal's width); otherwise they replace them.
absl::StatusOr<std::vector<RunColumn>> ParseRunColumns(std::string_view spec);

// `--sort`: a column, "-" in front for descending ("-metric:accuracy").
struct RunSort {
  RunColumn column;
  bool descending = false;
};
absl::StatusOr<RunSort> ParseRunSort(std::string_view text);

// `--tag K=V` (the tag has this value) or `--tag K` (the run has the tag).
struct TagFilter {
  std::string key;
  std::optional<std::string> value;
};
absl::StatusOr<TagFilter> ParseTagFilter(std::string_view text);
bool MatchesTags(const amld::v1::Run& run, const std::vector<TagFilter>& filters);

// A run with the last numeric value of each metric it was asked about.
struct RunRow {
  amld::v1::Run run;
  std::map<std::string, double> metrics;  // name → last value (NaN kept)
};

// The last numeric value of each name in `resp` (GetMetrics order: step,
// then time); names with only text values are absent.
std::map<std::string, double> LastMetricValues(const amld::v1::GetMetricsResponse& resp);

// The cell of `column` for `row` ("-" when it has no value).
std::string CellText(const RunColumn& column, const RunRow& row);
std::string ColumnHeader(const RunColumn& column);

// Sorts `rows` by `sort` (stable: newest first among equals); rows without
// a value (no such tag or metric, a NaN) go last either way. Metrics compare
// as numbers, tags as numbers when both parse as one, else as text.
void SortRunRows(const RunSort& sort, std::vector<RunRow>* rows);

}  // namespace amld::client::commands
