// Configuration loading (docs/api.md §7.1, §7.2): the key table, the four sources,
// and the validation of every value.
#include "weft/config.h"
#include "weft/retry_policy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <utility>

extern char** environ;

namespace weft {
namespace {

// Upper bound for every duration. 10^12 ms is about 31 years: far beyond any
// sensible setting, yet a backend may still multiply it (5x reconnect backoff,
// 10^6 for the nanoseconds of a NATS TTL) without overflowing int64.
constexpr int64_t kMaxMs = 1'000'000'000'000;
constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

enum class Type { String, Int, Bool };

// Checks a value and may normalize it in place. Returns "" when the value is
// acceptable, else a short description of what is expected.
using Check = std::string (*)(std::string& value);

struct KeySpec {
  const char* key;
  const char* compatEnv;  // the compatibility variable of §7.2, or nullptr
  const char* defaultValue;
  Type type;
  int64_t min = 0;  // Int only, inclusive
  int64_t max = 0;
  Check check = nullptr;  // extra rule for String values
};

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  size_t begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(ws) - begin + 1);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = trim(s.substr(start, comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

bool allOf(const std::string& s, bool (*pred)(char)) {
  return std::all_of(s.begin(), s.end(), pred);
}

bool isIdChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

bool isKeyChar(char c) {
  return isIdChar(c) || c == '.';
}

// Strict decimal: optional sign and digits only, no spaces, no hex, no suffix.
std::optional<int64_t> parseInt(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (size_t j = i; j < s.size(); ++j) {
    if (!std::isdigit(static_cast<unsigned char>(s[j]))) return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<bool> parseBool(const std::string& s) {
  std::string v = lower(s);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return std::nullopt;
}

// ---- rules for string values -------------------------------------------

std::string checkNonEmpty(std::string& v) {
  return v.empty() ? "must not be empty" : "";
}

std::string checkProjectId(std::string& v) {
  if (v.empty() || v.size() > 64 || !allOf(v, isIdChar)) {
    return "must be 1-64 characters from [A-Za-z0-9_-]";
  }
  return "";
}

std::string checkBackend(std::string& v) {
  auto ok = [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  };
  if (v.empty() || !allOf(v, ok)) {
    return "must be nats, redis, sqlite or a plugin name from [a-z0-9_-]";
  }
  return "";
}

std::string checkEnum(std::string& v, std::initializer_list<const char*> allowed, bool toUpper) {
  std::string norm = toUpper ? upper(v) : lower(v);
  std::string names;
  for (const char* a : allowed) {
    if (norm == a) {
      v = norm;
      return "";
    }
    names += names.empty() ? a : std::string(", ") + a;
  }
  return "must be one of " + names;
}

std::string checkLogLevel(std::string& v) {
  return checkEnum(v, {"trace", "debug", "info", "warn", "error"}, false);
}
std::string checkLogFormat(std::string& v) {
  return checkEnum(v, {"json", "text"}, false);
}

std::string checkHttpUrl(std::string& v) {
  std::string l = lower(v);
  bool ok =
      (l.rfind("http://", 0) == 0 && l.size() > 7) || (l.rfind("https://", 0) == 0 && l.size() > 8);
  return ok ? "" : "must be an http:// or https:// URL";
}

std::string checkBackoff(std::string& v) {
  return parseBackoff(v) ? "" : "must be none, fixed or exponential";
}

std::string checkEnvVarNames(std::string& v) {
  for (const std::string& name : splitList(v)) {
    bool ok = !std::isdigit(static_cast<unsigned char>(name[0])) && allOf(name, [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!ok) return "'" + name + "' is not an environment variable name";
  }
  return "";
}

// ---- the key table (docs/api.md §7.2 plus log.format and http.drainMs) -------

KeySpec str(const char* key, const char* compat, const char* def, Check check = nullptr) {
  return {key, compat, def, Type::String, 0, 0, check};
}
KeySpec num(const char* key, const char* compat, const char* def, int64_t min, int64_t max) {
  return {key, compat, def, Type::Int, min, max, nullptr};
}
KeySpec flag(const char* key, const char* def) {
  return {key, nullptr, def, Type::Bool};
}

const std::vector<KeySpec>& keyTable() {
  static const std::vector<KeySpec> table = {
      str("project.default", "LOOMINAL_PROJECT_ID", "default", checkProjectId),
      str("http.host", "API_HOST", "0.0.0.0", checkNonEmpty),
      num("http.port", "API_PORT", "3000", 1, 65535),
      str("http.tokens", "API_TOKENS", ""),
      num("http.threads", nullptr, "64", 1, 10000),
      num("http.maxBodyBytes", nullptr, "1048576", 1, kMaxInt),
      str("http.corsOrigin", nullptr, "*"),
      num("http.retryAfterSeconds", nullptr, "2", 1, 86400),
      num("http.drainMs", nullptr, "10000", 0, kMaxMs),
      num("http.maxConnections", nullptr, "16384", 1, 1000000),
      num("http.idleTimeoutMs", nullptr, "60000", 100, kMaxMs),
      num("http.headerTimeoutMs", nullptr, "10000", 100, kMaxMs),
      num("http.bodyTimeoutMs", nullptr, "30000", 100, kMaxMs),
      str("log.level", "LOG_LEVEL", "info", checkLogLevel),
      str("log.format", nullptr, "json", checkLogFormat),
      flag("metrics.requireAuth", "false"),
      str("kv.backend", nullptr, "nats", checkBackend),
      str("kv.plugin.dir", nullptr, ""),
      num("kv.timeoutMs", nullptr, "2000", 1, kMaxMs),
      num("kv.reconnectWaitMs", nullptr, "2000", 1, kMaxMs),
      num("work.maxAttempts", nullptr, "3", 1, 100),
      num("work.leaseMs", nullptr, "300000", 1, kMaxMs),
      num("work.sweepIntervalMs", nullptr, "5000", 1, kMaxMs),
      num("work.retentionMs", nullptr, "86400000", 0, kMaxMs),
      num("work.idempotencyRetentionMs", nullptr, "86400000", 1000, kMaxMs),
      str("work.retryBackoff", nullptr, "none", checkBackoff),
      num("work.retryBaseDelayMs", nullptr, "1000", 0, kMaxDelayMs),
      num("work.retryMaxDelayMs", nullptr, "300000", 0, kMaxDelayMs),
      num("work.retryJitterPercent", nullptr, "20", 0, 100),
      // Weft additions (docs/architecture.md, "Restart: a saved view"): where
      // the work and dead-letter views are saved for a fast restart ("" =
      // never), and how often.
      str("views.saveDir", nullptr, "./var/views"),
      num("views.saveIntervalMs", nullptr, "300000", 0, kMaxMs),
      num("dlq.retentionMs", nullptr, "604800000", 0, kMaxMs),
      num("stats.verifyIntervalMs", nullptr, "300000", 0, kMaxMs),
      num("agents.staleAfterMs", nullptr, "180000", 1, kMaxMs),
      flag("agents.markStaleOffline", "false"),
      num("agents.registryMaxAgeMs", nullptr, "86400000", 1, kMaxMs),
      num("agents.idleTimeoutMs", "IDLE_TIMEOUT_MS", "300000", 0, kMaxMs),
      num("agents.idleCheckIntervalMs", nullptr, "60000", 1, kMaxMs),
      flag("spinup.onSubmit", "true"),
      num("spinup.timeoutMs", nullptr, "60000", 1, kMaxMs),
      num("spinup.cooldownMs", nullptr, "30000", 0, kMaxMs),
      num("spinup.maxConcurrent", nullptr, "3", 1, 1000),
      flag("spinup.allowLocal", "false"),
      flag("spinup.allowSsh", "false"),
      flag("spinup.allowWebhook", "false"),
      flag("spinup.allowKubernetes", "false"),
      flag("spinup.allowGithubActions", "false"),
      str("spinup.githubTokenEnvVars", nullptr, "GITHUB_TOKEN", checkEnvVarNames),
      str("spinup.githubApiUrl", nullptr, "https://api.github.com", checkHttpUrl),
      str("spinup.kubectlPath", nullptr, "kubectl", checkNonEmpty),
      // Not in docs/api.md §7.2: the ssh binary of the ssh mechanism (README).
      str("spinup.sshPath", nullptr, "ssh", checkNonEmpty),
      num("ws.pingIntervalMs", nullptr, "30000", 1, kMaxMs),
      num("ws.statsIntervalMs", nullptr, "30000", 1, kMaxMs),
      // Open WebSocket connections at most; a handshake beyond it gets 503.
      num("ws.maxConnections", nullptr, "10000", 1, 1000000),
  };
  return table;
}

const KeySpec* findSpec(const std::string& key) {
  static const std::map<std::string, const KeySpec*> index = [] {
    std::map<std::string, const KeySpec*> m;
    for (const KeySpec& spec : keyTable()) m.emplace(spec.key, &spec);
    return m;
  }();
  auto it = index.find(key);
  return it == index.end() ? nullptr : it->second;
}

std::string envName(const std::string& key) {
  std::string name = "WEFT_" + upper(key);
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// The keys of the loaded backend plugin, as load() was given them.
using BackendKeys = std::vector<Config::BackendKey>;

const Config::BackendKey* findBackendKey(const BackendKeys& keys, const std::string& key) {
  for (const Config::BackendKey& k : keys) {
    if (k.key == key) return &k;
  }
  return nullptr;
}

bool isKnownKey(const BackendKeys& keys, const std::string& key) {
  return findSpec(key) != nullptr || findBackendKey(keys, key) != nullptr;
}

// A warning for a key we do not know, with a hint when only the case differs.
std::string unknownKeyWarning(const std::string& where, const std::string& key,
                              const BackendKeys& backendKeys) {
  std::string msg = where + ": unknown key '" + key +
                    "' (neither a weftd key nor one of the loaded backend's; ignored)";
  for (const KeySpec& spec : keyTable()) {
    if (lower(spec.key) == lower(key)) return msg + "; did you mean '" + spec.key + "'?";
  }
  for (const Config::BackendKey& k : backendKeys) {
    if (lower(k.key) == lower(key)) return msg + "; did you mean '" + k.key + "'?";
  }
  return msg;
}

// Values of URL keys may carry credentials; error messages must not print them.
std::string redact(const std::string& key, const std::string& value) {
  if (key == "http.tokens") return "***";
  std::string out = value;
  for (size_t pos = out.find("://"); pos != std::string::npos; pos = out.find("://", pos + 3)) {
    size_t end = out.find_first_of("/,", pos + 3);
    size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at > pos + 3) out.replace(pos + 3, at - pos - 3, "***");
  }
  return out;
}

struct Setting {
  std::string value;
  std::string origin;  // "default", "<file>:<line>", "environment FOO", "option --port"
};

void validate(const KeySpec& spec, Setting& s) {
  std::string reason;
  std::string v = trim(s.value);
  switch (spec.type) {
    case Type::Int: {
      auto n = parseInt(v);
      if (!n || *n < spec.min || *n > spec.max) {
        reason = "expected an integer from " + std::to_string(spec.min) + " to " +
                 std::to_string(spec.max);
      } else {
        v = std::to_string(*n);
      }
      break;
    }
    case Type::Bool: {
      auto b = parseBool(v);
      if (!b) {
        reason = "expected true, false, 1 or 0";
      } else {
        v = *b ? "true" : "false";
      }
      break;
    }
    case Type::String:
      if (spec.check) reason = spec.check(v);
      break;
  }
  if (!reason.empty()) {
    throw ConfigError(std::string(spec.key) + ": invalid value '" + redact(spec.key, s.value) +
                      "' (from " + s.origin + "): " + reason);
  }
  s.value = std::move(v);
}

// Reads the properties file into `settings`; unknown keys add warnings.
void readFile(const std::string& path, std::map<std::string, Setting>& settings,
              std::vector<std::string>& warnings, const BackendKeys& backendKeys) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError("cannot read config file " + path + ": it is a directory");
  }
  std::ifstream in(path);
  if (!in) {
    throw ConfigError("cannot read config file " + path + ": " + std::strerror(errno));
  }
  std::map<std::string, int> seenAt;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    const std::string where = path + ":" + std::to_string(lineNo);
    if (lineNo == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    std::string text = trim(line);
    if (text.empty() || text[0] == '#') continue;
    size_t eq = text.find('=');
    if (eq == std::string::npos) {
      throw ConfigError(where + ": expected 'key = value', found '" + text.substr(0, 60) + "'");
    }
    std::string key = trim(text.substr(0, eq));
    if (key.empty() || !allOf(key, isKeyChar)) {
      throw ConfigError(where + ": invalid key '" + key + "' (keys look like http.port)");
    }
    if (!isKnownKey(backendKeys, key)) {
      warnings.push_back(unknownKeyWarning(where, key, backendKeys));
    }
    auto [it, fresh] = seenAt.emplace(key, lineNo);
    if (!fresh) {
      warnings.push_back(where + ": '" + key + "' is set again (line " +
                         std::to_string(it->second) + "); the later value wins");
      it->second = lineNo;
    }
    settings[key] = {trim(text.substr(eq + 1)), where};
  }
  if (in.bad()) {
    throw ConfigError("cannot read config file " + path + ": " + std::strerror(errno));
  }
}

// The options that take a value, with the key each one sets (none for --config
// and --set, which are handled apart).
const std::map<std::string, const char*> kOptions = {
    {"--config", nullptr},       {"--port", "http.port"}, {"--host", "http.host"},
    {"--backend", "kv.backend"}, {"--set", nullptr},
};

}  // namespace

Config Config::load(int argc, const char* const* argv,
                    const std::map<std::string, std::string>& environment,
                    const std::vector<BackendKey>& backendKeys) {
  Config config;

  // 1. The command line, parsed first because it names the file. Its values
  //    are applied last.
  std::vector<std::pair<std::string, Setting>> flags;
  std::optional<std::string> configPath;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i] ? argv[i] : "";
    if (arg == "--help" || arg == "-h") {
      config.helpRequested_ = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto opt = kOptions.find(name);
    if (opt == kOptions.end()) {
      if (!arg.empty() && arg[0] == '-') {
        throw ConfigError("unknown option " + name + " (see --help)");
      }
      throw ConfigError("unexpected argument '" + arg + "' (see --help)");
    }
    if (!value) {
      if (i + 1 >= argc || !argv[i + 1]) throw ConfigError("option " + name + " needs a value");
      value = argv[++i];
    }
    if (name == "--config") {
      if (value->empty()) throw ConfigError("option --config needs a path");
      configPath = *value;
    } else if (name == "--set") {
      size_t sep = value->find('=');
      std::string key = trim(value->substr(0, sep));
      if (sep == std::string::npos || key.empty()) {
        throw ConfigError("option --set expects key=value, got '" + *value + "'");
      }
      if (!isKnownKey(backendKeys, key)) {
        config.warnings_.push_back(unknownKeyWarning("option --set", key, backendKeys));
      }
      flags.push_back({key, {value->substr(sep + 1), "option --set " + key}});
    } else {
      flags.push_back({opt->second, {*value, "option " + name}});
    }
  }
  if (config.helpRequested_) return config;  // help must work even with a broken config

  // 2. Defaults.
  std::map<std::string, Setting> settings;
  for (const KeySpec& spec : keyTable()) settings[spec.key] = {spec.defaultValue, "default"};
  for (const BackendKey& k : backendKeys) settings[k.key] = {k.defaultValue, "default"};

  // 3. The file. An empty WEFT_CONFIG counts as unset: it cannot name a file.
  if (!configPath) {
    auto it = environment.find("WEFT_CONFIG");
    if (it != environment.end() && !it->second.empty()) configPath = it->second;
  }
  if (configPath) {
    readFile(*configPath, settings, config.warnings_, backendKeys);
    config.sourceFile_ = *configPath;
  }

  // 4. The environment: the WEFT_ form wins over the compatibility name.
  for (const KeySpec& spec : keyTable()) {
    std::string name = envName(spec.key);
    auto it = environment.find(name);
    if (it == environment.end() && spec.compatEnv) {
      name = spec.compatEnv;
      it = environment.find(name);
    }
    if (it != environment.end()) settings[spec.key] = {it->second, "environment " + name};
  }
  for (const BackendKey& k : backendKeys) {
    std::string name = envName(k.key);
    auto it = environment.find(name);
    if (it == environment.end() && !k.envAlias.empty()) {
      name = k.envAlias;
      it = environment.find(name);
    }
    if (it != environment.end()) settings[k.key] = {it->second, "environment " + name};
  }

  // 5. The command line.
  for (auto& [key, setting] : flags) settings[key] = std::move(setting);

  for (auto& [key, setting] : settings) {
    if (const KeySpec* spec = findSpec(key)) {
      validate(*spec, setting);
    } else {
      // A backend key is the plugin's to validate (at create()); an unknown
      // one was warned about above.
      setting.value = trim(setting.value);
    }
    config.values_[key] = std::move(setting.value);
  }
  for (const BackendKey& k : backendKeys) config.backendKeys_.push_back(k.key);
  return config;
}

std::map<std::string, std::string> Config::pluginSettings() const {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : values_) {
    if (key.rfind("kv.", 0) == 0) out.emplace(key, value);
  }
  for (const std::string& key : backendKeys_) {
    auto it = values_.find(key);
    if (it != values_.end()) out.emplace(key, it->second);
  }
  return out;
}

std::map<std::string, std::string> Config::processEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* entry = *e;
    const char* eq = std::strchr(entry, '=');
    if (!eq) continue;
    env.emplace(std::string(entry, eq), std::string(eq + 1));
  }
  return env;
}

const std::string& Config::getString(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::out_of_range("unknown configuration key: " + key);
  return it->second;
}

int64_t Config::getInt(const std::string& key) const {
  const std::string& value = getString(key);
  const KeySpec* spec = findSpec(key);
  if (!spec || spec->type != Type::Int) {
    throw std::invalid_argument("configuration key is not an integer: " + key);
  }
  return *parseInt(value);  // validated and normalized by load()
}

bool Config::getBool(const std::string& key) const {
  const std::string& value = getString(key);
  const KeySpec* spec = findSpec(key);
  if (!spec || spec->type != Type::Bool) {
    throw std::invalid_argument("configuration key is not a boolean: " + key);
  }
  return value == "true";
}

std::vector<std::string> Config::getList(const std::string& key) const {
  return splitList(getString(key));
}

std::string Config::usage() {
  return "Usage: weftd [options]\n"
         "\n"
         "Weft, the coordinator server of an agent fleet.\n"
         "\n"
         "Options:\n"
         "  --config <path>      read settings from a properties file (default: $WEFT_CONFIG;\n"
         "                       examples in conf/weft.properties, conf/redis.properties,\n"
         "                       conf/sqlite.properties)\n"
         "  --port <n>           HTTP port (http.port, default 3000)\n"
         "  --host <addr>        bind address (http.host, default 0.0.0.0)\n"
         "  --backend <name>     storage backend: nats, redis, sqlite or a plugin name\n"
         "                       (kv.backend, default nats)\n"
         "  --set <key>=<value>  set any key, e.g. --set sqlite.path=/tmp/weft.db; repeatable\n"
         "  -h, --help           print this help and exit\n"
         "  Every option also accepts the form --option=value.\n"
         "\n"
         "Precedence: built-in defaults < config file < environment < command line.\n"
         "Environment: WEFT_<KEY> for every key (upper case, '.' -> '_', e.g. WEFT_KV_BACKEND,\n"
         "WEFT_KV_PLUGIN_DIR), and API_HOST, API_PORT, API_TOKENS, LOOMINAL_PROJECT_ID,\n"
         "LOG_LEVEL, IDLE_TIMEOUT_MS, plus the older names a backend declares (below). A WEFT_\n"
         "name wins over the older name. Lists are comma-separated; booleans are\n"
         "true/false/1/0.\n"
         "\n"
         "conf/weft.properties lists every key with its default. An invalid value exits with\n"
         "code 2 and names the key; a backend's keys are checked by its plugin at start-up.\n";
}

}  // namespace weft
