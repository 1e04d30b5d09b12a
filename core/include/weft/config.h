// Weft's configuration: the settings of docs/api.md §7.2, merged from four sources
// and validated once at start-up.
//
// Precedence (docs/api.md §7.1): built-in defaults < config file < environment <
// command line. A Config is immutable after load(), so every const method may
// be called from any thread without locking.
//
// Errors: load() throws ConfigError for anything the operator must fix (weftd
// prints the message and exits 2). Only the effective value of a key is
// validated: a bad value in the file that the environment or a flag overrides
// is never looked at.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft {

// A start-up configuration error. The message names the key (and the file and
// line for file syntax errors, or the environment variable / option the value
// came from), so it can be printed as is.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Config {
 public:
  // Builds the configuration from the command line (argv[0] is the program
  // name and is skipped), the given environment and the config file.
  //
  // The file comes from --config <path>, else the environment's WEFT_CONFIG;
  // no file is read when neither is set.
  //
  // argv options (each also accepted as --opt=value):
  //   --config <path>       the properties file
  //   --port <n>            http.port
  //   --host <h>            http.host
  //   --backend <name>      kv.backend
  //   --set <key>=<value>   any key; repeatable
  //   --help, -h            sets helpRequested(); the file and the environment
  //                         are then not read, so help works with a broken
  //                         config
  //
  // Environment: WEFT_<KEY> for every key (upper-cased, '.' -> '_', e.g.
  // WEFT_KV_PLUGIN_DIR for kv.plugin.dir) and the compatibility names of the
  // §7.2 table (NATS_URL, API_PORT, ...). When both forms are set the WEFT_
  // form wins. Other variables are ignored. A variable that is set to the empty
  // string counts as set.
  //
  // File syntax: one `key = value` a line; spaces around key and value are
  // trimmed; blank lines and lines whose first non-blank character is '#' are
  // skipped. A '#' after a value is part of the value (tokens and CORS origins
  // may contain one). A later line for the same key wins, with a warning.
  //
  // backendKeys: the keys the loaded storage plugin declares (plugin.h,
  // WeftKvSettingSpec). They get their defaults, WEFT_<KEY> and their older
  // environment name like weftd's own keys, but their values are only
  // trimmed: the plugin validates them when it creates its store. weftd
  // loads the configuration once without them (to learn kv.backend and
  // kv.plugin.dir), opens the plugin, and loads again with them.
  //
  // Unknown keys (in the file or through --set) produce a warning() and are
  // kept in all(), but no plugin receives them.
  //
  // Throws ConfigError on: an invalid value (type, range, enum, URL), an
  // unknown or incomplete command-line option, a stray positional argument, a
  // file syntax error, or an unreadable file.
  struct BackendKey {
    std::string key;  // "<backend>.<name>"
    std::string defaultValue;
    std::string envAlias;  // an older environment name, "" for none
  };
  static Config load(int argc, const char* const* argv,
                     const std::map<std::string, std::string>& environment,
                     const std::vector<BackendKey>& backendKeys = {});

  // The process environment (from `environ`) as a map, for load().
  static std::map<std::string, std::string> processEnvironment();

  // The effective value of a key. Values are normalized at load: booleans read
  // "true"/"false", integers are plain decimal, sqlite.synchronous is upper
  // case, everything else is the trimmed text as given. Throws
  // std::out_of_range for a key that is neither a §7.2 key nor an extra key
  // given in the file or with --set.
  const std::string& getString(const std::string& key) const;
  // Typed accessors for the keys of those types. They throw std::out_of_range
  // for an unknown key and std::invalid_argument when the key holds another
  // type (a programming error: every typed value is validated at load).
  int64_t getInt(const std::string& key) const;
  bool getBool(const std::string& key) const;
  // Any key's value split on ',', each element trimmed, empty elements
  // dropped (so an empty value gives an empty list).
  std::vector<std::string> getList(const std::string& key) const;

  // Every key with its effective value: weftd's keys, the backend's keys
  // and extra keys.
  const std::map<std::string, std::string>& all() const { return values_; }
  // What the storage plugin receives (PluginContext::settings): the kv.*
  // keys and the backend keys given to load(), nothing else.
  std::map<std::string, std::string> pluginSettings() const;
  // Non-fatal findings for weftd to log at start-up, e.g. unknown file keys.
  const std::vector<std::string>& warnings() const { return warnings_; }
  bool helpRequested() const { return helpRequested_; }
  // The path of the file that was read, as given, or "" when none was.
  std::string sourceFile() const { return sourceFile_; }

  // The --help text: options, environment and where to find the key list.
  static std::string usage();

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> backendKeys_;
  std::vector<std::string> warnings_;
  std::string sourceFile_;
  bool helpRequested_ = false;
};

}  // namespace weft
