// Whether two work entries hold the same fields (tests of WorkEntry::read
// against WorkEntry::of, and the stored-record fuzz target).
#pragma once

#include <memory>

#include "weft/work_queue.h"

namespace weft::test {

inline bool sameEntry(const WorkEntry& a, const WorkEntry& b) {
  return a.id == b.id && a.projectId == b.projectId && a.capability == b.capability &&
         a.boundary == b.boundary && a.requiredAgentType == b.requiredAgentType &&
         a.assignedTo == b.assignedTo &&
         a.unknownStatus == b.unknownStatus && a.status == b.status &&
         a.priority == b.priority && a.attempts == b.attempts &&
         a.offeredAtMs == b.offeredAtMs && a.updatedAtMs == b.updatedAtMs &&
         a.dueAtMs == b.dueAtMs && a.leaseExpiresAtMs == b.leaseExpiresAtMs &&
         a.progress == b.progress && a.lastTransitionSeq == b.lastTransitionSeq &&
         a.errorCount == b.errorCount;
}

// WorkEntry::read(stored) against the entry of the whole decode: both
// reject the value, or both keep the same fields.
inline bool readAgreesWithDecode(const std::string& stored) {
  auto whole = WorkQueue::decode(stored);
  auto read = WorkEntry::read(stored);
  if (!whole || !read) return !whole && !read;
  return sameEntry(*WorkEntry::of(*whole), *read);
}

}  // namespace weft::test
