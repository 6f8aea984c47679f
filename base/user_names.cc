#include "base/user_names.h"

#include <pwd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"

namespace amld::base {

std::optional<std::string> LoginName(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw;
  passwd* found = nullptr;
  int err;
  // ERANGE: an entry (a long gecos field, an LDAP record) larger than buf.
  while ((err = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 4);
  }
  if (err != 0 || found == nullptr) return std::nullopt;
  return std::string(pw.pw_name);
}

std::string NameOrUid(uid_t uid) { return LoginName(uid).value_or(absl::StrCat(uid)); }

std::string DescribeUser(uid_t uid) {
  std::optional<std::string> name = LoginName(uid);
  return name ? absl::StrCat(*name, " (uid ", uid, ")") : absl::StrCat("uid ", uid);
}

}  // namespace amld::base
