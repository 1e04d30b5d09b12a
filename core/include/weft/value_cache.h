// ValueCache: the stored values a list page read from the backend, by key,
// each with the revision it was read at; at most `capacity` values, the
// least recently used going first.
//
// A view that does not hold a record whole (a finished work item, a
// dead-letter entry) reads it from the backend when a page shows it. Pages
// are read again and again (a dashboard polling the first page), so the
// values are kept here; a lookup names the revision the view holds, and a
// value read at another revision never answers, so the cache cannot show
// anything older than the view.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weft/kv.h"

namespace weft {

class ValueCache {
 public:
  explicit ValueCache(size_t capacity) : capacity_(capacity) {}

  // The value of key at exactly `revision`, if kept.
  std::optional<std::string> find(const std::string& key, uint64_t revision) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end() || it->second.revision != revision) return std::nullopt;
    use_.splice(use_.begin(), use_, it->second.use);
    return it->second.value;
  }

  void put(const std::string& key, uint64_t revision, const std::string& value) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it != values_.end()) {
      it->second.revision = revision;
      it->second.value = value;
      use_.splice(use_.begin(), use_, it->second.use);
      return;
    }
    if (values_.size() >= capacity_) {
      values_.erase(use_.back());
      use_.pop_back();
    }
    use_.push_front(key);
    values_.emplace(key, Kept{revision, value, use_.begin()});
  }

  // The values of `wanted`, each a key and the revision the caller's view
  // holds of it (0: gone there): from the cache when it has that revision;
  // the others read from `bucket` with one getMany and kept. nullopt for a
  // key that is gone. Fails as the getMany does.
  Result<std::vector<std::optional<std::string>>> read(
      KvBucket& bucket, const std::vector<std::pair<std::string, uint64_t>>& wanted) {
    std::vector<std::optional<std::string>> out(wanted.size());
    std::vector<std::string> keys;
    std::vector<size_t> slots;  // where each read key's value goes
    for (size_t i = 0; i < wanted.size(); ++i) {
      const auto& [key, revision] = wanted[i];
      if (revision == 0) continue;
      if ((out[i] = find(key, revision))) continue;
      keys.push_back(key);
      slots.push_back(i);
    }
    if (keys.empty()) return out;
    auto got = bucket.getMany(keys);
    if (!got) return got.status();
    for (size_t k = 0; k < keys.size() && k < got->size(); ++k) {
      auto& entry = (*got)[k];
      if (!entry) continue;
      put(entry->key, entry->revision, entry->value);
      out[slots[k]] = std::move(entry->value);
    }
    return out;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return values_.size();
  }

 private:
  struct Kept {
    uint64_t revision = 0;
    std::string value;
    std::list<std::string>::iterator use;  // in use_
  };
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::list<std::string> use_;  // keys, most recently used first
  std::unordered_map<std::string, Kept> values_;
};

}  // namespace weft
