#include "daemon/services/run_ids.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

// Candidates listed in an ambiguity error.
constexpr int kListed = 10;

absl::StatusOr<std::string> NewestOfCaller(amld::storage::StateStore& store, uid_t caller,
                                           const std::string& experiment) {
  amld::storage::RunFilter filter;
  filter.submitter_uid = caller;
  filter.experiment_name = experiment;
  filter.page_size = 1;
  AMLD_ASSIGN_OR_RETURN(amld::storage::RunPage page, store.ListRuns(filter));
  if (page.runs.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "`last` is your newest run, and you (uid ", caller, ") have no runs",
        experiment.empty() ? "" : absl::StrCat(" in experiment ", experiment),
        "; `aml run list` shows every run"));
  }
  return page.runs.front().id();
}

}  // namespace

absl::StatusOr<std::string> ResolveRunId(amld::storage::StateStore& store, const std::string& typed,
                                         uid_t caller, const std::string& experiment) {
  if (typed == "last") return NewestOfCaller(store, caller, experiment);
  absl::StatusOr<amld::v1::Run> exact = store.GetRun(typed);
  if (exact.ok()) return typed;
  if (exact.status().code() != absl::StatusCode::kNotFound) return exact.status();
  if (typed.size() < kMinRunIdFragment) {
    return absl::NotFoundError(
        absl::StrCat("no run has the id \"", typed, "\"; a part of an id must be at least ",
                     kMinRunIdFragment, " characters (its start or its end), or use `last`"));
  }
  AMLD_ASSIGN_OR_RETURN(std::vector<std::string> ids, store.FindRunIds(typed, kListed + 1));
  if (ids.size() == 1) return ids.front();
  if (ids.empty()) {
    return absl::NotFoundError(absl::StrCat("no run id is, starts with or ends with \"", typed,
                                            "\"; `aml run list` shows the runs"));
  }
  const bool more = ids.size() > kListed;
  if (more) ids.pop_back();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", typed, "\" matches more than one run: ", absl::StrJoin(ids, ", "),
                   more ? ", ..." : "", "; type more of the id"));
}

}  // namespace amld::daemon
