#include "cluster/history.h"

#include <algorithm>

namespace weft::testing {

namespace {

bool ok(const Op& op) { return op.status >= 200 && op.status < 300 && op.status != 204; }

}  // namespace

Violations checkHistory(const std::vector<Op>& history,
                        const std::set<std::string>& existingAtEnd) {
  Violations v;
  // Grants per item and attempt, and every granted claim per item.
  std::map<std::pair<std::string, int64_t>, std::vector<const Op*>> grants;
  std::map<std::string, std::vector<const Op*>> claimsOf;
  std::map<std::string, int> completions;
  for (const Op& op : history) {
    if (!ok(op)) continue;
    if (op.kind == Op::Kind::Claim) {
      grants[{op.itemId, op.attempt}].push_back(&op);
      claimsOf[op.itemId].push_back(&op);
    }
    if (op.kind == Op::Kind::Complete) ++completions[op.itemId];
    if (op.kind == Op::Kind::Submit && !existingAtEnd.count(op.itemId)) {
      v.lostSubmits.push_back(op.itemId);
    }
  }
  for (const auto& [key, ops] : grants) {
    if (ops.size() < 2) continue;
    std::string who;
    for (const Op* op : ops) who += " " + op->agent + "@" + std::to_string(op->instance);
    v.doubleGrants.push_back(key.first + " attempt " + std::to_string(key.second) + ":" + who);
  }
  for (const auto& [id, n] : completions) {
    if (n > 1) v.doubleCompletions.push_back(id + " completed " + std::to_string(n) + " times");
  }
  for (const Op& op : history) {
    if (!ok(op) || op.kind == Op::Kind::Submit || op.kind == Op::Kind::Claim) continue;
    // The claim that issued this token.
    const Op* mine = nullptr;
    for (const Op* c : claimsOf[op.itemId]) {
      if (c->token == op.token) mine = c;
    }
    if (!mine) {
      v.staleTokens.push_back(op.itemId + ": a transition accepted with a token no claim granted");
      continue;
    }
    for (const Op* c : claimsOf[op.itemId]) {
      if (c->attempt > mine->attempt && c->answeredMs < op.sentMs) {
        v.staleTokens.push_back(op.itemId + ": token of attempt " + std::to_string(mine->attempt) +
                                " accepted after attempt " + std::to_string(c->attempt) +
                                " was granted");
        break;
      }
    }
  }
  return v;
}

int64_t longestWriteGapMs(const std::vector<Op>& history, int64_t fromMs, int64_t toMs) {
  std::vector<int64_t> times;
  for (const Op& op : history) {
    if (ok(op)) times.push_back(op.answeredMs);
  }
  std::sort(times.begin(), times.end());
  int64_t longest = 0;
  for (size_t i = 1; i < times.size(); ++i) {
    const int64_t a = times[i - 1], b = times[i];
    if (b < fromMs || a > toMs) continue;  // the gap does not overlap the window
    longest = std::max(longest, b - a);
  }
  return longest;
}

}  // namespace weft::testing
