// A view saved to a local file, so that a restart loads it and reads only
// the changes made since, instead of replaying the whole bucket
// (docs/architecture.md, "Restart: a saved view").
//
// The file: a header (format, the record kind, the bucket's resume token,
// the feed revision the copy stands at, the record count), the records, and
// a checksum of everything before it. It is written to a temporary file
// and renamed, so a reader sees a whole file or the previous one; a torn or
// damaged file fails its checksum and is ignored (the view then replays).
// Nothing in it is trusted more than that: a file of another kind or token
// is ignored too.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "weft/bucket_view.h"
#include "weft/status.h"

namespace weft {

// The little-endian encoding of records.
class ByteSink {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(std::string_view v) {
    u64(v.size());
    out_.append(v.data(), v.size());
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

// Reads what ByteSink wrote. Reading past the end yields zeros and makes
// ok() false, so a decoder can read a whole record and check once.
class ByteSource {
 public:
  ByteSource(const char* begin, const char* end) : p_(begin), end_(end) {}
  uint8_t u8() {
    if (end_ - p_ < 1) return fail();
    return static_cast<uint8_t>(*p_++);
  }
  uint64_t u64() {
    if (end_ - p_ < 8) return fail();
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += 8;
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string_view str() {
    const uint64_t n = u64();
    if (!ok_ || static_cast<uint64_t>(end_ - p_) < n) {
      fail();
      return {};
    }
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  bool ok() const { return ok_; }
  bool atEnd() const { return p_ == end_; }

 private:
  uint8_t fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

class SavedViewFile {
 public:
  // kind names the record encoding (e.g. "work-entry/1"): a file of another
  // kind is ignored, so changing the encoding means changing the kind.
  SavedViewFile(std::string path, std::string kind);
  ~SavedViewFile();
  SavedViewFile(const SavedViewFile&) = delete;
  SavedViewFile& operator=(const SavedViewFile&) = delete;

  const std::string& path() const { return path_; }

  // Takes the file for this process (an advisory lock on path + ".lock",
  // held until destruction), creating its directory. Fails when another
  // process holds it: two weftd sharing one file would overwrite each
  // other's copies.
  Status lock();

  // Writes count records (encode(i, sink) appends record i) under token and
  // revision: to path + ".tmp", flushed to disk, then renamed over path.
  Status write(const std::string& token, uint64_t revision, size_t count,
               const std::function<void(size_t i, ByteSink& sink)>& encode);

  // Reads the file if it was saved under token: checks its checksum and
  // header, then hands each record to decode (which returns false for a
  // record it cannot read). NotFound when there is no file; InvalidArgument
  // (with the reason) when it is damaged, of another kind or another token,
  // or a record did not decode. *revision and *count come from the header.
  Status read(const std::string& token, uint64_t* revision, uint64_t* count,
              const std::function<bool(ByteSource& source)>& decode);

 private:
  const std::string path_;
  const std::string kind_;
  int lockFd_ = -1;
};

// A view's copy, written as (key, revision, record) triples.
template <typename T, typename Full>
Status saveView(const typename BucketView<T, Full>::Saved& saved, SavedViewFile& file,
                const std::function<void(const std::string& key, const T& value, ByteSink&)>& encode) {
  return file.write(saved.token, saved.revision, saved.entries.size(),
                    [&](size_t i, ByteSink& sink) {
                      const auto& e = saved.entries[i];
                      sink.str(e.key);
                      sink.u64(e.revision);
                      encode(e.key, *e.value, sink);
                    });
}

// The loader a view takes (BucketView::setSavedLoader): nullopt when the
// file is absent, damaged or of another bucket (logged).
template <typename T, typename Full>
typename BucketView<T, Full>::SavedLoader savedViewLoader(
    std::shared_ptr<SavedViewFile> file,
    std::function<std::shared_ptr<const T>(const std::string& key, ByteSource&)> decode) {
  using Saved = typename BucketView<T, Full>::Saved;
  return [file, decode](const std::string& token) -> std::optional<Saved> {
    Saved saved;
    saved.token = token;
    uint64_t count = 0;
    Status st = file->read(token, &saved.revision, &count, [&](ByteSource& in) {
      if (saved.entries.empty()) saved.entries.reserve(count);
      typename BucketView<T, Full>::SavedEntry e;
      e.key = std::string(in.str());
      e.revision = in.u64();
      if (!in.ok() || e.revision == 0) return false;
      e.value = decode(e.key, in);
      if (!e.value || !in.ok()) return false;
      saved.entries.push_back(std::move(e));
      return true;
    });
    if (!st) {
      if (st.code() != Code::NotFound) {
        log::warn("saved view not used", {{"path", file->path()}, {"reason", st.message()}});
      }
      return std::nullopt;
    }
    return saved;
  };
}

}  // namespace weft
