// What a run's metrics come to, per name: count, last value and step, min
// and max — as `aml run metrics` lists them and `aml run compare` sets them
// side by side. Pure: the commands fetch Runs.GetMetrics.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "amld/v1/runs.pb.h"

namespace amld::client::commands {

// One metric name's values, in GetMetrics' order (step, then time). The
// pointers are into the response summarized, which must outlive this.
struct MetricSummary {
  std::string name;
  std::vector<const amld::v1::Metric*> values;
  // Over the numeric values only (NaN takes no part); unset when there are
  // none (text metrics).
  std::optional<double> min;
  std::optional<double> max;
};

// A summary per name of `resp`, in its order (by name).
std::vector<MetricSummary> SummarizeMetrics(const amld::v1::GetMetricsResponse& resp);

// "%.6g": 0.25, 1e-05, nan, inf.
std::string FormatMetricNumber(double v);
// A value as text: its number, its text, or "-".
std::string FormatMetricValue(const amld::v1::Metric& m);
// A value as JSON: a number, a string (text; and NaN/Infinity/-Infinity,
// which JSON has no numbers for), or null.
nlohmann::json MetricValueJson(const amld::v1::Metric& m);
// {"name", "count", "last", "last_step", "min", "max"} (min/max null for
// text metrics).
nlohmann::json MetricSummaryJson(const MetricSummary& s);

}  // namespace amld::client::commands
