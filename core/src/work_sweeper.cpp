// The sweeper: expired leases back to pending (or to the DLQ), repairs, and
// retention of finished items; one pass per work.sweepIntervalMs.
#include "weft/work_queue.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_transitions.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;

WorkQueue::SweepReport WorkQueue::sweepOnce() {
  SweepReport report;
  // The first few failures of a pass are logged with their cause; the
  // report counts them all.
  constexpr int kErrorsLoggedPerPass = 3;
  auto failed = [&report](const char* step, const std::string& id, const Status& status) {
    if (++report.errors <= kErrorsLoggedPerPass) {
      log::warn("sweep step failed",
                {{"step", step}, {"id", id}, {"error", status.toString()}});
    }
  };
  if (!ctx_.checkConnected() || !view_->ready() || !deadLetters_.view().ready()) return report;
  const int64_t now = ctx_.now();

  // Expired leases: a recoverable failure, by compare-and-set at the revision
  // this instance read, so two sweepers never both count one expiry.
  std::vector<std::string> expired;
  view_->read([&] {
    for (auto it = leases_.begin(); it != leases_.end() && it->first <= now; ++it) {
      expired.push_back(it->second);
    }
  });
  for (const auto& id : expired) {
    auto loaded = load(id);
    if (!loaded) {
      if (loaded.code() != Code::NotFound) failed("read expired item", id, loaded.status());
      continue;
    }
    const auto& [record, revision] = *loaded;
    if (!record->isActive() || !record->leaseExpiresAtMs || *record->leaseExpiresAtMs > now) {
      continue;  // renewed or finished meanwhile
    }
    ErrorRecord error;
    error.message = "lease expired";
    error.code = "LEASE_EXPIRED";
    error.recoverable = true;
    error.occurredAt = formatIso(now);
    error.attempt = record->attempts;
    if (!record->assignedTo.empty()) error.agentGuid = record->assignedTo;
    auto outcome = applyFailure(*record, revision, std::move(error), nullptr);
    if (outcome) {
      ++report.leasesExpired;
      ++(*outcome == FailOutcome::Retried ? report.retried : report.deadLettered);
    } else if (outcome.code() != Code::Conflict) {
      failed("requeue expired item", id, outcome.status());
    }
  }

  // Dead-letter entries whose item is no longer failed (a lost race or an
  // outage between the two writes), once old enough that no update of the
  // item can still be in flight; and retention.
  constexpr int64_t kOrphanMarginMs = 60000;
  std::vector<std::pair<std::string, int64_t>> dead;
  deadLetters_.view().forEach(
      [&](const std::string& id, const std::shared_ptr<const DeadLetterEntry>& r) {
        dead.emplace_back(id, r->failedAtMs);
      });
  for (const auto& [id, failedAtMs] : dead) {
    bool expiredByRetention =
        ctx_.options.dlqRetentionMs > 0 && now - failedAtMs >= ctx_.options.dlqRetentionMs;
    bool orphanCandidate = false;
    if (!expiredByRetention) {
      if (now - failedAtMs < kOrphanMarginMs) continue;
      auto item = view_->find(id);
      orphanCandidate = item && item->status != WorkStatus::Failed;
      if (!orphanCandidate) continue;
    }
    auto entry = deadLetters_.read(id);
    if (!entry) continue;
    if (orphanCandidate) {
      auto loaded = load(id);
      if (!loaded || loaded->first->status == WorkStatus::Failed) continue;
    }
    if (deadLetters_.remove(id, entry->revision)) {
      ++(orphanCandidate ? report.orphansRemoved : report.deadLettersPurged);
    }
  }

  // Terminal items past work.retentionMs.
  std::vector<std::string> old;
  view_->read([&] {
    const int64_t updatedBefore = now - ctx_.options.retentionMs;
    for (auto it = finished_.begin(); it != finished_.end() && it->updatedAtMs <= updatedBefore;
         ++it) {
      old.push_back(it->entry->id);
    }
  });
  for (const auto& id : old) {
    // The entry and its revision together: one that changed meanwhile (a
    // retried dead letter) is not removed.
    const auto [entry, revision] = view_->findEntry(id);
    if (!entry || !entry->isTerminal() || now - entry->updatedAtMs < ctx_.options.retentionMs) {
      continue;
    }
    auto b = bucket();
    if (b && b->erase(id, revision)) {
      view_->applyErase(id, revision);
      ++report.itemsPurged;
    }
  }
  return report;
}

void WorkQueue::sweeperLoop(int64_t intervalMs) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(sweeperMutex_);
      if (sweeperCv_.wait_for(lock, std::chrono::milliseconds(intervalMs),
                              [this] { return stopping_; })) {
        return;
      }
    }
    try {
      SweepReport r = sweepOnce();
      if (r.leasesExpired || r.orphansRemoved || r.itemsPurged || r.deadLettersPurged || r.errors) {
        log::info("sweep", {{"leasesExpired", r.leasesExpired},
                            {"retried", r.retried},
                            {"deadLettered", r.deadLettered},
                            {"orphansRemoved", r.orphansRemoved},
                            {"itemsPurged", r.itemsPurged},
                            {"deadLettersPurged", r.deadLettersPurged},
                            {"errors", r.errors}});
      }
    } catch (const std::exception& e) {
      log::error("sweep failed", {{"error", e.what()}});
    }
  }
}

}  // namespace weft
