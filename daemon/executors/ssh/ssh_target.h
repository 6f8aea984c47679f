// What the settings of an ssh compute target (amld.v1.SshTarget) must look
// like before the target is stored: they become arguments of ssh and rsync
// (ssh_remote.h), so a host or user that ssh would read as an option, or a
// line break that would split a command, is refused here, saying which
// `aml compute create` flag to change. Nothing is checked against the world
// (whether the host answers, whether the key exists: the compute service
// checks the key on this machine).
//
// Thread-safety: a pure function.
#pragma once

#include "absl/status/status.h"
#include "amld/v1/compute.pb.h"

namespace amld::daemon {

// OK when `target.ssh()` is well-formed: a host (no spaces or control
// characters, no leading '-', no user@ part, at most 255 bytes), a port in
// 0..65535 (0: ssh's default), a login name without spaces, '-' or '@', an
// absolute identity file, a workdir without line breaks. INVALID_ARGUMENT
// "compute target "NAME": ..." otherwise.
absl::Status ValidateSshTarget(const amld::v1::ComputeTarget& target);

}  // namespace amld::daemon
