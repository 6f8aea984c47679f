#include "daemon/sweeps/bayesian.h"

#include <charconv>
#include <cmath>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

constexpr double kLengthScale = 0.25;
constexpr double kNoise = 1e-4;
constexpr int kCandidates = 2000;

double Kernel(const std::vector<double>& a, const std::vector<double>& b) {
  double d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (a[i] - b[i]) * (a[i] - b[i]);
  return std::exp(-d2 / (2 * kLengthScale * kLengthScale));
}

// Solves L z = b (forward substitution).
std::vector<double> Forward(const std::vector<std::vector<double>>& l, std::vector<double> b) {
  for (size_t i = 0; i < b.size(); ++i) {
    for (size_t j = 0; j < i; ++j) b[i] -= l[i][j] * b[j];
    b[i] /= l[i][i];
  }
  return b;
}

// Solves L^T z = b (back substitution).
std::vector<double> Backward(const std::vector<std::vector<double>>& l, std::vector<double> b) {
  for (size_t i = b.size(); i-- > 0;) {
    for (size_t j = i + 1; j < b.size(); ++j) b[i] -= l[j][i] * b[j];
    b[i] /= l[i][i];
  }
  return b;
}

std::vector<double> RandomPoint(std::mt19937_64& gen, size_t d) {
  std::vector<double> p(d);
  for (double& x : p) x = static_cast<double>(gen() >> 11) * 0x1.0p-53;
  return p;
}

}  // namespace

GaussianProcess::GaussianProcess(std::vector<std::vector<double>> xs, std::vector<double> ys)
    : xs_(std::move(xs)) {
  const size_t n = ys.size();
  double mean = 0, var = 0;
  for (double y : ys) mean += y / n;
  for (double y : ys) var += (y - mean) * (y - mean) / n;
  const double sd = var > 0 ? std::sqrt(var) : 1;
  for (double& y : ys) y = (y - mean) / sd;
  best_ = *std::max_element(ys.begin(), ys.end());
  // Cholesky of K + noise I.
  chol_.assign(n, std::vector<double>(n, 0));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double sum = Kernel(xs_[i], xs_[j]) + (i == j ? kNoise : 0);
      for (size_t k = 0; k < j; ++k) sum -= chol_[i][k] * chol_[j][k];
      chol_[i][j] = i == j ? std::sqrt(std::max(sum, 1e-12)) : sum / chol_[j][j];
    }
  }
  alpha_ = Backward(chol_, Forward(chol_, ys));
}

Posterior GaussianProcess::Predict(const std::vector<double>& x) const {
  std::vector<double> k(xs_.size());
  for (size_t i = 0; i < xs_.size(); ++i) k[i] = Kernel(xs_[i], x);
  Posterior p;
  for (size_t i = 0; i < k.size(); ++i) p.mean += k[i] * alpha_[i];
  const std::vector<double> v = Forward(chol_, k);
  double var = 1.0;
  for (double vi : v) var -= vi * vi;
  p.stddev = std::sqrt(std::max(var, 1e-12));
  return p;
}

double GaussianProcess::ExpectedImprovement(const std::vector<double>& x) const {
  const Posterior p = Predict(x);
  const double improvement = p.mean - best_ - 0.01;
  const double z = improvement / p.stddev;
  const double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
  const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
  return improvement * cdf + p.stddev * pdf;
}

std::vector<double> NextBayesianPoint(const pb::SweepSpec& spec, uint64_t seed, int64_t index,
                                      const std::vector<Observation>& observed) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0xBA7E5u};
  std::mt19937_64 gen(seq);
  const size_t d = static_cast<size_t>(spec.parameters_size());
  if (observed.size() < 2) return RandomPoint(gen, d);
  std::vector<std::vector<double>> xs;
  std::vector<double> ys;
  const bool minimize = spec.primary_metric_goal() == pb::PrimaryMetricGoal::MINIMIZE;
  for (const Observation& o : observed) {
    xs.push_back(o.point);
    ys.push_back(minimize ? -o.value : o.value);
  }
  const GaussianProcess gp(std::move(xs), std::move(ys));
  std::vector<double> best = RandomPoint(gen, d);
  double best_ei = gp.ExpectedImprovement(best);
  for (int i = 1; i < kCandidates; ++i) {
    std::vector<double> c = RandomPoint(gen, d);
    const double ei = gp.ExpectedImprovement(c);
    if (ei > best_ei) {
      best_ei = ei;
      best = std::move(c);
    }
  }
  return best;
}

ParameterAssignment AssignmentOfPoint(const pb::SweepSpec& spec, const std::vector<double>& point) {
  ParameterAssignment out;
  for (int i = 0; i < spec.parameters_size(); ++i) {
    const pb::ParameterExpression& p = spec.parameters(i);
    const double u = std::clamp(point[i], 0.0, 1.0);
    pb::ParameterValue v;
    if (p.distribution() == "choice") {
      const int n = p.choices_size();
      v = p.choices(std::min(n - 1, static_cast<int>(std::lround(u * (n - 1)))));
    } else {
      double x = p.args(0) + u * (p.args(1) - p.args(0));
      if (p.distribution() == "quniform") x = std::round(x / p.args(2)) * p.args(2);
      v.set_number(x == 0 ? 0 : x);
    }
    out.emplace_back(p.name(), v);
  }
  return out;
}

std::string FormatPoint(const std::vector<double>& point) {
  std::vector<std::string> parts;
  for (double x : point) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
    parts.emplace_back(buf, end);
  }
  return absl::StrJoin(parts, ",");
}

std::optional<std::vector<double>> ParsePoint(const std::string& text, size_t dimensions) {
  std::vector<double> point;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    double x = 0;
    if (!absl::SimpleAtod(part, &x)) return std::nullopt;
    point.push_back(x);
  }
  if (point.size() != dimensions) return std::nullopt;
  return point;
}

}  // namespace amld::daemon
