// `aml run compare RUN...`: runs side by side — how each ended, the config
// fields in which they differ (all of them with --all), and each metric's
// last, min and max. The rows are built here, pure, so every rule is
// unit-tested; run_compare.cc fetches the runs and prints them.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <string>
#include <vector>

#include "amld/v1/runs.pb.h"
#include "client/commands/metric_summary.h"

namespace amld::client::commands {

// One line of the comparison: a label and a text per run (in the order the
// runs were given).
struct CompareRow {
  std::string label;
  std::vector<std::string> values;
  // False when every run has the same text.
  bool differs = false;
};

// How each run went: status (with the exit status of one that did not
// complete), run time, submitted. Always shown.
std::vector<CompareRow> OutcomeRows(const std::vector<amld::v1::Run>& runs);

// The config, a row per field: experiment, name, script, command,
// arguments, compute, environment, interpreter, environment variables,
// packages, distribution, resources, priority, max duration, snapshot, git,
// and "tag KEY" for every tag any run has. Fields no run sets (a command for
// script runs, a display name) are left out.
std::vector<CompareRow> ConfigRows(const std::vector<amld::v1::Run>& runs);

// Every metric any run logged (by name): rows "NAME last" (with its step),
// and for numbers "NAME min" and "NAME max"; "-" for a run without it.
// per_run[i] is run i's SummarizeMetrics.
std::vector<CompareRow> MetricRows(const std::vector<std::vector<MetricSummary>>& per_run);

}  // namespace amld::client::commands
