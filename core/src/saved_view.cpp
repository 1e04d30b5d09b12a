#include "weft/saved_view.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace weft {

namespace {

constexpr char kMagic[8] = {'W', 'E', 'F', 'T', 'V', 'I', 'E', 'W'};
constexpr uint64_t kFormat = 1;
// Records are encoded this many bytes at a time before being written.
constexpr size_t kChunkBytes = 1 << 20;

// A 64-bit checksum over a byte stream fed in pieces of any size: a
// multiply-xor mix of each 8-byte word (fast enough that checking a file of
// a million records costs a small part of reading it). Detects truncation
// and damage, not tampering.
class Checksum {
 public:
  void add(const char* p, size_t n) {
    total_ += n;
    while (n > 0 && tailLen_ > 0) {
      tail_[tailLen_++] = *p++;
      --n;
      if (tailLen_ == 8) {
        mixWord(load(tail_));
        tailLen_ = 0;
      }
    }
    while (n >= 8) {
      mixWord(load(p));
      p += 8;
      n -= 8;
    }
    while (n > 0) {
      tail_[tailLen_++] = *p++;
      --n;
    }
  }
  uint64_t value() const {
    uint64_t h = h_;
    uint64_t last = 0;
    for (size_t i = 0; i < tailLen_; ++i) last |= uint64_t(uint8_t(tail_[i])) << (8 * i);
    h = (h ^ last ^ total_) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
  }

 private:
  static uint64_t load(const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  void mixWord(uint64_t w) {
    h_ = (h_ ^ w) * 0x100000001B3ull;
    h_ ^= h_ >> 32;
  }
  uint64_t h_ = 0xCBF29CE484222325ull;
  uint64_t total_ = 0;
  char tail_[8] = {};
  size_t tailLen_ = 0;
};

std::string errnoText(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Writes everything or fails, feeding the checksum.
class Writer {
 public:
  explicit Writer(std::FILE* f) : f_(f) {}
  bool put(const std::string& bytes) {
    sum_.add(bytes.data(), bytes.size());
    return std::fwrite(bytes.data(), 1, bytes.size(), f_) == bytes.size();
  }
  uint64_t sum() const { return sum_.value(); }

 private:
  std::FILE* f_;
  Checksum sum_;
};

}  // namespace

SavedViewFile::SavedViewFile(std::string path, std::string kind)
    : path_(std::move(path)), kind_(std::move(kind)) {}

SavedViewFile::~SavedViewFile() {
  if (lockFd_ >= 0) ::close(lockFd_);  // releases the lock
}

Status SavedViewFile::lock() {
  if (lockFd_ >= 0) return Status::ok();
  std::error_code ec;
  const auto dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return Status::unavailable("create directory " + dir.string() + ": " + ec.message());
  const std::string lockPath = path_ + ".lock";
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::unavailable(errnoText("open", lockPath));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    Status st = Status::unavailable(
        errno == EWOULDBLOCK ? lockPath + " is held by another process (another weftd?)"
                             : errnoText("lock", lockPath));
    ::close(fd);
    return st;
  }
  lockFd_ = fd;
  return Status::ok();
}

Status SavedViewFile::write(const std::string& token, uint64_t revision, size_t count,
                            const std::function<void(size_t, ByteSink&)>& encode) {
  const std::string tmp = path_ + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::unavailable(errnoText("create", tmp));
  Writer out(f);
  ByteSink head;
  head.bytes().append(kMagic, sizeof kMagic);
  head.u64(kFormat);
  head.str(kind_);
  head.str(token);
  head.u64(revision);
  head.u64(count);
  bool ok = out.put(head.bytes());
  ByteSink chunk;
  for (size_t i = 0; ok && i < count; ++i) {
    encode(i, chunk);
    if (chunk.bytes().size() >= kChunkBytes) {
      ok = out.put(chunk.bytes());
      chunk.bytes().clear();
    }
  }
  if (ok) ok = out.put(chunk.bytes());
  if (ok) {
    ByteSink tail;
    tail.u64(out.sum());
    ok = std::fwrite(tail.bytes().data(), 1, 8, f) == 8;
  }
  ok = std::fflush(f) == 0 && ok;
  ok = ok && ::fsync(fileno(f)) == 0;
  const int savedErrno = errno;
  std::fclose(f);
  if (!ok) {
    errno = savedErrno;
    Status st = Status::unavailable(errnoText("write", tmp));
    std::remove(tmp.c_str());
    return st;
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    Status st = Status::unavailable(errnoText("rename to", path_));
    std::remove(tmp.c_str());
    return st;
  }
  return Status::ok();
}

Status SavedViewFile::read(const std::string& token, uint64_t* revision, uint64_t* count,
                           const std::function<bool(ByteSource&)>& decode) {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? Status::notFound("no saved view at " + path_)
                           : Status::unavailable(errnoText("open", path_));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = Status::unavailable(errnoText("stat", path_));
    ::close(fd);
    return s;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof kMagic + 8) {
    ::close(fd);
    return Status::invalidArgument(path_ + " is too short to be a saved view");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Status::unavailable(errnoText("map", path_));
  ::madvise(map, size, MADV_SEQUENTIAL);
  const char* begin = static_cast<const char*>(map);
  const char* body = begin + size - 8;
  Status result = Status::ok();
  Checksum sum;
  sum.add(begin, size - 8);
  ByteSource tail(body, begin + size);
  ByteSource in(begin + sizeof kMagic, body);
  if (tail.u64() != sum.value()) {
    result = Status::invalidArgument(path_ + " fails its checksum (torn or damaged)");
  } else if (std::memcmp(begin, kMagic, sizeof kMagic) != 0) {
    result = Status::invalidArgument(path_ + " is not a saved view");
  } else {
    const uint64_t format = in.u64();
    const std::string_view kind = in.str();
    const std::string_view savedToken = in.str();
    *revision = in.u64();
    *count = in.u64();
    if (!in.ok() || format != kFormat || kind != kind_) {
      result = Status::invalidArgument(path_ + " holds another kind of record (" +
                                       std::string(kind) + ", expected " + kind_ + ")");
    } else if (savedToken != token) {
      result = Status::invalidArgument(path_ + " was saved from another bucket (" +
                                       std::string(savedToken) + ", now " + token + ")");
    } else {
      for (uint64_t i = 0; i < *count; ++i) {
        if (!decode(in) || !in.ok()) {
          result = Status::invalidArgument(path_ + ": record " + std::to_string(i) +
                                           " does not decode");
          break;
        }
      }
      if (result && !in.atEnd()) {
        result = Status::invalidArgument(path_ + " has bytes after its last record");
      }
    }
  }
  ::munmap(map, size);
  return result;
}

}  // namespace weft
