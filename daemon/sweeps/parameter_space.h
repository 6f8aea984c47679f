// A sweep's parameter space (proto amld/v1/sweep.proto): checking a
// SweepSpec, drawing values with azureml.train.hyperdrive's meanings, the
// grid of choice parameters, and how a child gets its values ("--name value"
// arguments, a "hyperparameters" tag).
//
// Random draws are a pure function of (seed, child index): child i of a
// sweep always gets the same values, so a sweep resumed after a restart
// goes on with the values it would have drawn anyway, and nothing is drawn
// twice (a child's index is in its run id, which the store keeps unique).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "amld/v1/sweep.pb.h"

namespace amld::daemon {

// One child's values, in the order of SweepSpec.parameters.
using ParameterAssignment = std::vector<std::pair<std::string, amld::v1::ParameterValue>>;

// OK when the spec can run; INVALID_ARGUMENT saying what to change
// otherwise (unknown distribution, wrong argument count, min > max, q <= 0,
// a grid over a non-choice parameter, a grid smaller than max_total_runs,
// a policy with Bayesian sampling, missing primary metric, ...).
absl::Status ValidateSweepSpec(const amld::v1::SweepSpec& spec);

// The spec as the daemon runs it: max_total_runs of a grid filled in (the
// number of combinations) and max_concurrent_runs (max_total_runs when 0).
// The seed is the caller's (it must be recorded before the first draw).
amld::v1::SweepSpec NormalizeSweepSpec(const amld::v1::SweepSpec& spec);

// The number of combinations of a grid (the product of the choice sizes).
int64_t GridSize(const amld::v1::SweepSpec& spec);

// Child `index`'s values: RANDOM draws each parameter from (seed, index);
// GRID takes combination `index` (the last parameter varies fastest).
ParameterAssignment RandomAssignment(const amld::v1::SweepSpec& spec, uint64_t seed,
                                     int64_t index);
ParameterAssignment GridAssignment(const amld::v1::SweepSpec& spec, int64_t index);

// One draw of one expression from uniforms in [0, 1) (`u1`, `u2`; normal
// distributions use both, by Box-Muller): exposed for the distribution tests.
amld::v1::ParameterValue DrawParameter(const amld::v1::ParameterExpression& p, double u1,
                                       double u2);

// A value as the script sees it: numbers shortest round-trip, integers
// without a point ("32", "0.001", "1e-05"); texts as they are.
std::string FormatParameterValue(const amld::v1::ParameterValue& v);

// "--learning_rate" for "learning_rate" or "--learning_rate".
std::string ArgumentName(const std::string& parameter_name);

// The child's config: `parent` without its sweep, with the tag
// "hyperparameters" holding the values as a JSON object, and the values
// passed one of two ways:
//   - when the command or an argument names a parameter as
//     "${{search_space.NAME}}" (Azure ML's sweep job), every such reference
//     is replaced by the value (shell-quoted inside a command) and nothing
//     is appended;
//   - otherwise "--name value" is appended to the arguments per parameter,
//     as azureml's HyperDrive passes them.
amld::v1::RunConfig ChildConfig(const amld::v1::RunConfig& parent,
                                const ParameterAssignment& values);

// INVALID_ARGUMENT when the command or arguments of `parent` reference a
// "${{search_space.NAME}}" that is not a parameter of its sweep.
absl::Status ValidateChildTemplate(const amld::v1::RunConfig& parent);

}  // namespace amld::daemon
