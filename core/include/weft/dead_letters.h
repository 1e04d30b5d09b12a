// DeadLetters: the dead-letter entries of work items that failed for good
// (docs/api.md §2.5, §3.5), one stored document per item in `weft-dlq`, keyed
// by the work item id. The move into the DLQ and the retry out of it are work
// item transitions and live in WorkQueue; this service lists, reads and
// discards. It deals in DeadLetter values; their REST form is rendered at the
// HTTP edge (server/api/rest_mapping.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/bucket_view.h"
#include "weft/saved_view.h"
#include "weft/json.h"
#include "weft/list_index.h"
#include "weft/pagination.h"
#include "weft/service_context.h"
#include "weft/value_cache.h"
#include "weft/work_item.h"

namespace weft {

// Why an item was dead-lettered (the stored `reason`).
enum class DeadLetterReason { MaxAttemptsExceeded, NonRecoverable };
// "max attempts exceeded" / "non-recoverable error".
const char* deadLetterReasonText(DeadLetterReason reason);

// One dead-letter entry (docs/api.md §3.5): a work item that failed for good,
// as stored in `weft-dlq` under the item's id.
struct DeadLetter {
  std::string id;  // the work item's id
  // The item as it was when it failed, without its claim token; nullptr when
  // the stored snapshot is not a JSON object (then it is kept, as stored, in
  // workItemVerbatim).
  std::shared_ptr<const WorkItem> workItem;
  Json workItemVerbatim;
  DeadLetterReason reason = DeadLetterReason::MaxAttemptsExceeded;
  int64_t attempts = 0;
  std::string failedAt;  // ISO 8601, as stored
  std::vector<ErrorRecord> errors;
  // The stored `errors` when it is not an array (null when absent).
  std::optional<Json> errorsVerbatim;

  // The two members in their stored form.
  Json workItemJson() const;
  Json errorsJson() const;

  // From workItem and failedAt, for the filters and the list order.
  std::string projectId, capability;
  int64_t failedAtMs = 0;

  // The stored form: one JSON document (id, workItem, reason, attempts,
  // failedAt, errors).
  std::string encode() const;
  // nullptr when the document is not an entry (no object, no id); an
  // unknown reason reads as MaxAttemptsExceeded.
  static std::shared_ptr<const DeadLetter> decode(const std::string& stored);
};

// What the dead-letter view keeps of an entry: its list filters and order.
// The entry itself (the failed item's snapshot, its errors) is read from the
// backend when a client asks for it, so the dead-letter queue costs memory
// by its count, not by the size of what failed. Always owned by a
// shared_ptr (the list index hands out the entries it points at).
struct DeadLetterEntry : std::enable_shared_from_this<DeadLetterEntry> {
  std::string id, projectId, capability;
  int64_t failedAtMs = 0;
};

// The dead-letter list: filters capability and projectId, order failedAt
// then id (weft/list_index.h).
struct DeadLetterListTraits {
  using Record = DeadLetterEntry;
  static constexpr size_t kFields = 2;
  static constexpr unsigned kOrdered[] = {0, 1, 2, 3};
  static constexpr unsigned kCounted[] = {0, 1, 2, 3};
  static int64_t major(const DeadLetterEntry& d) { return d.failedAtMs; }
  static int64_t minor(const DeadLetterEntry&) { return 0; }
  static const std::string& id(const DeadLetterEntry& d) { return d.id; }
  template <typename Emit>
  static void values(const DeadLetterEntry& d, size_t field, Emit&& emit) {
    emit(field == 0 ? d.capability : d.projectId);
  }
  static bool has(const DeadLetterEntry& d, size_t field, const std::string& value) {
    return (field == 0 ? d.capability : d.projectId) == value;
  }
};

// A page of entries, read whole from the backend (an entry deleted between
// the index and the read is left out), and what the pagination metadata
// needs.
struct DeadLetterPage {
  std::vector<std::shared_ptr<const DeadLetter>> items;
  Pager pager;
  size_t total = 0;
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
  using View = BucketView<DeadLetterEntry, DeadLetter>;

  explicit DeadLetters(ServiceContext context);
  ~DeadLetters();
  void start();
  void stop();
  View& view() { return *view_; }
  const View& view() const { return *view_; }

  // Oldest failure first (then by id), after the filters.
  Result<DeadLetterPage> list(const DeadLetterFilter& filter, const PageRequest& page) const;
  Result<std::shared_ptr<const DeadLetter>> get(const std::string& id) const;
  // Removes the entry; NotFound with the spec message when absent.
  Status discard(const std::string& id);

  // For WorkQueue: write (replacing a leftover) and conditional removal.
  Result<uint64_t> write(const DeadLetter& entry);
  Status remove(const std::string& id, uint64_t revision);
  // How many entries of the view match the filter (the list index's count).
  size_t count(const DeadLetterFilter& filter) const;
  // The stored entry with its revision, straight from the backend.
  Result<KvEntry> read(const std::string& id) const;

  static Status notFound(const std::string& id);

 private:
  ServiceContext ctx_;
  std::unique_ptr<View> view_;
  // Filters (capability, projectId) and order (failedAt, then id); guarded
  // by the view's lock.
  std::unique_ptr<ListIndex<DeadLetterListTraits>> listIndex_;
  // The entries pages read from the backend (value_cache.h).
  mutable ValueCache pageValues_{1024};
  // The view's saved copy (saved_view.h).
  std::unique_ptr<ViewSaver<DeadLetterEntry, DeadLetter>> saver_;
};

}  // namespace weft
