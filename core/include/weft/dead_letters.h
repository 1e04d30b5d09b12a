// DeadLetters: the dead-letter entries of work items that failed for good
// (docs/api.md §2.5, §3.5), one JSON value per item in `weft-dlq`, keyed by the
// work item id. The move into the DLQ and the retry out of it are work item
// transitions and live in WorkQueue; this service lists, reads and discards.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "weft/bucket_view.h"
#include "weft/json.h"
#include "weft/pagination.h"
#include "weft/service_context.h"

namespace weft {

struct DeadLetterRecord {
  Json entry;
  std::string id, projectId, capability;
  int64_t failedAtMs = 0;
};

struct DeadLetterFilter {
  std::optional<std::string> capability, projectId;
};

// Thread-safety: every public method may be called from any number of
// threads at once; instances on other processes may change the same records
// meanwhile (every write is a compare-and-set, retried on conflict).
// Errors (Status codes): InvalidArgument for filters and cursors, NotFound
// for an unknown id, Unavailable or Timeout for a backend outage.
class DeadLetters {
 public:
  using View = BucketView<DeadLetterRecord>;

  explicit DeadLetters(ServiceContext context);
  ~DeadLetters();
  void start();
  void stop();
  View& view() { return *view_; }
  const View& view() const { return *view_; }

  static std::shared_ptr<const DeadLetterRecord> decode(const std::string& value);

  Result<Json> list(const DeadLetterFilter& filter, const PageRequest& page) const;
  Result<Json> get(const std::string& id) const;
  // DELETE /api/dlq/{id}: NotFound with the spec message when absent.
  Status discard(const std::string& id);

  // For WorkQueue: write (replacing a leftover) and conditional removal.
  Result<uint64_t> write(const std::string& id, const Json& entry);
  Status remove(const std::string& id, uint64_t revision);
  // The stored entry with its revision, straight from the backend.
  Result<KvEntry> read(const std::string& id) const;

  static Status notFound(const std::string& id);

 private:
  ServiceContext ctx_;
  std::unique_ptr<View> view_;
};

}  // namespace weft
