// The recovery table (recovery.h) directly: what each status left by a dead
// daemon becomes, with and without a recorded handle. How the run manager
// applies it, with a fake executor, is in run_manager_test.cc (RecoveryTest).
#include "daemon/runs/recovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amld::daemon {
namespace {

using ::testing::HasSubstr;
using Action = RecoveryStep::Action;
using Status = amld::v1::RunStatus;

TEST(RecoveryRulesTest, QueuedAndPreparingRunsAreTakenUpAgainWithOrWithoutAHandle) {
  for (bool handle : {false, true}) {
    EXPECT_EQ(DecideRecovery(Status::QUEUED, handle).action, Action::kRequeue);
    EXPECT_EQ(DecideRecovery(Status::PREPARING, handle).action, Action::kPrepareAgain);
  }
}

TEST(RecoveryRulesTest, ARunWithAHandleIsReattachedAndACancelIsSentAgain) {
  for (auto status : {Status::STARTING, Status::RUNNING, Status::FINALIZING}) {
    const RecoveryStep step = DecideRecovery(status, /*has_handle=*/true);
    EXPECT_EQ(step.action, Action::kReattach) << status;
    EXPECT_FALSE(step.cancel_again) << status;
  }
  const RecoveryStep cancel = DecideRecovery(Status::CANCEL_REQUESTED, true);
  EXPECT_EQ(cancel.action, Action::kReattach);
  EXPECT_TRUE(cancel.cancel_again);
}

TEST(RecoveryRulesTest, WithoutAHandleNothingIsLaunchedAgain) {
  const RecoveryStep starting = DecideRecovery(Status::STARTING, false);
  EXPECT_EQ(starting.action, Action::kEnd);
  EXPECT_EQ(starting.end_status, Status::FAILED);
  EXPECT_THAT(starting.error, HasSubstr("may or may not have run. Resubmit it"));

  for (auto status : {Status::RUNNING, Status::FINALIZING}) {
    const RecoveryStep step = DecideRecovery(status, false);
    EXPECT_EQ(step.action, Action::kEnd) << status;
    EXPECT_EQ(step.end_status, Status::FAILED) << status;
    EXPECT_EQ(step.error, "daemon lost the run: no process handle was recorded");
  }

  const RecoveryStep cancel = DecideRecovery(Status::CANCEL_REQUESTED, false);
  EXPECT_EQ(cancel.action, Action::kEnd);
  EXPECT_EQ(cancel.end_status, Status::CANCELED);
  EXPECT_EQ(cancel.error, "canceled; the daemon restarted before the run started");
}

TEST(RecoveryRulesTest, ErrorsSayWhatHappenedAndWhy) {
  EXPECT_EQ(ReattachFailedError("no such process"),
            "daemon lost the run after a restart: no such process");
  EXPECT_EQ(NoLongerFitsError("the run asks for 2 GPUs but the local target has 1"),
            "the daemon's capacity changed while the run was queued: the run asks for 2 GPUs "
            "but the local target has 1");
}

}  // namespace
}  // namespace amld::daemon
