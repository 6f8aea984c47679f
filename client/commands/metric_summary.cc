#include "client/commands/metric_summary.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace amld::client::commands {

std::vector<MetricSummary> SummarizeMetrics(const amld::v1::GetMetricsResponse& resp) {
  std::vector<MetricSummary> out;
  for (const auto& m : resp.metrics()) {
    if (out.empty() || out.back().name != m.name()) out.push_back({m.name(), {}, {}, {}});
    MetricSummary& s = out.back();
    s.values.push_back(&m);
    // NaN is kept as a value but cannot order: it takes no part in min/max.
    if (m.value_case() != amld::v1::Metric::kNumber || std::isnan(m.number())) continue;
    s.min = s.min ? std::min(*s.min, m.number()) : m.number();
    s.max = s.max ? std::max(*s.max, m.number()) : m.number();
  }
  return out;
}

std::string FormatMetricNumber(double v) { return absl::StrFormat("%.6g", v); }

std::string FormatMetricValue(const amld::v1::Metric& m) {
  if (m.value_case() == amld::v1::Metric::kText) return m.text();
  if (m.value_case() == amld::v1::Metric::kNumber) return FormatMetricNumber(m.number());
  return "-";
}

nlohmann::json MetricValueJson(const amld::v1::Metric& m) {
  if (m.value_case() == amld::v1::Metric::kText) return m.text();
  if (m.value_case() != amld::v1::Metric::kNumber) return nullptr;
  if (std::isnan(m.number())) return "NaN";
  if (std::isinf(m.number())) return m.number() > 0 ? "Infinity" : "-Infinity";
  return m.number();
}

nlohmann::json MetricSummaryJson(const MetricSummary& s) {
  return nlohmann::json{{"name", s.name},
                        {"count", s.values.size()},
                        {"last", MetricValueJson(*s.values.back())},
                        {"last_step", s.values.back()->step()},
                        {"min", s.min ? nlohmann::json(*s.min) : nlohmann::json()},
                        {"max", s.max ? nlohmann::json(*s.max) : nlohmann::json()}};
}

}  // namespace amld::client::commands
