// The login name of a uid, from the passwd database (getpwuid_r: files,
// LDAP, whatever nsswitch.conf says), for what amld shows people: run owners
// in `aml run list`, the services' PERMISSION_DENIED messages, the web view.
//
// Thread-safety: thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace amld::base {

// nullopt when the database has no entry for `uid` (or cannot be read).
std::optional<std::string> LoginName(uid_t uid);

// The login name, or the number when passwd does not name it: how tables
// (`aml run list`, `aml snapshot list`, the web view) show an owner.
std::string NameOrUid(uid_t uid);

// "alice (uid 1001)", or "uid 1001" when passwd does not name it: how error
// messages name another user.
std::string DescribeUser(uid_t uid);

}  // namespace amld::base
