// ArtifactSync: one run's view of its artifacts under wd/outputs/ and
// wd/logs/ — for each regular file stored, its digest and the file's stamp
// (size, mtime and ctime in ns, inode, device) when it was read — and the
// step that brings that view in line with the disk for one path: store new
// and changed files in the CAS, report files that vanished. A file whose
// stamp is unchanged since it was stored is not read again.
//
// Racy stamps: a stamp too recent to trust (storage/file_stamp.h: mtime or
// ctime within `racy_window` of the Sync's start; kRacyWindow but in tests)
// is not kept, so that file is read again by the next Sync that meets it.
//
// Paths are opened beneath wd/ one component at a time without following
// symlinks (openat2 RESOLVE_NO_SYMLINKS), so a run cannot make the daemon
// read outside its folder; links, fifos and other non-regular files are
// never stored and are described in Changes::skipped.
//
// Durability: files are stored with storage::Durability::kDeferred — no
// fsync per file. Whoever records what a Sync stored must first make it
// durable (ContentStore::SyncPending), so a recorded artifact never names a
// blob a power cut could lose; the live ingester does that at most once per
// interval and once at the end of the run.
//
// Thread-safety: thread-compatible; the live ingester holds a per-run mutex
// around each call. Hooks are called synchronously from Sync.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "storage/cas.h"
#include "storage/file_stamp.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

using amld::storage::FileStamp;

class ArtifactSync {
 public:
  struct Hooks {
    // Called with each folder met, open as `dir_fd`, before it is listed:
    // a watch added here sees every change after the listing. May be null.
    std::function<void(const std::string& rel, int dir_fd)> on_folder;
    // Called, instead of storing it, for a changed file met inside a folder
    // (a file named by Sync itself is always stored at once). Null: store.
    std::function<void(const std::string& rel)> on_changed_file;
  };
  struct Changes {
    std::vector<amld::storage::Artifact> stored;  // new, or with new content
    std::vector<std::string> removed;             // known before, gone now
    std::vector<std::string> skipped;             // "outputs/x: symbolic link, not stored"
  };

  // `wd`: runs/<id>/wd.
  ArtifactSync(amld::storage::ContentStore* cas, std::filesystem::path wd,
               absl::Duration racy_window = amld::storage::kRacyWindow);

  // What the store already holds for the run (after a daemon restart): such
  // files are read again when met (their stamps are unknown), and removed
  // when they are gone.
  void Seed(const std::vector<amld::storage::Artifact>& stored);

  // Brings `rel` ("outputs", "logs", or a path beneath them) in line with
  // the disk: a regular file is stored if changed; a folder is walked
  // (hooks.on_folder for each folder, then its files: unchanged ones are
  // kept, changed ones go to hooks.on_changed_file or are stored); whatever
  // was known at or beneath `rel` and is gone is removed. Errors are errors
  // of the CAS (disk full) or of the run folder itself; a single unreadable
  // file is skipped instead.
  absl::Status Sync(const std::string& rel, const Hooks& hooks, Changes* changes);

  // Makes the next Sync that meets `rel` read it again (after a failed CAS
  // sync dropped what was stored for it).
  void ForgetStamp(const std::string& rel);
  // The digest stored for `rel`, if any.
  std::optional<amld::storage::Digest> StoredDigest(const std::string& rel) const;
  // Every file known to be stored, sorted by path.
  std::vector<amld::storage::Artifact> Current() const;
  // Files read (hashed) so far.
  int64_t files_read() const { return files_read_; }

 private:
  struct Entry {
    amld::storage::Digest digest;
    std::optional<FileStamp> stamp;  // unset: read again when met
  };

  absl::Status SyncAt(int wd_fd, const std::string& rel, const Hooks& hooks, int depth,
                      std::set<std::string>* seen, Changes* changes);
  absl::Status SyncFolder(int path_fd, const std::string& rel, const Hooks& hooks, int depth,
                          std::set<std::string>* seen, Changes* changes);
  absl::Status SyncChild(int dir_fd, const std::string& name, unsigned char type,
                         const std::string& rel, const Hooks& hooks, int depth,
                         std::set<std::string>* seen, Changes* changes);
  absl::Status StoreFile(int path_fd, const std::string& rel, const FileStamp& stamp,
                         Changes* changes);
  bool Unchanged(const std::string& rel, const FileStamp& stamp) const;
  // Removes `rel` itself (`self`) and/or what lies beneath it, except
  // paths in `keep`.
  void Forget(const std::string& rel, bool self, const std::set<std::string>* keep,
              Changes* changes);

  amld::storage::ContentStore* cas_;
  std::filesystem::path wd_;
  absl::Duration racy_window_;
  std::map<std::string, Entry> known_;
  absl::Time sync_started_;  // of the Sync in progress
  int64_t files_read_ = 0;
};

}  // namespace amld::daemon
