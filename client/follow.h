// Following a run: its status (Runs.WaitRun) and its log (Runs.StreamLogs),
// surviving dropped streams. Both loops reopen the stream after a drop (a
// daemon restart, a broken connection) and continue where they were: the
// status loop reports each status once, the log loop resumes from the byte
// after the last one it handed out, so output is never lost or repeated.
// They give up when the daemon has not answered for `reconnect_timeout`.
//
// Thread-safety: each call is independent; the sink and callback run on the
// calling thread. An Interrupt may be triggered from any thread; the loop
// then returns CANCELLED ("interrupted").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"
#include "client/interrupt.h"
#include "storage/run_status.h"

namespace amld::client {

using amld::storage::IsTerminal;

struct FollowOptions {
  // How long the daemon may be unreachable before the loop gives up.
  absl::Duration reconnect_timeout = absl::Minutes(2);
  // Pause before the first reconnect; doubles up to one second.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  // Stops the loop; may be null.
  Interrupt* interrupt = nullptr;
};

// Follows the run until it is terminal and returns its final state.
// `on_change` (may be empty) sees the first state and every status change.
absl::StatusOr<amld::v1::Run> FollowRun(const Connection& conn, const std::string& run_id,
                                        const std::function<void(const amld::v1::Run&)>& on_change,
                                        const FollowOptions& options = {});

// Connect(socket), trying again while nothing answers there (UNAVAILABLE)
// with the pacing of the loops above, until `reconnect_timeout`: a follower
// started while the daemon restarts waits for it, as one already following
// does. `on_wait` (may be empty) is told the first refusal, once. Other
// errors, and the refusal after the timeout, are returned; CANCELLED when
// interrupted.
absl::StatusOr<Connection> ConnectWhenUp(const std::filesystem::path& socket,
                                         const FollowOptions& options,
                                         const std::function<void(const absl::Status&)>& on_wait);

// Streams the log at `path` ("" = user_logs/std_log.txt) from `offset` to
// `sink`. Without `follow`, stops at the current end; with it, keeps going
// until the run is terminal and the whole log is sent. Returns the offset
// after the last byte handed to the sink. A log that does not exist yet
// counts as empty (with `follow`, the loop waits for it).
absl::StatusOr<int64_t> FollowLogs(const Connection& conn, const std::string& run_id,
                                   const std::string& path, int64_t offset, bool follow,
                                   const std::function<void(std::string_view)>& sink,
                                   const FollowOptions& options = {});

// The last `lines` lines of a log (`path` as for FollowLogs), read to its
// current end: the whole log passes by, only the tail is kept. A last line
// without a newline counts as a line.
struct LogTail {
  std::string text;
  int64_t end_offset = 0;  // where following it would continue
};
absl::StatusOr<LogTail> ReadLogTail(const Connection& conn, const std::string& run_id,
                                    const std::string& path, int lines,
                                    const FollowOptions& options = {});

// Keeps the last `lines` lines of what `Append` is given. Exposed for tests.
class TailKeeper {
 public:
  explicit TailKeeper(int lines) : lines_(lines) {}
  void Append(std::string_view data);
  const std::string& text() const { return text_; }

 private:
  const int lines_;
  std::string text_;
};

}  // namespace amld::client
