// The transition log of a work item: `transitions` in the stored record.
//
// Why it exists. Work events are derived from the storage change feed, and a
// feed may coalesce several quick writes of one key into the latest one (kv.h,
// watch). Comparing the last value a view saw with the new one then loses
// whatever happened in between: an item seen `pending` and next `completed`
// was assigned and started too, and a client waiting for `work:assigned` must
// still hear of it. So every lifecycle write appends what it did to the item
// itself, in the same compare-and-set, and events are read off the log:
// whatever the feed skipped, the next value it delivers carries the steps.
//
// An entry: {"seq", "event", "at", ...}. `seq` counts from 1 and never repeats
// within one item; `event` names the WebSocket event it stands for:
//   submitted  requeued?: true (DLQ retry, batch reassign), recreated?: true
//              (a DLQ retry that recreated an item removed by retention)
//   assigned   attempt, agentGuid, leaseExpiresAt
//   started    attempt, agentGuid
//   completed  attempt, agentGuid
//   failed     attempt, agentGuid?, error (index into `errors`), retrying,
//              deadLettered
//   cancelled  agentGuid? (the assignee at the time)
// Progress reports are not logged: they are not state transitions, and only
// the latest progress of an attempt matters (it may be coalesced).
//
// The log keeps the newest kMaxTransitions entries; seq keeps counting, so a
// reader can tell how many were dropped. Items written by something other than
// Weft, or before the log existed, have no `transitions`: their events are
// derived from the difference of two values, as before.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "weft/json.h"
#include "weft/work_item.h"

namespace weft {

constexpr size_t kMaxTransitions = 64;

// Appends {seq: last+1, event, at, ...fields} to item.transitions, making it
// an array (present) when it is not one, and dropping the oldest entries
// beyond kMaxTransitions.
void appendTransition(WorkItem& item, const char* event, const std::string& atIso,
                      Json::Object fields = {});

// Whether log (an item's `transitions`, null when absent) is a non-empty
// array.
bool hasTransitions(const Json& log);

// The seq of the newest entry, 0 when there is none.
int64_t lastTransitionSeq(const Json& log);

// The entries of afterLog that a reader who last saw the entry with seq
// `seenSeq` has not seen, oldest first. nullopt means the reader never saw
// this key (or saw it deleted): then the entries from the newest `recreated`
// entry on, or all of them, since a recreated item carries the history of its
// earlier life.
std::vector<const Json*> unseenTransitions(std::optional<int64_t> seenSeq, const Json& afterLog);

}  // namespace weft
