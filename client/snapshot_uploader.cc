#include "client/snapshot_uploader.h"

#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "amld/v1/cas.grpc.pb.h"
#include "client/grpc_status.h"
#include "base/file_util.h"
#include "base/parallel.h"
#include "base/status_macros.h"

namespace amld::client {

using amld::storage::Digest;

namespace {

// Bytes a BatchUpdateBlobs item costs beyond its data: the digest's hash
// and size plus protobuf tags and lengths, rounded up generously.
constexpr int64_t kBatchItemOverhead = 128;

// Where a blob's bytes come from: a directory node in memory, or a file.
struct BlobSource {
  const std::string* directory_bytes = nullptr;
  const amld::storage::SnapshotFile* file = nullptr;
};

bool IsRetryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN ||
         code == grpc::StatusCode::CANCELLED;
}

absl::Status FileChangedError(const amld::storage::SnapshotFile& file, std::string_view detail) {
  return absl::FailedPreconditionError(absl::StrCat("file ", file.rel_path,
                                                    " changed while it was being uploaded (",
                                                    std::string(detail), "): submit again"));
}

}  // namespace

struct SnapshotUploader::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<amld::v1::Cas::Stub> cas;
  UploaderOptions options;

  absl::flat_hash_map<Digest, BlobSource> sources;  // read-only while uploading
  std::vector<Digest> order;                        // first-seen order, directories first
  // Uploads run on several threads (Upload's jobs): the figures they share
  // change under mu, and on_progress is called under it (one call at a time).
  absl::Mutex mu;
  UploadStats stats ABSL_GUARDED_BY(mu);
  UploadProgress progress ABSL_GUARDED_BY(mu);

  absl::Status Grpc(const grpc::Status& st, std::string_view doing) const {
    return FromGrpcStatus(st, doing, options.socket_path, /*mid_stream=*/true);
  }

  // Adds to the figures and reports them: `bytes_done` to the bytes done,
  // `blobs` as uploaded, with `bytes_sent` bytes sent for them.
  void Advance(int64_t bytes_done, absl::Span<const Digest> blobs = {}, int64_t bytes_sent = 0) {
    absl::MutexLock lock(&mu);
    progress.bytes_done += bytes_done;
    for (const Digest& blob : blobs) {
      if (sources.at(blob).file != nullptr) {
        ++stats.files_uploaded;
      } else {
        ++stats.directories_uploaded;
      }
      ++progress.blobs_done;
    }
    stats.bytes_uploaded += bytes_sent;
    if (options.on_progress) options.on_progress(progress);
  }

  void Collect(const amld::storage::Snapshot& snapshot) {
    sources.clear();
    order.clear();
    if (options.present_dirs != nullptr) return CollectChanged(snapshot);
    for (const auto& [digest, bytes] : snapshot.directories) {
      if (sources.emplace(digest, BlobSource{&bytes, nullptr}).second) order.push_back(digest);
    }
    for (const auto& file : snapshot.files) {
      if (sources.emplace(file.digest, BlobSource{nullptr, &file}).second) {
        order.push_back(file.digest);
      }
    }
  }

  // Only the folders the daemon is not known to hold, and their files.
  void CollectChanged(const amld::storage::Snapshot& snapshot) {
    absl::flat_hash_map<Digest, const amld::storage::SnapshotFile*> file_of;
    for (const auto& file : snapshot.files) file_of.emplace(file.digest, &file);
    std::vector<std::pair<Digest, int>> pending = {{snapshot.root, 0}};
    while (!pending.empty()) {
      auto [digest, depth] = pending.back();
      pending.pop_back();
      if (options.present_dirs->contains(digest)) continue;
      auto blob = snapshot.directories.find(digest);
      if (blob == snapshot.directories.end()) continue;  // the empty folder
      if (!sources.emplace(digest, BlobSource{&blob->second, nullptr}).second) continue;
      order.push_back(digest);
      auto dir = amld::storage::DecodeDirectory(blob->second, depth);
      if (!dir.ok()) continue;  // built by BuildSnapshot: cannot happen
      for (const auto& f : dir->files()) {
        auto file = file_of.find(amld::storage::FromProto(f.digest()));
        if (file == file_of.end()) continue;
        if (sources.emplace(file->first, BlobSource{nullptr, file->second}).second) {
          order.push_back(file->first);
        }
      }
      for (const auto& sub : dir->directories()) {
        pending.emplace_back(amld::storage::FromProto(sub.digest()), depth + 1);
      }
    }
  }

  absl::StatusOr<std::vector<Digest>> FindMissing() {
    std::vector<Digest> missing;
    const size_t batch = std::max(1, options.find_missing_batch);
    for (size_t begin = 0; begin < order.size(); begin += batch) {
      amld::v1::FindMissingBlobsRequest req;
      for (size_t i = begin; i < std::min(order.size(), begin + batch); ++i) {
        amld::storage::ToProto(order[i], req.add_blob_digests());
      }
      amld::v1::FindMissingBlobsResponse resp;
      grpc::ClientContext ctx;
      grpc::Status st = cas->FindMissingBlobs(&ctx, req, &resp);
      if (!st.ok()) return Grpc(st, "ask which snapshot blobs are missing");
      for (const auto& d : resp.missing_blob_digests()) {
        Digest digest = amld::storage::FromProto(d);
        if (!sources.contains(digest)) {
          return absl::InternalError(absl::StrCat("amld reported ", digest.ToString(),
                                                  " missing, which was never asked about"));
        }
        missing.push_back(std::move(digest));
      }
    }
    return missing;
  }

  absl::StatusOr<std::string> ReadBlob(const Digest& digest) const {
    const BlobSource& src = sources.at(digest);
    if (src.directory_bytes != nullptr) return *src.directory_bytes;
    auto data = amld::base::ReadFileToString(src.file->abs_path);
    if (!data.ok()) return data.status();
    if (static_cast<int64_t>(data->size()) != digest.size) {
      return FileChangedError(
          *src.file, absl::StrCat("its size is now ", data->size(), " bytes, was ", digest.size));
    }
    return data;
  }

  std::string Describe(const Digest& digest) const {
    const BlobSource& src = sources.at(digest);
    if (src.file != nullptr) return src.file->rel_path;
    return "directory blob " + digest.ToString();
  }

  absl::Status SendBatch(const std::vector<Digest>& batch) {
    amld::v1::BatchUpdateBlobsRequest req;
    for (const Digest& d : batch) {
      AMLD_ASSIGN_OR_RETURN(std::string data, ReadBlob(d));
      auto* item = req.add_requests();
      amld::storage::ToProto(d, item->mutable_digest());
      item->set_data(std::move(data));
    }
    amld::v1::BatchUpdateBlobsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = cas->BatchUpdateBlobs(&ctx, req, &resp);
    if (!st.ok()) return Grpc(st, "upload a batch of snapshot blobs");
    for (const auto& r : resp.responses()) {
      if (r.code() == 0) continue;
      const Digest d = amld::storage::FromProto(r.digest());
      auto it = sources.find(d);
      const auto code = static_cast<absl::StatusCode>(r.code());
      if (it != sources.end() && it->second.file != nullptr &&
          code == absl::StatusCode::kInvalidArgument) {
        return FileChangedError(*it->second.file, r.message());
      }
      return absl::Status(
          code, absl::StrCat("cannot upload ", it != sources.end() ? Describe(d) : d.ToString(),
                             ": ", r.message(), " (", std::string(StatusCodeName(code)), ")"));
    }
    int64_t bytes = 0;
    for (const Digest& d : batch) bytes += d.size;
    Advance(bytes, batch, bytes);
    return absl::OkStatus();
  }

  // The small blobs in batches of at most max_batch_bytes.
  std::vector<std::vector<Digest>> Batches(const std::vector<Digest>& small) const {
    std::vector<std::vector<Digest>> batches(1);
    int64_t batch_bytes = 0;
    for (const Digest& d : small) {
      const int64_t cost = d.size + kBatchItemOverhead;
      if (!batches.back().empty() && batch_bytes + cost > options.max_batch_bytes) {
        batches.emplace_back();
        batch_bytes = 0;
      }
      batches.back().push_back(d);
      batch_bytes += cost;
    }
    if (batches.back().empty()) batches.pop_back();
    return batches;
  }

  // Reads [offset, offset+n) of the blob's source.
  absl::StatusOr<std::string> ReadRange(const Digest& digest, int fd, int64_t offset,
                                        int64_t n) const {
    const BlobSource& src = sources.at(digest);
    if (src.directory_bytes != nullptr) return src.directory_bytes->substr(offset, n);
    std::string buf(n, '\0');
    int64_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, buf.data() + got, n - got, offset + got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return amld::base::ErrnoStatus(errno, "read", src.file->abs_path);
      if (r == 0) return FileChangedError(*src.file, "it became shorter");
      got += r;
    }
    return buf;
  }

  // One Write stream from the daemon's committed size. Returns the
  // stream's status; `sent` counts the bytes handed to the stream.
  grpc::Status WriteOnce(const Digest& digest, int fd, int64_t start, int64_t* sent,
                         absl::Status* local_error) {
    grpc::ClientContext ctx;
    amld::v1::WriteResponse resp;
    auto writer = cas->Write(&ctx, &resp);
    int64_t offset = start;
    bool first = true;
    while (offset < digest.size) {
      const int64_t n = std::min<int64_t>(options.write_chunk_bytes, digest.size - offset);
      auto data = ReadRange(digest, fd, offset, n);
      if (!data.ok()) {
        *local_error = data.status();
        ctx.TryCancel();
        writer->Finish();
        return grpc::Status(grpc::StatusCode::CANCELLED, "local read failed");
      }
      amld::v1::WriteRequest req;
      if (first) amld::storage::ToProto(digest, req.mutable_digest());
      first = false;
      req.set_write_offset(offset);
      req.set_data(std::move(*data));
      req.set_finish_write(offset + n == digest.size);
      if (!writer->Write(req)) break;  // the daemon ended the stream; Finish says why
      offset += n;
      *sent += n;
      Advance(n);
    }
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    if (st.ok() && resp.committed_size() != digest.size) {
      return grpc::Status(grpc::StatusCode::ABORTED,
                          absl::StrCat("the daemon holds ", resp.committed_size(), " of ",
                                       digest.size, " bytes after the upload"));
    }
    return st;
  }

  absl::StatusOr<amld::v1::QueryWriteStatusResponse> QueryWrite(const Digest& digest) {
    amld::v1::QueryWriteStatusRequest req;
    amld::storage::ToProto(digest, req.mutable_digest());
    amld::v1::QueryWriteStatusResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = cas->QueryWriteStatus(&ctx, req, &resp);
    if (!st.ok()) return Grpc(st, "ask how much of " + Describe(digest) + " amld holds");
    return resp;
  }

  absl::Status SendLarge(const Digest& digest) {
    const BlobSource& src = sources.at(digest);
    amld::base::ScopedFd fd;
    if (src.file != nullptr) {
      fd = amld::base::ScopedFd(::open(src.file->abs_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return amld::base::ErrnoStatus(errno, "open", src.file->abs_path);
    }
    int64_t sent = 0;
    int64_t counted = 0;  // of this blob's bytes, how many progress counts as done
    grpc::Status last;
    for (int attempt = 0; attempt < std::max(1, options.write_attempts); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
      AMLD_ASSIGN_OR_RETURN(auto status, QueryWrite(digest));
      if (status.complete()) break;
      // Bytes the daemon already holds count as done, not as sent.
      Advance(status.committed_size() - counted);
      counted = status.committed_size();
      absl::Status local_error;
      const int64_t sent_before = sent;
      last = WriteOnce(digest, fd.get(), status.committed_size(), &sent, &local_error);
      counted += sent - sent_before;
      if (!local_error.ok()) return local_error;
      if (last.ok()) {
        Advance(0, {digest}, sent);
        return absl::OkStatus();
      }
      if (!IsRetryable(last.error_code())) break;
    }
    if (last.ok()) {  // stored meanwhile (e.g. by a concurrent upload)
      Advance(digest.size - counted, {digest}, sent);
      return absl::OkStatus();
    }
    if (src.file != nullptr && last.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      return FileChangedError(*src.file, last.error_message());
    }
    return Grpc(last, "upload " + Describe(digest));
  }
};

SnapshotUploader::SnapshotUploader(std::shared_ptr<grpc::Channel> channel, UploaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->cas = amld::v1::Cas::NewStub(channel);
  impl_->channel = std::move(channel);
  impl_->options = std::move(options);
}

SnapshotUploader::~SnapshotUploader() = default;

absl::StatusOr<UploadStats> SnapshotUploader::Upload(const amld::storage::Snapshot& snapshot) {
  Impl& s = *impl_;
  {
    absl::MutexLock lock(&s.mu);
    s.stats = UploadStats();
    s.progress = UploadProgress();
    s.stats.files_total = static_cast<int64_t>(snapshot.files.size());
    s.stats.directories_total = static_cast<int64_t>(snapshot.directories.size());
    s.stats.bytes_total = snapshot.total_file_bytes;
  }
  s.Collect(snapshot);

  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> missing, s.FindMissing());
  const int64_t batch_limit =
      std::min(s.options.max_batched_blob_bytes, s.options.max_batch_bytes - kBatchItemOverhead);
  std::vector<Digest> small;
  std::vector<Digest> large;
  {
    absl::MutexLock lock(&s.mu);
    for (Digest& d : missing) {
      s.progress.bytes_to_send += d.size;
      ++s.progress.blobs_to_send;
      (d.size <= batch_limit ? small : large).push_back(std::move(d));
    }
  }
  s.Advance(0);
  // One job per batch of small blobs and per large blob, run by a few
  // threads: while the daemon verifies and writes one batch, the next is
  // read and sent (one at a time, the two sides took turns idling).
  std::vector<std::vector<Digest>> batches = s.Batches(small);
  absl::Status sent = amld::base::ParallelFor(
      batches.size() + large.size(), s.options.parallel_uploads, [&](size_t job) {
        return job < batches.size() ? s.SendBatch(batches[job])
                                    : s.SendLarge(large[job - batches.size()]);
      });
  AMLD_RETURN_IF_ERROR(sent);
  absl::MutexLock lock(&s.mu);
  return s.stats;
}

}  // namespace amld::client
