// The SQLite schema of the state store, as an ordered list of migrations.
// Migration N (1-based) takes a database at `PRAGMA user_version` N-1 to N.
// A shipped migration is never edited: old files in tests/data were written
// by it and must keep loading. Change the schema by appending a migration.
//
// Thread-safety: immutable data; thread-safe.
#pragma once

#include <cstdint>
#include <span>

namespace amld::storage {

struct SchemaMigration {
  int version;          // user_version after this step
  const char* summary;  // one line, for logs and error messages
  const char* sql;      // statements run inside the migration's transaction
};

// All migrations, oldest first; element i has version i + 1.
std::span<const SchemaMigration> SchemaMigrations();

// `PRAGMA application_id` of an amld state file ("amld" in ASCII), so a
// foreign SQLite file is refused instead of being migrated.
inline constexpr int32_t kStateApplicationId = 0x616d6c64;

}  // namespace amld::storage
