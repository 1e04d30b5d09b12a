// SortedBlocks<T, Less>: an ordered set of small values kept in sorted
// blocks of at most kMaxBlock values, for the list indexes.
//
// A std::set spends a 32-byte tree node and a heap chunk on each value; for
// a 24-byte index entry that is 64 bytes, and every lookup chases pointers
// through memory. Here a value costs its own size (blocks are at least a
// quarter full after erasures, half full after splits), a lookup is a binary
// search over the blocks' last values and then within one block, and
// inserting in order (a restart replaying the bucket) appends.
//
// The interface is the part of std::set the list index uses: begin, end,
// lower_bound, upper_bound, find (Less may be transparent), insert, erase,
// size, empty; iterators are bidirectional and, as with a vector, any
// insert or erase invalidates them.
//
// Loading in bulk: defer() takes a value without putting it in order, and
// settle() sorts what was deferred into the blocks in one go (a restart
// replaying a million records in no particular order: one sort instead of a
// million binary searches and block shifts). Until settle(), the deferred
// values are counted by size() and seen by forEachDeferred() only: begin,
// lower_bound, find and the rest see the settled ones.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <vector>

namespace weft {

template <typename T, typename Less>
class SortedBlocks {
 public:
  static constexpr size_t kMaxBlock = 256;

  class const_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    const_iterator() = default;
    reference operator*() const { return (*blocks_)[block_][index_]; }
    pointer operator->() const { return &(*blocks_)[block_][index_]; }
    const_iterator& operator++() {
      if (++index_ == (*blocks_)[block_].size()) {
        ++block_;
        index_ = 0;
      }
      return *this;
    }
    const_iterator& operator--() {
      if (index_ == 0) {
        --block_;
        index_ = (*blocks_)[block_].size() - 1;
      } else {
        --index_;
      }
      return *this;
    }
    bool operator==(const const_iterator& o) const {
      return block_ == o.block_ && index_ == o.index_;
    }
    bool operator!=(const const_iterator& o) const { return !(*this == o); }

   private:
    friend class SortedBlocks;
    const_iterator(const std::vector<std::vector<T>>* blocks, size_t block, size_t index)
        : blocks_(blocks), block_(block), index_(index) {}
    const std::vector<std::vector<T>>* blocks_ = nullptr;
    size_t block_ = 0, index_ = 0;  // end(): block_ == blocks.size(), index_ 0
  };
  using iterator = const_iterator;

  size_t size() const { return size_ + deferred_.size(); }
  bool empty() const { return size() == 0; }
  const_iterator begin() const { return at(0, 0); }
  const_iterator end() const { return at(blocks_.size(), 0); }

  // The first value not less than key.
  template <typename K>
  const_iterator lower_bound(const K& key) const {
    const Less less;
    auto block = std::partition_point(blocks_.begin(), blocks_.end(),
                                      [&](const std::vector<T>& b) { return less(b.back(), key); });
    if (block == blocks_.end()) return end();
    auto in = std::lower_bound(block->begin(), block->end(), key, less);
    return at(static_cast<size_t>(block - blocks_.begin()), static_cast<size_t>(in - block->begin()));
  }

  // The first value greater than key.
  template <typename K>
  const_iterator upper_bound(const K& key) const {
    const Less less;
    auto block = std::partition_point(blocks_.begin(), blocks_.end(),
                                      [&](const std::vector<T>& b) { return !less(key, b.back()); });
    if (block == blocks_.end()) return end();
    auto in = std::upper_bound(block->begin(), block->end(), key, less);
    return at(static_cast<size_t>(block - blocks_.begin()), static_cast<size_t>(in - block->begin()));
  }

  template <typename K>
  const_iterator find(const K& key) const {
    auto it = lower_bound(key);
    if (it == end() || Less()(key, *it)) return end();
    return it;
  }

  // Inserts value unless an equal one is there; true when inserted.
  bool insert(const T& value) {
    const Less less;
    if (blocks_.empty()) {
      blocks_.emplace_back();
      blocks_.back().reserve(kMaxBlock / 4);
      blocks_.back().push_back(value);
      ++size_;
      return true;
    }
    // The first block whose last value is not less than value; past the end:
    // the last block (value goes after everything).
    auto block = std::partition_point(blocks_.begin(), blocks_.end(),
                                      [&](const std::vector<T>& b) { return less(b.back(), value); });
    if (block == blocks_.end()) --block;
    auto in = std::lower_bound(block->begin(), block->end(), value, less);
    if (in != block->end() && !less(value, *in)) return false;
    const bool appended = in == block->end() && block + 1 == blocks_.end();
    block->insert(in, value);
    ++size_;
    if (block->size() > kMaxBlock) {
      // Values arriving in order fill each block; others split it in two.
      const size_t b = static_cast<size_t>(block - blocks_.begin());
      split(b, appended ? kMaxBlock : block->size() / 2);
    }
    return true;
  }

  // Takes value to be put in order by the next settle(). A value equal to
  // one already there is dropped then (as insert() would).
  void defer(const T& value) { deferred_.push_back(value); }

  bool settled() const { return deferred_.empty(); }

  // f(value) for each deferred value, in no particular order.
  template <typename F>
  void forEachDeferred(F&& f) const {
    for (const T& v : deferred_) f(v);
  }

  // Puts the deferred values in order. A few next to many settled ones are
  // inserted one by one; otherwise everything is merged and cut into full
  // blocks, so settling after each of k deferrals costs O(n log n) in all.
  void settle() {
    if (deferred_.empty()) return;
    const Less less;
    auto equal = [&](const T& a, const T& b) { return !less(a, b) && !less(b, a); };
    std::vector<T> incoming;
    incoming.swap(deferred_);
    if (incoming.size() * 8 < size_) {
      for (const T& v : incoming) insert(v);
      return;
    }
    std::stable_sort(incoming.begin(), incoming.end(), less);
    std::vector<T> all;
    all.reserve(size_ + incoming.size());
    for (const auto& block : blocks_) all.insert(all.end(), block.begin(), block.end());
    const auto middle = all.insert(all.end(), incoming.begin(), incoming.end());
    // Settled values first among equals: they win, as with insert().
    std::inplace_merge(all.begin(), middle, all.end(), less);
    all.erase(std::unique(all.begin(), all.end(), equal), all.end());
    blocks_.clear();
    for (size_t from = 0; from < all.size(); from += kMaxBlock) {
      const size_t n = std::min(kMaxBlock, all.size() - from);
      blocks_.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(from),
                           all.begin() + static_cast<std::ptrdiff_t>(from + n));
    }
    size_ = all.size();
  }

  // Erases the value equal to key, deferred values put in order first (a
  // value changed while loading in bulk: rare); true when one was there.
  template <typename K>
  bool eraseKey(const K& key) {
    settle();
    auto it = find(key);
    if (it == end()) return false;
    erase(it);
    return true;
  }

  void erase(const_iterator it) {
    std::vector<T>& block = blocks_[it.block_];
    block.erase(block.begin() + static_cast<std::ptrdiff_t>(it.index_));
    --size_;
    if (block.empty()) {
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(it.block_));
      return;
    }
    // Keep blocks at least a quarter full: merge a small one into a
    // neighbour when both fit in one block.
    if (block.size() < kMaxBlock / 4) {
      const size_t b = it.block_;
      if (b + 1 < blocks_.size() && block.size() + blocks_[b + 1].size() <= kMaxBlock) {
        merge(b);
      } else if (b > 0 && blocks_[b - 1].size() + block.size() <= kMaxBlock) {
        merge(b - 1);
      } else if (block.capacity() > 2 * block.size() + 8) {
        block.shrink_to_fit();
      }
    }
  }

 private:
  const_iterator at(size_t block, size_t index) const {
    // Normalise "one past a block" to the start of the next one.
    if (block < blocks_.size() && index == blocks_[block].size()) {
      ++block;
      index = 0;
    }
    return const_iterator(&blocks_, block, index);
  }

  // Splits block b before its value `cut`; both parts get a capacity
  // close to their size (a vector that doubled would hold twice that).
  void split(size_t b, size_t cut) {
    std::vector<T>& full = blocks_[b];
    const auto middle = full.begin() + static_cast<std::ptrdiff_t>(cut);
    std::vector<T> lower(full.begin(), middle);
    std::vector<T> upper;
    upper.reserve(std::max(static_cast<size_t>(full.end() - middle), kMaxBlock / 4));
    upper.assign(middle, full.end());
    full = std::move(lower);
    blocks_.insert(blocks_.begin() + static_cast<std::ptrdiff_t>(b + 1), std::move(upper));
  }

  // Appends block b + 1 to block b and removes it.
  void merge(size_t b) {
    std::vector<T>& into = blocks_[b];
    std::vector<T>& from = blocks_[b + 1];
    into.insert(into.end(), from.begin(), from.end());
    blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(b + 1));
  }

  std::vector<std::vector<T>> blocks_;  // each non-empty and sorted, in order
  size_t size_ = 0;                     // values in blocks_
  std::vector<T> deferred_;             // taken by defer(), not in order yet
};

}  // namespace weft
