// The work list's index (weft/list_index.h): five filters (projectId,
// status, capability, boundary, assignedTo) in one order (priority
// descending, then offeredAt ascending, then id).
//
// Ordered sets are kept for ten filter combinations: none, P, S, C, PS, PC,
// SC, PSC, B, A (P = project, S = status, C = capability, B = boundary,
// A = assignedTo); a query reads the smallest one whose fields it filters
// on. Counts are kept for every combination without the assignee (their
// number is bounded by the projects, statuses, capabilities and boundaries
// in use); a total with `assignedTo` is counted on that agent's items.
#pragma once

#include "weft/list_index.h"
#include "weft/work_queue.h"

namespace weft {

struct WorkListTraits {
  using Record = WorkEntry;
  static constexpr size_t kFields = 5;
  enum Field : size_t { kProject, kStatus, kCapability, kBoundary, kAssignee };
  static constexpr unsigned P = 1u << kProject, S = 1u << kStatus, C = 1u << kCapability,
                            B = 1u << kBoundary, A = 1u << kAssignee;
  static constexpr unsigned kOrdered[] = {0, P, S, C, P | S, P | C, S | C, P | S | C, B, A};
  static constexpr unsigned kCounted[] = {0,         P,         S,         P | S,
                                          C,         P | C,     S | C,     P | S | C,
                                          B,         P | B,     S | B,     P | S | B,
                                          C | B,     P | C | B, S | C | B, P | S | C | B};

  static int64_t major(const WorkEntry& r) { return -r.priority; }
  static int64_t minor(const WorkEntry& r) { return r.offeredAtMs; }
  static const std::string& id(const WorkEntry& r) { return r.id; }
  template <typename Emit>
  static void values(const WorkEntry& r, size_t field, Emit&& emit) {
    if (field == kStatus) {
      emit(r.statusText());
    } else {
      emit(text(r, field));
    }
  }
  static bool has(const WorkEntry& r, size_t field, const std::string& value) {
    return field == kStatus ? r.statusText() == value : text(r, field) == value;
  }

 private:
  static const std::string& text(const WorkEntry& r, size_t field) {
    switch (field) {
      case kProject: return r.projectId;
      case kCapability: return r.capability;
      case kBoundary: return r.boundary;
      default: return r.assignedTo;
    }
  }
};

class WorkIndex : public ListIndex<WorkListTraits> {
 public:
  using Key = ListKey;
  using ListIndex::count;
  using ListIndex::page;
  static Filter filterOf(const WorkFilter& f) {
    return {f.projectId, f.status, f.capability, f.boundary, f.assignedTo};
  }
  size_t count(const WorkFilter& f) const { return ListIndex::count(filterOf(f)); }
  std::vector<const WorkEntry*> page(const WorkFilter& f, const PageQuery& query,
                                      bool* more) const {
    return ListIndex::page(filterOf(f), query, more);
  }
};

}  // namespace weft
