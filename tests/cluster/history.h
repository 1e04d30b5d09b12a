// The history of a cluster test: every request the agents and the submitter
// made, with its answer, and the checker that reads it.
//
// The checker only flags what is certain from the outside:
//  * a double grant: two claims answered 200 for one item with the same
//    `attempts` (each claim increments it, so one attempt has one holder);
//  * a stale-token transition: a start, complete or fail answered 200 with a
//    token when a later claim of the item (a higher attempt) had already been
//    answered before the transition was sent;
//  * a completion accepted twice for one item;
//  * a lost submit: a 201 whose item is not there at the end.
// A request answered 503 "outcome unknown" (or not answered at all) is
// indeterminate: it is neither acknowledged nor refused.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace weft::testing {

struct Op {
  enum class Kind { Submit, Claim, Start, Complete, Fail };
  Kind kind = Kind::Claim;
  int64_t sentMs = 0, answeredMs = 0;  // steady clock, test-relative
  int instance = 0;
  std::string agent, itemId, token;
  int64_t attempt = 0;  // claims: the attempts value granted
  int status = 0;       // 0 = no answer
};

struct Violations {
  std::vector<std::string> doubleGrants, staleTokens, doubleCompletions, lostSubmits;
  size_t total() const {
    return doubleGrants.size() + staleTokens.size() + doubleCompletions.size() +
           lostSubmits.size();
  }
};

// existingAtEnd: the ids found at the end (GET /api/work/{id} answered 200).
Violations checkHistory(const std::vector<Op>& history, const std::set<std::string>& existingAtEnd);

// The longest stretch with no successful write (2xx submit, claim, start,
// complete, fail) that overlaps [fromMs, toMs].
int64_t longestWriteGapMs(const std::vector<Op>& history, int64_t fromMs, int64_t toMs);

}  // namespace weft::testing
