// The test environments of scripts/test-env/, as ctest's fixtures describe
// them: the `sshd` fixture sets AMLD_TEST_SSH_STATE to the folder where
// `scripts/test-env/sshd up` wrote `env` (host, port, user, key, home).
// Those folders live outside the clone (tests/CMakeLists.txt says where and
// why).
//
// Thread-safety: thread-safe.
#pragma once

#include <string>

namespace amld::testing {

// The private sshd on loopback and its non-root user.
struct SshTestHost {
  std::string host;  // 127.0.0.1
  int port = 0;      // 2222, or a free one when another build's sshd holds it
  std::string user;  // amldtest
  std::string key;   // the client's private key file
  std::string home;  // the user's home on the "remote" side
};

// Reads $AMLD_TEST_SSH_STATE/env. Adds a test failure, saying how to get
// it, and returns an empty host when the variable is unset or the file
// missing (the test was not run through ctest, or the fixture failed).
SshTestHost LoadSshTestHost();

}  // namespace amld::testing
