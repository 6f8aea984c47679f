// An ssh target's settings are refused before they are stored when ssh or
// rsync would misread them, saying what to change.
#include "daemon/executors/ssh/ssh_target.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace amld::daemon {
namespace {

namespace v1 = amld::v1;
using ::testing::HasSubstr;

v1::ComputeTarget Box() {
  v1::ComputeTarget t;
  t.set_name("box");
  v1::SshTarget* ssh = t.mutable_ssh();
  ssh->set_host("gpu-box.example.org");
  ssh->set_port(2222);
  ssh->set_user("alice");
  ssh->set_identity_file("/home/alice/.ssh/id_ed25519");
  ssh->set_workdir("/scratch/amld");
  return t;
}

TEST(SshTargetTest, WellFormedSettingsAreAccepted) {
  EXPECT_TRUE(ValidateSshTarget(Box()).ok());
  v1::ComputeTarget minimal;
  minimal.set_name("m");
  minimal.mutable_ssh()->set_host("10.0.0.7");
  EXPECT_TRUE(ValidateSshTarget(minimal).ok());
}

TEST(SshTargetTest, MalformedSettingsAreRefusedSayingWhat) {
  struct Case {
    std::string why;
    v1::ComputeTarget target;
    std::string message;
  };
  auto box = [](auto edit) {
    v1::ComputeTarget t = Box();
    edit(*t.mutable_ssh());
    return t;
  };
  std::vector<Case> cases = {
      {"no host", box([](auto& s) { s.clear_host(); }), "needs a host"},
      {"option host", box([](auto& s) { s.set_host("-oProxyCommand=x"); }), "leading '-'"},
      {"user@host", box([](auto& s) { s.set_host("bob@h"); }), "user"},
      {"spaces", box([](auto& s) { s.set_host("a b"); }), "no spaces"},
      {"port", box([](auto& s) { s.set_port(70000); }), "port 70000"},
      {"user", box([](auto& s) { s.set_user("-l"); }), "login name"},
      {"relative key", box([](auto& s) { s.set_identity_file("id"); }), "absolute"},
      {"workdir newline", box([](auto& s) { s.set_workdir("a\nb"); }), "line breaks"},
  };
  for (const Case& c : cases) {
    absl::Status status = ValidateSshTarget(c.target);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(status.message(), HasSubstr("compute target \"box\": ")) << c.why;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.why;
  }
}

}  // namespace
}  // namespace amld::daemon
