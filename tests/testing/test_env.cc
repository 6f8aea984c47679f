#include "tests/testing/test_env.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/testing/test_util.h"

namespace amld::testing {

SshTestHost LoadSshTestHost() {
  const char* state = std::getenv("AMLD_TEST_SSH_STATE");
  if (state == nullptr) {
    ADD_FAILURE() << "AMLD_TEST_SSH_STATE is not set: run this test through ctest, whose "
                     "fixture `sshd` (scripts/test-env/sshd up) starts the test sshd";
    return {};
  }
  const std::filesystem::path env_file = std::filesystem::path(state) / "env";
  std::map<std::string, std::string> vars;
  for (absl::string_view line : absl::StrSplit(ReadFile(env_file), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    vars[kv.first] = kv.second;
  }
  SshTestHost h;
  h.host = vars["AMLD_TEST_SSH_HOST"];
  h.user = vars["AMLD_TEST_SSH_USER"];
  h.key = vars["AMLD_TEST_SSH_KEY"];
  h.home = vars["AMLD_TEST_SSH_HOME"];
  if (h.host.empty() || h.key.empty() || !absl::SimpleAtoi(vars["AMLD_TEST_SSH_PORT"], &h.port)) {
    ADD_FAILURE() << "the test sshd is not up: no complete " << env_file;
    return {};
  }
  return h;
}

}  // namespace amld::testing
