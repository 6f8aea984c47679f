#include "daemon/sweeps/parameter_space.h"

#include <charconv>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/shell_quote.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

struct Distribution {
  const char* name;
  int args;
  const char* usage;
};
constexpr Distribution kDistributions[] = {
    {"choice", 0, "choice(option, ...)"},
    {"randint", 1, "randint(upper)"},
    {"uniform", 2, "uniform(min_value, max_value)"},
    {"quniform", 3, "quniform(min_value, max_value, q)"},
    {"loguniform", 2, "loguniform(min_value, max_value)"},
    {"qloguniform", 3, "qloguniform(min_value, max_value, q)"},
    {"normal", 2, "normal(mu, sigma)"},
    {"qnormal", 3, "qnormal(mu, sigma, q)"},
    {"lognormal", 2, "lognormal(mu, sigma)"},
    {"qlognormal", 3, "qlognormal(mu, sigma, q)"},
};

const Distribution* FindDistribution(const std::string& name) {
  for (const Distribution& d : kDistributions) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

absl::Status Invalid(const pb::ParameterExpression& p, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("parameter ", p.name(), ": ", what));
}

absl::Status ValidateExpression(const pb::ParameterExpression& p) {
  const Distribution* d = FindDistribution(p.distribution());
  if (d == nullptr) {
    std::vector<std::string> names;
    for (const Distribution& k : kDistributions) names.push_back(k.name);
    return Invalid(p, absl::StrCat("unknown distribution \"", p.distribution(), "\"; use one of ",
                                   absl::StrJoin(names, ", ")));
  }
  if (p.args_size() != d->args) {
    return Invalid(p, absl::StrCat(p.distribution(), " takes ", d->args, " argument(s): ",
                                   d->usage, "; got ", p.args_size()));
  }
  for (double a : p.args()) {
    if (!std::isfinite(a)) return Invalid(p, "arguments must be finite numbers");
  }
  const std::string& k = p.distribution();
  if (k == "choice") {
    if (p.choices_size() == 0) return Invalid(p, "choice() needs at least one option");
    for (const pb::ParameterValue& v : p.choices()) {
      if (v.value_case() == pb::ParameterValue::VALUE_NOT_SET) {
        return Invalid(p, "a choice option is neither a number nor a text");
      }
      if (v.has_number() && !std::isfinite(v.number())) {
        return Invalid(p, "choice options must be finite numbers or texts");
      }
      if (v.has_text() && v.text().find('\0') != std::string::npos) {
        return Invalid(p, "a choice option contains NUL");
      }
    }
    return absl::OkStatus();
  }
  if (p.choices_size() > 0) return Invalid(p, "only choice() takes options");
  if (k == "randint") {
    if (p.args(0) < 1 || p.args(0) != std::floor(p.args(0))) {
      return Invalid(p, "randint(upper) needs a whole upper >= 1");
    }
    return absl::OkStatus();
  }
  if (k == "uniform" || k == "quniform" || k == "loguniform" || k == "qloguniform") {
    if (p.args(0) > p.args(1)) {
      return Invalid(p, absl::StrCat(d->usage, " needs min_value <= max_value, got ", p.args(0),
                                     " > ", p.args(1)));
    }
  } else if (p.args(1) < 0) {  // normal family: sigma
    return Invalid(p, absl::StrCat(d->usage, " needs sigma >= 0"));
  }
  if (d->args == 3 && !(p.args(2) > 0)) return Invalid(p, absl::StrCat(d->usage, " needs q > 0"));
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const pb::SweepSpec& spec) {
  const pb::EarlyTerminationPolicy& policy = spec.policy();
  auto interval_and_delay = [](absl::string_view name, int interval, int delay) -> absl::Status {
    if (interval < 0 || delay < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": evaluation_interval and delay_evaluation must be >= 0"));
    }
    return absl::OkStatus();
  };
  switch (policy.policy_case()) {
    case pb::EarlyTerminationPolicy::POLICY_NOT_SET:
      return absl::OkStatus();
    case pb::EarlyTerminationPolicy::kBandit: {
      const pb::BanditPolicy& b = policy.bandit();
      if ((b.slack_factor() > 0) == (b.slack_amount() > 0) || b.slack_factor() < 0 ||
          b.slack_amount() < 0) {
        return absl::InvalidArgumentError(
            "BanditPolicy: set exactly one of slack_factor and slack_amount, a number > 0");
      }
      return interval_and_delay("BanditPolicy", b.evaluation_interval(), b.delay_evaluation());
    }
    case pb::EarlyTerminationPolicy::kMedianStopping:
      return interval_and_delay("MedianStoppingPolicy", policy.median_stopping().evaluation_interval(),
                                policy.median_stopping().delay_evaluation());
    case pb::EarlyTerminationPolicy::kTruncationSelection: {
      const pb::TruncationSelectionPolicy& t = policy.truncation_selection();
      if (t.truncation_percentage() < 1 || t.truncation_percentage() > 99) {
        return absl::InvalidArgumentError(absl::StrCat(
            "TruncationSelectionPolicy: truncation_percentage must be 1 to 99, got ",
            t.truncation_percentage()));
      }
      return interval_and_delay("TruncationSelectionPolicy", t.evaluation_interval(),
                                t.delay_evaluation());
    }
  }
  return absl::OkStatus();
}

// 53 random bits as a double in [0, 1).
double Unit(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

double Quantize(double x, double q) { return std::round(x / q) * q; }

pb::ParameterValue Number(double x) {
  pb::ParameterValue v;
  v.set_number(x == 0 ? 0 : x);  // no "-0"
  return v;
}

}  // namespace

absl::Status ValidateSweepSpec(const pb::SweepSpec& spec) {
  if (spec.primary_metric_name().empty()) {
    return absl::InvalidArgumentError(
        "a sweep needs primary_metric_name: the metric the script logs that children are judged by");
  }
  if (spec.primary_metric_goal() != pb::PrimaryMetricGoal::MAXIMIZE &&
      spec.primary_metric_goal() != pb::PrimaryMetricGoal::MINIMIZE) {
    return absl::InvalidArgumentError("primary_metric_goal must be MAXIMIZE or MINIMIZE");
  }
  if (spec.parameters_size() == 0) {
    return absl::InvalidArgumentError("the parameter space is empty: give at least one parameter");
  }
  std::set<std::string> names;
  for (const pb::ParameterExpression& p : spec.parameters()) {
    const std::string arg = ArgumentName(p.name());
    if (arg == "--" || p.name().find_first_of(" \t\n\r\0=", 0, 6) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter name \"", p.name(), "\" is not usable as an argument: give a name without "
          "spaces or '=', e.g. \"learning_rate\" or \"--learning_rate\""));
    }
    if (!names.insert(arg).second) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", arg, " is given twice"));
    }
    AMLD_RETURN_IF_ERROR(ValidateExpression(p));
  }
  AMLD_RETURN_IF_ERROR(ValidatePolicy(spec));
  if (spec.max_total_runs() < 0 || spec.max_concurrent_runs() < 0 ||
      spec.max_duration_minutes() < 0) {
    return absl::InvalidArgumentError(
        "max_total_runs, max_concurrent_runs and max_duration_minutes must be >= 0");
  }
  switch (spec.sampling()) {
    case pb::SamplingAlgorithm::RANDOM:
      break;
    case pb::SamplingAlgorithm::GRID: {
      for (const pb::ParameterExpression& p : spec.parameters()) {
        if (p.distribution() != "choice") {
          return absl::InvalidArgumentError(absl::StrCat(
              "grid sampling takes choice() parameters only; ", p.name(), " is ",
              p.distribution(), "(): use random or Bayesian sampling, or a choice"));
        }
      }
      if (spec.max_total_runs() > GridSize(spec)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "max_total_runs ", spec.max_total_runs(), " is more than the grid's ", GridSize(spec),
            " combinations"));
      }
      return absl::OkStatus();
    }
    case pb::SamplingAlgorithm::BAYESIAN: {
      if (spec.policy().policy_case() != pb::EarlyTerminationPolicy::POLICY_NOT_SET) {
        return absl::InvalidArgumentError(
            "Bayesian sampling does not support early termination policies (as in azureml): "
            "leave the policy out");
      }
      for (const pb::ParameterExpression& p : spec.parameters()) {
        if (p.distribution() != "choice" && p.distribution() != "uniform" &&
            p.distribution() != "quniform") {
          return absl::InvalidArgumentError(absl::StrCat(
              "Bayesian sampling takes choice, uniform and quniform parameters only (as in "
              "azureml); ", p.name(), " is ", p.distribution(), "()"));
        }
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("sampling must be RANDOM, GRID or BAYESIAN");
  }
  if (spec.max_total_runs() < 1) {
    return absl::InvalidArgumentError("max_total_runs must be at least 1");
  }
  return absl::OkStatus();
}

pb::SweepSpec NormalizeSweepSpec(const pb::SweepSpec& spec) {
  pb::SweepSpec out = spec;
  if (out.sampling() == pb::SamplingAlgorithm::GRID && out.max_total_runs() == 0) {
    out.set_max_total_runs(static_cast<int32_t>(std::min<int64_t>(GridSize(spec), INT32_MAX)));
  }
  if (out.max_concurrent_runs() == 0 || out.max_concurrent_runs() > out.max_total_runs()) {
    out.set_max_concurrent_runs(out.max_total_runs());
  }
  return out;
}

int64_t GridSize(const pb::SweepSpec& spec) {
  int64_t n = 1;
  for (const pb::ParameterExpression& p : spec.parameters()) {
    n *= std::max(1, p.choices_size());
    if (n > INT32_MAX) return INT32_MAX;  // more than any max_total_runs
  }
  return n;
}

pb::ParameterValue DrawParameter(const pb::ParameterExpression& p, double u1, double u2) {
  const std::string& k = p.distribution();
  if (k == "choice") {
    const int n = p.choices_size();
    return p.choices(std::min(n - 1, static_cast<int>(u1 * n)));
  }
  if (k == "randint") return Number(std::min(p.args(0) - 1, std::floor(u1 * p.args(0))));
  if (k == "uniform" || k == "quniform" || k == "loguniform" || k == "qloguniform") {
    // u1 in [0, 1) never reaches max; min + u * (max - min) is uniform on [min, max).
    double x = p.args(0) + u1 * (p.args(1) - p.args(0));
    if (k == "loguniform" || k == "qloguniform") x = std::exp(x);
    if (k == "quniform" || k == "qloguniform") x = Quantize(x, p.args(2));
    return Number(x);
  }
  // Normal family, Box-Muller: 1 - u1 is in (0, 1], so the log is finite.
  const double z = std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  double x = p.args(0) + p.args(1) * z;
  if (k == "lognormal" || k == "qlognormal") x = std::exp(x);
  if (k == "qnormal" || k == "qlognormal") x = Quantize(x, p.args(2));
  return Number(x);
}

ParameterAssignment RandomAssignment(const pb::SweepSpec& spec, uint64_t seed, int64_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)};
  std::mt19937_64 gen(seq);
  ParameterAssignment out;
  for (const pb::ParameterExpression& p : spec.parameters()) {
    const double u1 = Unit(gen), u2 = Unit(gen);
    out.emplace_back(p.name(), DrawParameter(p, u1, u2));
  }
  return out;
}

ParameterAssignment GridAssignment(const pb::SweepSpec& spec, int64_t index) {
  ParameterAssignment out(spec.parameters_size());
  for (int i = spec.parameters_size() - 1; i >= 0; --i) {
    const pb::ParameterExpression& p = spec.parameters(i);
    const int n = std::max(1, p.choices_size());
    out[i] = {p.name(), p.choices(static_cast<int>(index % n))};
    index /= n;
  }
  return out;
}

std::string FormatParameterValue(const pb::ParameterValue& v) {
  if (v.has_text()) return v.text();
  const double x = v.number();
  if (x == std::floor(x) && std::abs(x) < 1e15) return absl::StrCat(static_cast<int64_t>(x));
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, end);
}

std::string ArgumentName(const std::string& parameter_name) {
  size_t start = parameter_name.find_first_not_of('-');
  if (start == std::string::npos) return "--";
  return absl::StrCat("--", parameter_name.substr(start));
}

namespace {
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace

namespace {

constexpr std::string_view kRefOpen = "${{search_space.";
constexpr std::string_view kRefClose = "}}";

// The parameter names `text` references, in order.
std::vector<std::string> References(const std::string& text) {
  std::vector<std::string> names;
  for (size_t at = text.find(kRefOpen); at != std::string::npos; at = text.find(kRefOpen, at)) {
    const size_t start = at + kRefOpen.size();
    const size_t end = text.find(kRefClose, start);
    if (end == std::string::npos) break;
    names.push_back(text.substr(start, end - start));
    at = end;
  }
  return names;
}

bool ReferencesAny(const pb::RunConfig& c) {
  if (!References(c.command()).empty()) return true;
  for (const std::string& a : c.arguments()) {
    if (!References(a).empty()) return true;
  }
  return false;
}

// The parameter a reference names: "lr" matches "lr" and "--lr".
const pb::ParameterValue* Lookup(const ParameterAssignment& values, const std::string& ref) {
  for (const auto& [name, value] : values) {
    if (ArgumentName(name) == ArgumentName(ref)) return &value;
  }
  return nullptr;
}

std::string Substitute(const std::string& text, const ParameterAssignment& values, bool quote) {
  std::string out;
  size_t from = 0;
  for (size_t at = text.find(kRefOpen); at != std::string::npos; at = text.find(kRefOpen, from)) {
    const size_t start = at + kRefOpen.size();
    const size_t end = text.find(kRefClose, start);
    if (end == std::string::npos) break;
    out.append(text, from, at - from);
    const pb::ParameterValue* v = Lookup(values, text.substr(start, end - start));
    if (v == nullptr) {
      out.append(text, at, end + kRefClose.size() - at);  // refused at submit; kept as written
    } else {
      const std::string formatted = FormatParameterValue(*v);
      out += quote && v->has_text() ? base::ShellQuote(formatted) : formatted;
    }
    from = end + kRefClose.size();
  }
  out.append(text, from, std::string::npos);
  return out;
}

}  // namespace

pb::RunConfig ChildConfig(const pb::RunConfig& parent, const ParameterAssignment& values) {
  pb::RunConfig child = parent;
  child.clear_sweep();
  std::vector<std::string> json;
  for (const auto& [name, value] : values) {
    json.push_back(absl::StrCat(JsonString(name), ": ",
                                value.has_text() ? JsonString(value.text())
                                                 : FormatParameterValue(value)));
  }
  if (ReferencesAny(parent)) {
    child.set_command(Substitute(parent.command(), values, /*quote=*/true));
    for (std::string& a : *child.mutable_arguments()) a = Substitute(a, values, /*quote=*/false);
  } else {
    for (const auto& [name, value] : values) {
      child.add_arguments(ArgumentName(name));
      child.add_arguments(FormatParameterValue(value));
    }
  }
  (*child.mutable_tags())["hyperparameters"] = absl::StrCat("{", absl::StrJoin(json, ", "), "}");
  return child;
}

absl::Status ValidateChildTemplate(const pb::RunConfig& parent) {
  std::vector<std::string> refs = References(parent.command());
  for (const std::string& a : parent.arguments()) {
    for (std::string& r : References(a)) refs.push_back(std::move(r));
  }
  std::set<std::string> known;
  for (const pb::ParameterExpression& p : parent.sweep().parameters()) {
    known.insert(ArgumentName(p.name()));
  }
  for (const std::string& r : refs) {
    if (!known.contains(ArgumentName(r))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "${{search_space.", r, "}} names no parameter of the search space"));
    }
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
