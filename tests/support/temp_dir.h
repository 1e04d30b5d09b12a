// A fresh, private temporary directory that is removed with its contents when
// the object dies. Tests put server data dirs, SQLite files and logs here.
#pragma once

#include <string>

namespace weft::testing {

class TempDir {
 public:
  // Creates <$TMPDIR or /tmp>/<prefix>XXXXXX. Throws std::runtime_error when
  // that fails. prefix should name the test, for finding leftovers.
  explicit TempDir(const std::string& prefix = "weft-test-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name; creates nothing.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Keeps the directory on disk after destruction (for post-mortems).
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace weft::testing
