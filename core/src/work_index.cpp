#include "work_index.h"

#include <algorithm>

namespace weft {

namespace {

// The order of the five fields in Values and in the mask bits.
constexpr unsigned kFields = 5;

}  // namespace

WorkIndex::Values WorkIndex::valuesOf(const WorkRecord& record, const std::string& status) {
  return {&record.projectId, &status, &record.capability, &record.boundary, &record.assignedTo};
}

WorkIndex::Values WorkIndex::valuesOf(const WorkFilter& f) {
  auto ptr = [](const std::optional<std::string>& v) { return v ? &*v : nullptr; };
  return {ptr(f.projectId), ptr(f.status), ptr(f.capability), ptr(f.boundary), ptr(f.assignedTo)};
}

unsigned WorkIndex::maskOf(const Values& values) {
  unsigned mask = 0;
  for (unsigned i = 0; i < kFields; ++i) {
    if (values[i]) mask |= 1u << i;
  }
  return mask;
}

std::string WorkIndex::comboKey(unsigned mask, const Values& values) {
  std::string key(1, static_cast<char>(mask));
  for (unsigned i = 0; i < kFields; ++i) {
    if (!(mask & (1u << i))) continue;
    // Length-prefixed, so no value can run into the next one.
    const std::string& v = *values[i];
    key += std::to_string(v.size());
    key += ':';
    key += v;
  }
  return key;
}

void WorkIndex::update(const WorkRecord* before, const WorkRecord* after) {
  if (before) {
    const std::string status = before->statusText();
    const Values values = valuesOf(*before, status);
    for (unsigned mask = 0; mask < (1u << kFields); ++mask) {
      auto it = counts_.find(comboKey(mask, values));
      if (it != counts_.end() && --it->second == 0) counts_.erase(it);
    }
    for (unsigned mask : kOrdered) {
      auto it = ordered_.find(comboKey(mask, values));
      if (it == ordered_.end()) continue;
      auto entry = it->second.find(keyOf(*before));
      if (entry != it->second.end()) it->second.erase(entry);
      if (it->second.empty()) ordered_.erase(it);
    }
  }
  if (after) {
    const std::string status = after->statusText();
    const Values values = valuesOf(*after, status);
    for (unsigned mask = 0; mask < (1u << kFields); ++mask) ++counts_[comboKey(mask, values)];
    for (unsigned mask : kOrdered) {
      ordered_[comboKey(mask, values)].insert(Entry{after->priority, after->offeredAtMs, after});
    }
  }
}

size_t WorkIndex::count(const WorkFilter& filter) const {
  const Values values = valuesOf(filter);
  auto it = counts_.find(comboKey(maskOf(values), values));
  return it == counts_.end() ? 0 : it->second;
}

std::vector<const WorkRecord*> WorkIndex::page(const WorkFilter& filter, const PageQuery& query,
                                               bool* more) const {
  const Values values = valuesOf(filter);
  const unsigned wanted = maskOf(values);
  // The smallest ordered set among those whose fields the query filters on;
  // the query's other fields are checked on each entry read.
  const OrderedSet* best = nullptr;
  unsigned bestMask = 0;
  for (unsigned mask : kOrdered) {
    if ((mask & wanted) != mask) continue;
    auto it = ordered_.find(comboKey(mask, values));
    if (it == ordered_.end()) {
      best = nullptr;  // no item has these values: nothing matches
      bestMask = mask;
      break;
    }
    if (!best || it->second.size() < best->size()) {
      best = &it->second;
      bestMask = mask;
    }
  }
  std::vector<const WorkRecord*> out;
  if (more) *more = false;
  if (!best) return out;
  const unsigned residual = wanted & ~bestMask;
  auto matches = [&](const WorkRecord& r) {
    if (!residual) return true;
    const std::string status = (residual & kStatus) ? r.statusText() : std::string();
    const Values have = valuesOf(r, status);
    for (unsigned i = 0; i < kFields; ++i) {
      if ((residual & (1u << i)) && *have[i] != *values[i]) return false;
    }
    return true;
  };
  const size_t limit = query.limit ? query.limit : SIZE_MAX;

  if (query.before && !query.after) {
    // The page that ends just before the key: read backwards.
    auto it = best->lower_bound(*query.before);
    while (it != best->begin() && out.size() < limit) {
      --it;
      if (matches(*it->record)) out.push_back(it->record);
    }
    std::reverse(out.begin(), out.end());
    // What follows the page: the item at the key, or the next match.
    if (more) {
      for (auto next = best->lower_bound(*query.before); next != best->end(); ++next) {
        if (matches(*next->record)) {
          *more = true;
          break;
        }
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

}  // namespace weft
