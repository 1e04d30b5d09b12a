// ListIndex: a list's filters and order, maintained incrementally from a
// view's changes, so that a page costs O(log n + what it reads) and the
// list's `total` one hash lookup, however many records are stored.
//
// A list filters on N fields by equality, in any combination, and has one
// order. The index keeps:
//   - a count for each combination of filter values a record has, for the
//     field combinations the list names as counted (a field with several
//     values, like an agent's capabilities, counts once per value); the
//     total of a counted filter is one lookup, any other is counted on the
//     page's ordered set;
//   - the records in list order for the field combinations the list names
//     as ordered. A query reads the smallest ordered set among those whose
//     fields it filters on and checks its other filters on the way; when the
//     ordered set covers the query's fields exactly, every record read is on
//     the page.
// Field values are interned: a combination is a mask and N small integers,
// so an update allocates nothing once its values were seen.
//
// Pages are found by key: a cursor carries the key next to the page (see
// Pager::setPageKeys), so the next page is one lower_bound away; a page by
// position (the first page, or a cursor without a key) skips matches one by
// one.
//
// The list is described by a Traits type:
//   using Record = ...;
//   static constexpr size_t kFields = N;                  // 1..8
//   static int64_t major(const Record&), minor(const Record&);  // ascending
//   static const std::string& id(const Record&);          // a member of Record
//   template <typename Emit>                               // emit(const std::string&)
//   static void values(const Record&, size_t field, Emit&& emit);
//   static bool has(const Record&, size_t field, const std::string& value);
//   static constexpr unsigned kOrdered[] = {...}, kCounted[] = {...};  // masks
//
// Not thread-safe by itself: the owning service updates it from its view's
// indexer (under the view's exclusive lock) and reads it inside
// view().read(). Entries point into the records the view holds; the indexer
// removes a record's entries before the view lets go of it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "weft/json.h"
#include "weft/pagination.h"
#include "weft/sorted_blocks.h"
#include "weft/status.h"

namespace weft {

// A position in a list's order: ascending by major, then minor, then id.
// (A list ordered by something descending stores it negated.)
struct ListKey {
  int64_t major = 0;
  int64_t minor = 0;
  std::string id;

  // The cursor form, [major, minor, id], and back (nullopt when malformed).
  Json toJson() const;
  static std::optional<ListKey> fromJson(const Json& value);
};

template <typename Traits>
class ListIndex {
 public:
  using Record = typename Traits::Record;
  static constexpr size_t N = Traits::kFields;
  static_assert(N >= 1 && N <= 8, "a list filters on 1 to 8 fields");
  // A filter: the wanted value of each field, nullopt = any.
  using Filter = std::array<std::optional<std::string>, N>;
  struct PageQuery {
    std::optional<ListKey> after, before;  // at most one
    size_t skip = 0;                       // without after/before
    size_t limit = 0;                      // 0 = all
  };

  // Loading in bulk (a view's first replay, when nothing pages the index
  // yet): a record added meanwhile is only appended to a list, and
  // endBulk() counts them and puts them in order all at once (a tight loop
  // per combination instead of some 26 scattered hash lookups and ordered
  // inserts per record). count() is exact meanwhile; page() sees only
  // records already in order, so call it after endBulk(). A record removed
  // during the load (rare: a change that overtook the replay) first flushes
  // the list.
  void beginBulk() { bulk_ = true; }
  void endBulk() {
    flushBulk();
    bulk_ = false;
    for (auto& [combo, set] : ordered_) set.settle();
  }

  // Applies one change of the view (nullptr = absent).
  void update(const Record* before, const Record* after) {
    if (before) apply(*before, false);
    if (after) apply(*after, true);
  }

  size_t count(const Filter& filter) const {
    Combo combo;
    if (!comboOf(filter, combo)) return 0;  // a value no record ever had
    if (isCounted(combo.mask)) {
      auto it = counts_.find(combo);
      size_t n = it == counts_.end() ? 0 : it->second;
      for (const BulkRecord& b : bulkRecords_) n += b.in(combo) ? 1 : 0;
      return n;
    }
    size_t n = 0;
    unsigned residual = 0;
    const OrderedSet* set = bestSet(filter, combo, &residual);
    if (!set) return 0;
    for (const Entry& e : *set) n += matchesFields(*e.record, filter, residual) ? 1 : 0;
    set->forEachDeferred(
        [&](const Entry& e) { n += matchesFields(*e.record, filter, residual) ? 1 : 0; });
    for (const BulkRecord& b : bulkRecords_) n += b.in(combo) ? 1 : 0;
    return n;
  }

  // Up to `limit` matching records in list order: after `after`, else
  // ending just before `before`, else from the start skipping `skip`
  // matches. `more` tells whether a match follows the page.
  std::vector<const Record*> page(const Filter& filter, const PageQuery& query,
                                  bool* more) const {
    std::vector<const Record*> out;
    if (more) *more = false;
    Combo combo;
    if (!comboOf(filter, combo)) return out;
    unsigned residual = 0;
    const OrderedSet* best = bestSet(filter, combo, &residual);
    if (!best) return out;
    auto matches = [&](const Record& r) { return !residual || matchesFields(r, filter, residual); };
    const size_t limit = query.limit ? query.limit : SIZE_MAX;

    if (query.before && !query.after) {
      auto it = best->lower_bound(*query.before);
      for (auto back = it; back != best->begin() && out.size() < limit;) {
        --back;
        if (matches(*back->record)) out.push_back(back->record);
      }
      std::reverse(out.begin(), out.end());
      for (; more && it != best->end(); ++it) {
        if (matches(*it->record)) {
          *more = true;
          break;
        }
      }
      return out;
    }
    auto it = query.after ? best->upper_bound(*query.after) : best->begin();
    size_t skip = query.after ? 0 : query.skip;
    for (; it != best->end(); ++it) {
      if (!matches(*it->record)) continue;
      if (skip > 0) {
        --skip;
        continue;
      }
      if (out.size() == limit) {
        if (more) *more = true;
        break;
      }
      out.push_back(it->record);
    }
    return out;
  }

  static ListKey keyOf(const Record& r) {
    return ListKey{Traits::major(r), Traits::minor(r), Traits::id(r)};
  }

 private:
  struct Entry {
    int64_t major, minor;
    const Record* record;
  };
  struct Order {
    using is_transparent = void;
    static bool less(int64_t ma, int64_t na, const std::string& ia, int64_t mb, int64_t nb,
                     const std::string& ib) {
      if (ma != mb) return ma < mb;
      if (na != nb) return na < nb;
      return ia < ib;
    }
    bool operator()(const Entry& a, const Entry& b) const {
      return less(a.major, a.minor, Traits::id(*a.record), b.major, b.minor, Traits::id(*b.record));
    }
    bool operator()(const Entry& a, const ListKey& b) const {
      return less(a.major, a.minor, Traits::id(*a.record), b.major, b.minor, b.id);
    }
    bool operator()(const ListKey& a, const Entry& b) const {
      return less(a.major, a.minor, a.id, b.major, b.minor, Traits::id(*b.record));
    }
  };
  // 24 bytes per entry instead of a 64-byte tree node (sorted_blocks.h).
  using OrderedSet = SortedBlocks<Entry, Order>;

  // A combination: which fields, and the interned value of each (0 for a
  // field not in the mask).
  struct Combo {
    unsigned mask = 0;
    std::array<uint32_t, N> value{};
    bool operator==(const Combo& o) const { return mask == o.mask && value == o.value; }
  };
  struct ComboHash {
    size_t operator()(const Combo& c) const {
      uint64_t h = 0x9e3779b97f4a7c15ull ^ c.mask;
      for (uint32_t v : c.value) h = (h ^ v) * 0x100000001b3ull + (h >> 29);
      return static_cast<size_t>(h);
    }
  };

  // The interned values a record has for one field: most fields have one
  // (an agent's capabilities several), kept inline so that an update does
  // not allocate.
  class FieldValues {
   public:
    void push_back(uint32_t v) {
      if (n_ < small_.size() && more_.empty()) {
        small_[n_++] = v;
        return;
      }
      if (more_.empty()) more_.assign(small_.begin(), small_.begin() + n_);
      more_.push_back(v);
      ++n_;
    }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    uint32_t* begin() { return more_.empty() ? small_.data() : more_.data(); }
    uint32_t* end() { return begin() + n_; }
    uint32_t operator[](size_t i) const { return more_.empty() ? small_[i] : more_[i]; }
    // Drops repeated values (a value listed twice counts once).
    void makeUnique() {
      if (n_ < 2) return;
      std::sort(begin(), end());
      n_ = static_cast<size_t>(std::unique(begin(), end()) - begin());
      if (!more_.empty()) more_.resize(n_);
    }

   private:
    std::array<uint32_t, 4> small_{};
    std::vector<uint32_t> more_;
    size_t n_ = 0;
  };
  using Values = std::array<FieldValues, N>;

  static bool isCounted(unsigned mask) {
    for (unsigned m : Traits::kCounted) {
      if (m == mask) return true;
    }
    return false;
  }

  // The filter as a combination; false when a wanted value was never seen.
  bool comboOf(const Filter& filter, Combo& combo) const {
    for (size_t i = 0; i < N; ++i) {
      if (!filter[i]) continue;
      auto it = dict_[i].find(*filter[i]);
      if (it == dict_[i].end()) return false;
      combo.mask |= 1u << i;
      combo.value[i] = it->second;
    }
    return true;
  }

  // The smallest ordered set whose fields the filter covers; nullptr when
  // one of them is empty (nothing matches). *residual: the filter's fields
  // the set does not cover.
  const OrderedSet* bestSet(const Filter& filter, const Combo& wanted, unsigned* residual) const {
    (void)filter;
    const OrderedSet* best = nullptr;
    unsigned bestMask = 0;
    for (unsigned mask : Traits::kOrdered) {
      if ((mask & wanted.mask) != mask) continue;
      Combo c;
      c.mask = mask;
      for (size_t i = 0; i < N; ++i) {
        if (mask & (1u << i)) c.value[i] = wanted.value[i];
      }
      auto it = ordered_.find(c);
      if (it == ordered_.end()) return nullptr;  // no record has these values
      if (!best || it->second.size() < best->size()) {
        best = &it->second;
        bestMask = mask;
      }
    }
    *residual = wanted.mask & ~bestMask;
    return best;
  }

  static bool matchesFields(const Record& r, const Filter& filter, unsigned fields) {
    for (size_t i = 0; i < N; ++i) {
      if ((fields & (1u << i)) && !Traits::has(r, i, *filter[i])) return false;
    }
    return true;
  }

  uint32_t intern(size_t field, const std::string& value) {
    auto& dict = dict_[field];
    if (auto it = dict.find(value); it != dict.end()) return it->second;  // no node made
    return dict.emplace(value, static_cast<uint32_t>(dict.size() + 1)).first->second;
  }

  // Calls f(combo) for each combination of the record's values in `masks`:
  // for each mask, every pick of one value per field (distinct values).
  template <typename Masks, typename F>
  static void forEachCombo(const Values& values, const Masks& masks,
                           F&& f) {
    for (unsigned mask : masks) {
      bool empty = false;
      for (size_t i = 0; i < N; ++i) {
        if ((mask & (1u << i)) && values[i].empty()) empty = true;
      }
      if (empty) continue;  // a multi-valued field without a value: in no such combination
      std::array<size_t, N> pick{};
      for (;;) {
        Combo c;
        c.mask = mask;
        for (size_t i = 0; i < N; ++i) {
          if (mask & (1u << i)) c.value[i] = values[i][pick[i]];
        }
        f(c);
        size_t i = 0;
        for (; i < N; ++i) {
          if (!(mask & (1u << i))) continue;
          if (++pick[i] < values[i].size()) break;
          pick[i] = 0;
        }
        if (i == N) break;
      }
    }
  }

  // A record added during a bulk load whose fields have one value at most
  // (0: none), with its place in the order.
  struct BulkRecord {
    Entry entry;
    std::array<uint32_t, N> value;
    // Whether the record is counted under combo.
    bool in(const Combo& combo) const {
      for (size_t i = 0; i < N; ++i) {
        if ((combo.mask & (1u << i)) && value[i] != combo.value[i]) return false;
      }
      return true;
    }
    // Its combination of the fields in mask; false when one has no value.
    bool comboOf(unsigned mask, Combo& c) const {
      c.mask = mask;
      for (size_t i = 0; i < N; ++i) {
        if (!(mask & (1u << i))) continue;
        if (value[i] == 0) return false;
        c.value[i] = value[i];
      }
      return true;
    }
  };

  // Counts and orders the records of the bulk list (in list order, so each
  // ordered set takes them sorted).
  void flushBulk() {
    if (bulkRecords_.empty()) return;
    std::vector<BulkRecord> records;
    records.swap(bulkRecords_);
    const Order order;
    std::sort(records.begin(), records.end(),
              [&](const BulkRecord& a, const BulkRecord& b) { return order(a.entry, b.entry); });
    for (unsigned mask : Traits::kCounted) {
      for (const BulkRecord& b : records) {
        Combo c;
        if (b.comboOf(mask, c)) ++counts_[c];
      }
    }
    for (unsigned mask : Traits::kOrdered) {
      OrderedSet* set = nullptr;
      Combo last;
      for (const BulkRecord& b : records) {
        Combo c;
        if (!b.comboOf(mask, c)) continue;
        if (!set || !(c == last)) {
          set = &ordered_[c];
          last = c;
        }
        set->defer(b.entry);
      }
    }
  }

  void apply(const Record& r, bool add) {
    Values values;
    bool single = true;
    for (size_t i = 0; i < N; ++i) {
      Traits::values(r, i, [&](const std::string& v) { values[i].push_back(intern(i, v)); });
      values[i].makeUnique();
      single = single && values[i].size() <= 1;
    }
    if (bulk_ && !add) flushBulk();
    if (bulk_ && add && single) {
      const ListKey position = keyOf(r);
      BulkRecord b{Entry{position.major, position.minor, &r}, {}};
      for (size_t i = 0; i < N; ++i) b.value[i] = values[i].empty() ? 0 : values[i][0];
      bulkRecords_.push_back(b);
      return;
    }
    forEachCombo(values, Traits::kCounted, [&](const Combo& c) {
      if (add) {
        ++counts_[c];
      } else if (auto it = counts_.find(c); it != counts_.end() && --it->second == 0) {
        counts_.erase(it);
      }
    });
    const ListKey position = keyOf(r);
    forEachCombo(values, Traits::kOrdered, [&](const Combo& c) {
      if (add) {
        const Entry entry{position.major, position.minor, &r};
        if (bulk_) {
          ordered_[c].defer(entry);
        } else {
          ordered_[c].insert(entry);
        }
        return;
      }
      auto set = ordered_.find(c);
      if (set == ordered_.end()) return;
      set->second.eraseKey(position);
      if (set->second.empty()) ordered_.erase(set);
    });
  }

  bool bulk_ = false;
  std::vector<BulkRecord> bulkRecords_;  // added during the bulk load, not yet counted
  std::array<std::unordered_map<std::string, uint32_t>, N> dict_;
  std::unordered_map<Combo, size_t, ComboHash> counts_;
  std::unordered_map<Combo, OrderedSet, ComboHash> ordered_;
};

// Builds index in bulk while view replays for the first time (until then the
// owning service answers lists with 503, so nothing pages it meanwhile).
template <typename View, typename Index>
void loadInBulk(View& view, Index& index) {
  index.beginBulk();
  view.addLoadedHook([&index] { index.endBulk(); });
}

// The index query a list request asks for: by key when its cursor has one,
// else by position (the first page, or a cursor without a key).
template <typename Index>
Result<typename Index::PageQuery> pageQuery(const Pager& pager) {
  typename Index::PageQuery q;
  if (pager.all()) return q;
  q.limit = pager.limit();
  if (!pager.after().isNull()) {
    q.after = ListKey::fromJson(pager.after());
    if (!q.after) return Status::invalidArgument("Invalid pagination cursor: bad position");
  } else if (!pager.before().isNull()) {
    q.before = ListKey::fromJson(pager.before());
    if (!q.before) return Status::invalidArgument("Invalid pagination cursor: bad position");
  } else {
    q.skip = pager.offset();
  }
  return q;
}

// Reads one page under the view's lock: the filter's total and the page's
// records (shared with the view: records derive from
// enable_shared_from_this), and tells the pager where the page lies.
template <typename View, typename Index, typename Ptr>
void fillPage(const View& view, const Index& index, const typename Index::Filter& filter,
              const typename Index::PageQuery& query, std::vector<Ptr>& items, size_t& total,
              Pager& pager) {
  bool more = false;
  Json first, last;
  view.read([&] {
    total = index.count(filter);
    const auto records = index.page(filter, query, &more);
    items.reserve(records.size());
    for (const auto* r : records) items.push_back(r->shared_from_this());
    if (!records.empty()) {
      first = Index::keyOf(*records.front()).toJson();
      last = Index::keyOf(*records.back()).toJson();
    }
  });
  if (!pager.all()) pager.setPageKeys(items.size(), std::move(first), std::move(last), more);
}

}  // namespace weft
