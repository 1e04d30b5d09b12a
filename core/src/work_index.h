// WorkIndex: the work list's filters and order, maintained incrementally, so
// a page of GET /api/work costs O(log n + what it reads) and its `total`
// costs O(1), however many items are stored (docs/architecture.md, "Lists
// that do not grow with history").
//
// The list filters on five fields (projectId, status, capability, boundary,
// assignedTo) in any combination, in one order (priority descending, then
// offeredAt ascending, then id). The index keeps:
//   - a count for every combination of filter values an item has (2^5 per
//     item), so the total of any filter is one hash lookup;
//   - the items in list order for ten of those combinations (none, P, S, C,
//     PS, PC, SC, PSC, A, B; P = project, S = status, C = capability,
//     B = boundary, A = assignedTo). A query reads the smallest ordered set
//     whose fields it filters on and checks the remaining filters on the
//     way; with filters the index covers exactly, every item it reads is on
//     the page.
// Pages are found by key: a cursor carries the key of the item next to the
// page (Pager anchors), so the next page is one lower_bound away.
//
// Not thread-safe by itself: WorkQueue updates it from the view's indexer
// (under the view's exclusive lock) and reads it inside view().read().
// Entries point at the records the view holds; the indexer removes an entry
// before the view lets go of its record.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "weft/work_queue.h"

namespace weft {

class WorkIndex {
 public:
  // A position in list order: the sort key of an item, which need not exist.
  struct Key {
    int64_t priority = 0;
    int64_t offeredAtMs = 0;
    std::string id;
  };

  // Applies one change of the view (nullptr = absent).
  void update(const WorkRecord* before, const WorkRecord* after);

  // How many items match the filter.
  size_t count(const WorkFilter& filter) const;

  // Up to `limit` matching records in list order: after `after` when given,
  // else ending just before `before` when given, else from the start
  // skipping `skip` matches. `more` is set to whether a matching item
  // follows the page. limit 0 = no limit.
  struct PageQuery {
    std::optional<Key> after, before;
    size_t skip = 0;
    size_t limit = 0;
  };
  std::vector<const WorkRecord*> page(const WorkFilter& filter, const PageQuery& query,
                                      bool* more) const;

  static Key keyOf(const WorkRecord& record) {
    return Key{record.priority, record.offeredAtMs, record.id};
  }

 private:
  struct Entry {
    int64_t priority;
    int64_t offeredAtMs;
    const WorkRecord* record;
  };
  struct Order {
    using is_transparent = void;
    static int compare(int64_t pa, int64_t oa, const std::string& ia, int64_t pb, int64_t ob,
                       const std::string& ib) {
      if (pa != pb) return pa > pb ? -1 : 1;
      if (oa != ob) return oa < ob ? -1 : 1;
      return ia.compare(ib);
    }
    bool operator()(const Entry& a, const Entry& b) const {
      return compare(a.priority, a.offeredAtMs, a.record->id, b.priority, b.offeredAtMs,
                     b.record->id) < 0;
    }
    bool operator()(const Entry& a, const Key& b) const {
      return compare(a.priority, a.offeredAtMs, a.record->id, b.priority, b.offeredAtMs, b.id) < 0;
    }
    bool operator()(const Key& a, const Entry& b) const {
      return compare(a.priority, a.offeredAtMs, a.id, b.priority, b.offeredAtMs, b.record->id) < 0;
    }
  };
  using OrderedSet = std::set<Entry, Order>;

  // Field bits of a combination.
  enum : unsigned { kProject = 1, kStatus = 2, kCapability = 4, kBoundary = 8, kAssignee = 16 };
  static constexpr std::array<unsigned, 10> kOrdered = {
      0,
      kProject,
      kStatus,
      kCapability,
      kProject | kStatus,
      kProject | kCapability,
      kStatus | kCapability,
      kProject | kStatus | kCapability,
      kAssignee,
      kBoundary};

  // The five filter values of an item or a query (unset = not filtered).
  using Values = std::array<const std::string*, 5>;
  static Values valuesOf(const WorkRecord& record, const std::string& status);
  static Values valuesOf(const WorkFilter& filter);
  static unsigned maskOf(const Values& values);
  // The hash key of a combination: the mask and the values of its fields.
  static std::string comboKey(unsigned mask, const Values& values);

  std::unordered_map<std::string, size_t> counts_;
  std::unordered_map<std::string, OrderedSet> ordered_;
};

}  // namespace weft
