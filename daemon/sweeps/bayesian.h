// Bayesian sampling (azureml's BayesianParameterSampling): a Gaussian
// process over the finished children's primary metric, and the next child
// at the candidate with the largest expected improvement.
//
// Parameters (choice, uniform, quniform: azureml's restriction) are mapped
// to [0, 1] each: uniform and quniform linearly, a choice of n options by
// its index (i / (n - 1)). The GP has a squared-exponential kernel (length
// scale 0.25 in that cube, unit signal variance) with a small noise term,
// on the observations standardized to mean 0 and variance 1, maximized
// (MINIMIZE negates them). Its next point is the best by expected
// improvement of 2,000 candidates drawn from (seed, index). With fewer than
// two observations there is nothing to model yet, and the candidate is
// drawn at random, as azureml's Bayesian sampling starts.
//
// A child records its point in the tag "amld.sweep.point" (the cube
// coordinates), which is how a resumed sweep knows the points of the
// children it finds.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "amld/v1/sweep.pb.h"
#include "daemon/sweeps/parameter_space.h"

namespace amld::daemon {

inline constexpr char kSweepPointTag[] = "amld.sweep.point";

struct Observation {
  std::vector<double> point;  // in [0, 1]^d
  double value = 0;           // the primary metric (the child's best)
};

// The next point for child `index` given what finished children showed.
std::vector<double> NextBayesianPoint(const amld::v1::SweepSpec& spec, uint64_t seed,
                                      int64_t index, const std::vector<Observation>& observed);

// The values of a point, and the point's tag text and back.
ParameterAssignment AssignmentOfPoint(const amld::v1::SweepSpec& spec,
                                      const std::vector<double>& point);
std::string FormatPoint(const std::vector<double>& point);
std::optional<std::vector<double>> ParsePoint(const std::string& text, size_t dimensions);

// The GP's posterior mean and standard deviation at `x` (exposed for tests).
struct Posterior {
  double mean = 0;
  double stddev = 0;
};
class GaussianProcess {
 public:
  // `ys` standardized inside. Needs at least one point.
  GaussianProcess(std::vector<std::vector<double>> xs, std::vector<double> ys);
  Posterior Predict(const std::vector<double>& x) const;
  // Expected improvement over the best observation (standardized units).
  double ExpectedImprovement(const std::vector<double>& x) const;

 private:
  std::vector<std::vector<double>> xs_;
  std::vector<double> alpha_;               // K^-1 y
  std::vector<std::vector<double>> chol_;  // lower-triangular L, K = L L^T
  double best_ = 0;
};

}  // namespace amld::daemon
