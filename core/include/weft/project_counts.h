// ProjectCounts: the per-project totals of one watch-fed view, kept up to
// date as the view changes, so a stats request costs O(projects) and not
// O(records).
//
// The view's indexer hands every change over as (before, after) under the
// view's exclusive lock: the record the view held and the one it holds now.
// Subtracting one and adding the other keeps the totals equal to a count over
// the view, whatever the feed did on the way: coalesced events (a key seen
// `pending` and next `completed`), replays after a Reset, writes that came
// through another instance. verify() recounts to prove it, and corrects and
// reports any difference (stats.h, the drift metric).
//
// lastActivity is the latest activity of the project's records, as a count
// would find it (an ordered set of (time, record) per project: O(log n) per
// change, 16 bytes per record; filled in bulk during the view's first
// replay). A project whose last record goes is forgotten.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>

#include "weft/bucket_view.h"
#include "weft/sorted_blocks.h"
#include "weft/stats.h"

namespace weft {

template <typename Record, typename Full = Record>
class ProjectCounts {
 public:
  using View = BucketView<Record, Full>;
  using Ptr = std::shared_ptr<const Record>;
  // The project of a record.
  using ProjectOf = std::function<const std::string&(const Record&)>;
  // Adds `sign` (+1 or -1) times the record's counts to totals.
  using Count = std::function<void(const Record&, ProjectTotals& totals, int64_t sign)>;
  // The record's latest activity, if it shows any.
  using Activity = std::function<std::optional<int64_t>(const Record&)>;

  // Counts of view, attached to its indexer (which keeps them alive as long
  // as the view): call before the view starts.
  static std::shared_ptr<ProjectCounts> attach(View& view, ProjectOf projectOf, Count count,
                                               Activity activity) {
    std::shared_ptr<ProjectCounts> counts(
        new ProjectCounts(view, std::move(projectOf), std::move(count), std::move(activity)));
    view.addIndexer([counts](const std::string&, const Ptr& before, const Ptr& after) {
      std::lock_guard<std::mutex> lock(counts->mutex_);
      if (before) counts->apply(counts->byProject_, *before, -1, counts->loading_);
      if (after) counts->apply(counts->byProject_, *after, +1, counts->loading_);
    });
    view.addLoadedHook([counts] {
      std::lock_guard<std::mutex> lock(counts->mutex_);
      counts->loading_ = false;
      settleAll(counts->byProject_);
    });
    return counts;
  }
  ProjectCounts(const ProjectCounts&) = delete;
  ProjectCounts& operator=(const ProjectCounts&) = delete;

  // Adds these totals to `into` (creating the projects it knows).
  // Unavailable while the view has not loaded.
  Status addTo(ProjectTotalsMap& into, const char* notLoaded) const {
    if (!view_.ready()) return Status::unavailable(notLoaded);
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [project, entry] : byProject_) {
      ProjectTotals& t = into[project];
      t.addCounts(entry.totals);
      if (!entry.activity.empty()) t.noteActivity(std::prev(entry.activity.end())->first);
    }
    return Status::ok();
  }

  // Recounts the view and compares. Returns the number of projects whose
  // counts or activity differed; those are corrected.
  int verify() {
    return view_.read([&] {
      std::map<std::string, Entry> recount;
      view_.forEachLocked([&](const std::string&, const Ptr& record) {
        apply(recount, *record, +1, true);
      });
      settleAll(recount);
      std::lock_guard<std::mutex> lock(mutex_);
      settleAll(byProject_);  // still loading: compare in order
      int differ = 0;
      for (auto& [project, entry] : recount) {
        auto it = byProject_.find(project);
        if (it == byProject_.end() || !same(it->second, entry)) ++differ;
      }
      for (const auto& [project, entry] : byProject_) {
        if (recount.count(project) == 0) ++differ;
      }
      if (differ > 0) byProject_.swap(recount);
      return differ;
    });
  }

  // For tests of verify(): moves one record's worth of counts of project
  // by `delta` records, as a lost or doubled event would.
  void skewForTest(const std::string& project, int64_t delta) {
    std::lock_guard<std::mutex> lock(mutex_);
    Entry& e = byProject_[project];
    e.records += delta;
    e.totals.agents += delta;
    e.totals.pendingWork += delta;
  }

 private:
  // A record's activity, and the record (activities tie).
  using ActivityMark = std::pair<int64_t, const Record*>;
  struct Entry {
    ProjectTotals totals;  // lastActivityMs unused: see activity
    int64_t records = 0;
    SortedBlocks<ActivityMark, std::less<ActivityMark>> activity;  // each record that shows any
  };

  ProjectCounts(View& view, ProjectOf projectOf, Count count, Activity activity)
      : view_(view),
        projectOf_(std::move(projectOf)),
        count_(std::move(count)),
        activity_(std::move(activity)) {}

  // bulk: activity added unordered, for settleAll() to put in order.
  void apply(std::map<std::string, Entry>& into, const Record& record, int64_t sign,
             bool bulk) const {
    const std::string& project = projectOf_(record);
    Entry& e = into[project];
    e.records += sign;
    count_(record, e.totals, sign);
    if (auto ms = activity_(record)) {
      const ActivityMark a{*ms, &record};
      if (sign > 0 && bulk) {
        e.activity.defer(a);
      } else if (sign > 0) {
        e.activity.insert(a);
      } else {
        e.activity.eraseKey(a);
      }
    }
    if (e.records <= 0) into.erase(project);
  }

  static void settleAll(std::map<std::string, Entry>& entries) {
    for (auto& [project, entry] : entries) entry.activity.settle();
  }

  static bool same(const Entry& a, const Entry& b) {
    return a.records == b.records && a.totals.sameCounts(b.totals) &&
           a.activity.size() == b.activity.size() &&
           std::equal(a.activity.begin(), a.activity.end(), b.activity.begin());
  }

  View& view_;
  ProjectOf projectOf_;
  Count count_;
  Activity activity_;
  // Taken inside the view's lock (indexer, verify) and alone (addTo).
  mutable std::mutex mutex_;
  std::map<std::string, Entry> byProject_;
  bool loading_ = true;  // the view's first replay: activity in bulk
};

}  // namespace weft
