// A slurm target's settings are refused before they are stored when sbatch
// would misread them, saying what to change.
#include "daemon/executors/slurm/slurm_target.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace amld::daemon {
namespace {

namespace v1 = amld::v1;
using ::testing::HasSubstr;

v1::ComputeTarget Cluster() {
  v1::ComputeTarget t;
  t.set_name("c");
  v1::SlurmTarget* slurm = t.mutable_slurm();
  slurm->set_partition("gpu");
  slurm->set_account("ml");
  slurm->set_workdir("/shared/amld");
  slurm->add_sbatch_args("--gres=gpu:1");
  return t;
}

TEST(SlurmTargetTest, WellFormedSettingsAreAccepted) {
  EXPECT_TRUE(ValidateSlurmTarget(Cluster()).ok());
  v1::ComputeTarget minimal;
  minimal.set_name("m");
  minimal.mutable_slurm()->set_workdir("/shared");
  EXPECT_TRUE(ValidateSlurmTarget(minimal).ok());
}

TEST(SlurmTargetTest, MalformedSettingsAreRefusedSayingWhat) {
  struct Case {
    std::string why;
    v1::ComputeTarget target;
    std::string message;
  };
  auto cluster = [](auto edit) {
    v1::ComputeTarget t = Cluster();
    edit(*t.mutable_slurm());
    return t;
  };
  std::vector<Case> cases = {
      {"no workdir", cluster([](auto& s) { s.clear_workdir(); }), "needs --workdir"},
      {"relative workdir", cluster([](auto& s) { s.set_workdir("relative/dir"); }),
       "shared filesystem"},
      {"partition", cluster([](auto& s) { s.set_partition("gpu debug"); }), "not a Slurm name"},
      {"account", cluster([](auto& s) { s.set_account("-A"); }), "not a Slurm name"},
      {"empty sbatch arg", cluster([](auto& s) { s.add_sbatch_args(""); }), "non-empty"},
      {"sbatch arg newline", cluster([](auto& s) { s.add_sbatch_args("a\nb"); }), "line breaks"},
  };
  for (const Case& c : cases) {
    absl::Status status = ValidateSlurmTarget(c.target);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(status.message(), HasSubstr("compute target \"c\": ")) << c.why;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.why;
  }
}

}  // namespace
}  // namespace amld::daemon
