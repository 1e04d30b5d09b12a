// Long-poll claims (WorkQueue::claimWait): parked claims per project and
// capability in arrival order, woken one per item that becomes claimable,
// run on a few claim threads; and the due timer, which moves delayed items
// into the claimable index when they come due and ends waits whose time is up.
#include "weft/work_queue.h"

#include <algorithm>
#include <limits>

#include "weft/log.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;
using SteadyClock = std::chrono::steady_clock;

struct WorkQueue::Waiter {
  uint64_t id = 0;
  ClaimRequest request;
  Selection selection;
  SteadyClock::time_point deadline;
  ClaimDone done;
  enum class State { Running, Parked, Finished } state = State::Running;
  bool cancelled = false;  // the client went away
  int recheckRuns = 0;     // runs started by park()'s own check since the last wake

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& cap : selection.caps) out.push_back(pendingKeyOf(selection.project, cap));
    return out;
  }
};

uint64_t WorkQueue::claimWait(const ClaimRequest& request, ClaimDone done) {
  const int64_t waitMs = std::clamp<int64_t>(request.waitMs.value_or(0), 0, kMaxClaimWaitMs);
  if (auto s = ready(); !s) {
    done(s);
    return 0;
  }
  auto sel = selectionFor(request);
  if (!sel) {
    done(sel.status());
    return 0;
  }
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(waitMs);
  auto first = claimSelected(*sel, request);
  if (!first || first->has_value() || waitMs <= 0) {
    done(std::move(first));
    return 0;
  }
  auto w = std::make_shared<Waiter>();
  w->request = request;
  w->selection = std::move(*sel);
  w->deadline = deadline;
  w->done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    if (!waitsEnded_) {
      w->id = nextWaiterId_++;
      waiters_.emplace(w->id, w);
    }
  }
  if (w->id == 0) {
    w->done(std::optional<ClaimedItem>{});
    return 0;
  }
  const uint64_t id = w->id;
  park(w);
  return id;
}

void WorkQueue::unparkLocked(Waiter& w) {
  if (w.state != Waiter::State::Parked) return;
  for (const auto& key : w.keys()) {
    auto it = parked_.find(key);
    if (it == parked_.end()) continue;
    it->second.erase(w.id);
    if (it->second.empty()) parked_.erase(it);
  }
  deadlines_.erase({w.deadline, w.id});
  --parkedCount_;
  w.state = Waiter::State::Running;
}

void WorkQueue::park(const WaiterPtr& w) {
  for (;;) {
    bool earliest = false;
    bool over = false;
    {
      std::lock_guard<std::mutex> lock(waitersMutex_);
      if (w->state == Waiter::State::Finished) return;
      over = w->cancelled || waitsEnded_ || SteadyClock::now() >= w->deadline;
      if (!over) {
        for (const auto& key : w->keys()) parked_[key].emplace(w->id, w);
        deadlines_.emplace(w->deadline, w->id);
        ++parkedCount_;
        w->state = Waiter::State::Parked;
        earliest = deadlines_.begin()->second == w->id;
      }
    }
    if (over) {
      finishWaiter(w, std::optional<ClaimedItem>{});
      return;
    }
    if (earliest) kickTimer();
    // An item that became claimable after this claim's last look but before
    // it was parked woke nobody: look once more.
    const auto keys = w->keys();
    const bool claimable = view_->read([&] {
      for (const auto& key : keys) {
        auto it = pending_.find(key);
        if (it == pending_.end()) continue;
        for (const auto& [k, candidate] : it->second) {
          if (w->selection.eligible(candidate)) return true;
        }
      }
      return false;
    });
    if (!claimable) return;
    {
      std::lock_guard<std::mutex> lock(waitersMutex_);
      if (w->state != Waiter::State::Parked) return;  // woken or ended meanwhile
      // An item it cannot win (a view behind the store) must not make it
      // spin: after a few runs it waits for the next change.
      if (++w->recheckRuns > 3) return;
      unparkLocked(*w);
    }
    auto result = claimSelected(w->selection, w->request);
    if (!result || result->has_value()) {
      finishWaiter(w, std::move(result));
      return;
    }
  }
}

void WorkQueue::finishWaiter(const WaiterPtr& w, Result<std::optional<ClaimedItem>> result) {
  ClaimDone done;
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    if (w->state == Waiter::State::Finished) return;
    unparkLocked(*w);
    w->state = Waiter::State::Finished;
    waiters_.erase(w->id);
    done = std::move(w->done);
  }
  if (done) done(std::move(result));
}

bool WorkQueue::wakeOneLocked(const std::string& pendingKey, const Candidate& candidate) {
  auto waiting = parked_.find(pendingKey);
  if (waiting == parked_.end()) return false;
  for (const auto& [id, w] : waiting->second) {
    if (!w->selection.eligible(candidate)) continue;
    WaiterPtr chosen = w;  // unparkLocked erases the map entry w refers to
    unparkLocked(*chosen);
    chosen->recheckRuns = 0;
    runQueue_.push_back(std::move(chosen));
    return true;
  }
  return false;
}

void WorkQueue::onClaimable(const std::string& pendingKey, const Candidate& candidate) {
  if (parkedCount_.load() == 0) return;
  bool woke;
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    woke = wakeOneLocked(pendingKey, candidate);
  }
  if (woke) runCv_.notify_one();
}

void WorkQueue::passOnWakes(const std::vector<std::string>& keys) {
  if (parkedCount_.load() == 0) return;
  bool woke = false;
  view_->read([&] {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    for (const auto& key : keys) {
      auto items = pending_.find(key);
      if (items == pending_.end()) continue;
      // The first item some parked claim may take wakes the longest-waiting
      // of those. Only the first few items are looked at: items nobody
      // parked may take (another boundary, say) can be many, and this runs
      // under the view's lock.
      constexpr int kCandidatesLooked = 16;
      int looked = 0;
      for (const auto& [k, candidate] : items->second) {
        if (++looked > kCandidatesLooked) break;
        if (wakeOneLocked(key, candidate)) {
          woke = true;
          break;
        }
      }
    }
  });
  if (woke) runCv_.notify_all();
}

void WorkQueue::claimWorkerLoop() {
  for (;;) {
    WaiterPtr w;
    {
      std::unique_lock<std::mutex> lock(waitersMutex_);
      runCv_.wait(lock, [this] { return workersStopping_ || !runQueue_.empty(); });
      if (runQueue_.empty()) return;
      w = std::move(runQueue_.front());
      runQueue_.pop_front();
    }
    try {
      runWaiter(w);
    } catch (const std::exception& e) {
      log::error("waiting claim failed", {{"error", e.what()}});
      finishWaiter(w, Status::internal("waiting claim failed"));
    }
  }
}

void WorkQueue::runWaiter(const WaiterPtr& w) {
  bool skip;
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    if (w->state == Waiter::State::Finished) return;
    // Never claim for a client that is gone, or during shutdown.
    skip = w->cancelled || waitsEnded_;
  }
  if (skip) {
    finishWaiter(w, std::optional<ClaimedItem>{});
    passOnWakes(w->keys());  // the wake it got is somebody else's now
    return;
  }
  auto result = claimSelected(w->selection, w->request);
  if (!result || result->has_value()) {
    finishWaiter(w, std::move(result));
    return;
  }
  // It lost the race for the item that woke it (or took a better one that
  // had woken another claim, which may now find nothing it may take): back
  // in its place, and a claimable item left over wakes someone else.
  passOnWakes(w->keys());
  park(w);
}

void WorkQueue::cancelClaimWait(uint64_t waitId) {
  WaiterPtr w;
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    auto it = waiters_.find(waitId);
    if (it == waiters_.end()) return;
    it->second->cancelled = true;
    if (it->second->state != Waiter::State::Parked) return;  // its run sees the flag
    w = it->second;
  }
  finishWaiter(w, std::optional<ClaimedItem>{});
}

void WorkQueue::endClaimWaits() {
  std::vector<WaiterPtr> parked;
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    waitsEnded_ = true;
    for (const auto& [id, w] : waiters_) {
      if (w->state == Waiter::State::Parked) parked.push_back(w);
    }
  }
  for (const auto& w : parked) finishWaiter(w, std::optional<ClaimedItem>{});
}

size_t WorkQueue::parkedClaims() const {
  return static_cast<size_t>(std::max<int64_t>(0, parkedCount_.load()));
}

void WorkQueue::kickTimer() {
  {
    std::lock_guard<std::mutex> lock(timerMutex_);
    timerKick_ = true;
  }
  timerCv_.notify_one();
}

void WorkQueue::timerLoop() {
  // The longest the timer sleeps: an injected clock's jumps and any wake a
  // race left unused are noticed within this.
  constexpr auto kMaxSleep = std::chrono::milliseconds(1000);
  auto nextPassOn = SteadyClock::now() + kMaxSleep;
  for (;;) {
    try {
      if (view_->ready()) promoteDue();
      // Waits whose time is up answer nothing.
      std::vector<WaiterPtr> expired;
      auto wakeAt = SteadyClock::now() + kMaxSleep;
      {
        std::lock_guard<std::mutex> lock(waitersMutex_);
        const auto now = SteadyClock::now();
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
          auto it = waiters_.find(deadlines_.begin()->second);
          if (it == waiters_.end() || it->second->state != Waiter::State::Parked) {
            deadlines_.erase(deadlines_.begin());  // not expected: only parked claims are listed
            continue;
          }
          expired.push_back(it->second);
          unparkLocked(*it->second);  // removes the entry
        }
        if (!deadlines_.empty()) wakeAt = std::min(wakeAt, deadlines_.begin()->first);
      }
      for (const auto& w : expired) finishWaiter(w, std::optional<ClaimedItem>{});
      // A safety net for wakes lost to races between claims with different
      // selections: parked claims with a claimable item are woken.
      if (SteadyClock::now() >= nextPassOn) {
        nextPassOn = SteadyClock::now() + kMaxSleep;
        std::vector<std::string> keys;
        {
          std::lock_guard<std::mutex> lock(waitersMutex_);
          for (const auto& [key, waiting] : parked_) keys.push_back(key);
        }
        passOnWakes(keys);
      }
      const int64_t nextDue = view_->read([&] {
        return delayed_.empty() ? std::numeric_limits<int64_t>::max()
                                : delayed_.begin()->first.first;
      });
      if (nextDue != std::numeric_limits<int64_t>::max()) {
        const int64_t in = std::max<int64_t>(0, nextDue - ctx_.now());
        if (in < kMaxSleep.count()) {
          wakeAt = std::min(wakeAt, SteadyClock::now() + std::chrono::milliseconds(in));
        }
      }
      std::unique_lock<std::mutex> lock(timerMutex_);
      timerCv_.wait_until(lock, std::max(wakeAt, SteadyClock::now() + std::chrono::milliseconds(1)),
                          [this] { return timerKick_ || timerStopping_; });
      if (timerStopping_) return;
      timerKick_ = false;
    } catch (const std::exception& e) {
      log::error("work timer failed", {{"error", e.what()}});
      std::unique_lock<std::mutex> lock(timerMutex_);
      if (timerCv_.wait_for(lock, kMaxSleep, [this] { return timerStopping_; })) return;
    }
  }
}

}  // namespace weft
