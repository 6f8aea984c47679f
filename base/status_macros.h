// Early-return helpers for absl::Status / absl::StatusOr, which Abseil
// 20220623 does not ship. Header-only; include where needed, never from
// another public header.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AMLD_CONCAT_INNER_(a, b) a##b
#define AMLD_CONCAT_(a, b) AMLD_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define AMLD_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::absl::Status amld_status_ = (expr);          \
    if (!amld_status_.ok()) return amld_status_;   \
  } while (0)

// `lhs = value of expr`, or returns its status when it is not OK.
#define AMLD_ASSIGN_OR_RETURN(lhs, expr) \
  AMLD_ASSIGN_OR_RETURN_IMPL_(AMLD_CONCAT_(amld_statusor_, __LINE__), lhs, expr)
#define AMLD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
