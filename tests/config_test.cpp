// Unit tests of weft::Config (docs/api.md §7.1, §7.2): precedence, environment
// names, validation messages, warnings, lists and the file syntax.
#include "weft/config.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

using Env = std::map<std::string, std::string>;

// A properties file in a fresh temporary directory, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("weft-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "weft.properties").string();
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }
  std::string dir() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
  std::string path_;
};

// The keys the nats plugin declares (plugins/nats/plugin_entry.cpp), as weftd
// passes them to load() once the plugin is open.
const std::vector<weft::Config::BackendKey> kNatsKeys = {
    {"nats.url", "nats://localhost:4222", "NATS_URL"},
    {"nats.user", "", "NATS_USER"},
    {"nats.pass", "", "NATS_PASS"},
    {"nats.replicas", "1", ""},
    {"nats.casGuard", "auto", ""},
};

weft::Config load(std::vector<std::string> args, const Env& env = {},
                  const std::vector<weft::Config::BackendKey>& keys = kNatsKeys) {
  std::vector<const char*> argv = {"weftd"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return weft::Config::load(static_cast<int>(argv.size()), argv.data(), env, keys);
}

// The message of the ConfigError that load() throws, or "" if it throws none.
std::string loadError(std::vector<std::string> args, const Env& env = {}) {
  try {
    load(std::move(args), env);
  } catch (const weft::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string errorFor(const std::string& key, const std::string& value) {
  return loadError({"--set", key + "=" + value});
}

}  // namespace

TEST_CASE("defaults apply when no source sets a key", "[config]") {
  weft::Config c = load({});
  CHECK(c.sourceFile().empty());
  CHECK(c.warnings().empty());
  CHECK_FALSE(c.helpRequested());
  CHECK(c.getInt("http.port") == 3000);
  CHECK(c.getString("http.host") == "0.0.0.0");
  CHECK(c.getString("kv.backend") == "nats");
  CHECK(c.getString("kv.plugin.dir").empty());
  CHECK(c.getString("nats.url") == "nats://localhost:4222");  // a backend key's default
  CHECK(c.getString("log.level") == "info");
  CHECK(c.getString("log.format") == "json");
  CHECK(c.getInt("http.drainMs") == 10000);
  CHECK(c.getInt("http.threads") == 64);
  CHECK(c.getInt("work.maxAttempts") == 3);
  CHECK(c.getInt("dlq.retentionMs") == 604800000);
  CHECK(c.getInt("stats.verifyIntervalMs") == 300000);
  CHECK(c.getBool("spinup.onSubmit"));
  CHECK_FALSE(c.getBool("spinup.allowLocal"));
  CHECK(c.getList("http.tokens").empty());
  CHECK(c.getList("spinup.githubTokenEnvVars") == std::vector<std::string>{"GITHUB_TOKEN"});
  CHECK(c.getInt("work.idempotencyRetentionMs") == 86400000);
  CHECK(c.getString("work.retryBackoff") == "none");  // retries at once, as before
  CHECK(c.getInt("work.retryBaseDelayMs") == 1000);
  CHECK(c.getInt("work.retryMaxDelayMs") == 300000);
  CHECK(c.getInt("work.retryJitterPercent") == 20);
  CHECK(c.getString("views.saveDir") == "./var/views");
  CHECK(c.getInt("views.saveIntervalMs") == 300000);
  // weftd's own 54 keys (the contract's, less the backend keys, plus
  // log.format, http.drainMs, spinup.sshPath, ws.maxConnections, the four
  // HTTP connection limits, stats.verifyIntervalMs,
  // work.idempotencyRetentionMs, the four work.retry* keys and the two
  // views.save* keys) and the 5 that the nats plugin declares.
  CHECK(c.all().size() == 59);
  CHECK(load({}, {}, {}).all().size() == 54);
  CHECK(c.getString("nats.replicas") == "1");
  CHECK(c.getString("nats.casGuard") == "auto");
  CHECK(c.getInt("http.maxConnections") == 16384);
  CHECK(c.getInt("http.idleTimeoutMs") == 60000);
  CHECK(c.getInt("http.headerTimeoutMs") == 10000);
  CHECK(c.getInt("http.bodyTimeoutMs") == 30000);
}

TEST_CASE("precedence: default < file < environment < command line", "[config]") {
  TempFile file("http.port = 4000\nlog.level = debug\nnats.url = nats://file:1\n");
  const std::vector<std::string> cfg = {"--config", file.path()};

  weft::Config fromFile = load(cfg);
  CHECK(fromFile.sourceFile() == file.path());
  CHECK(fromFile.getInt("http.port") == 4000);
  CHECK(fromFile.getString("log.level") == "debug");
  CHECK(fromFile.getInt("http.threads") == 64);  // untouched keys keep their default

  Env env = {{"WEFT_HTTP_PORT", "5000"}, {"NATS_URL", "nats://env:2"}};
  weft::Config fromEnv = load(cfg, env);
  CHECK(fromEnv.getInt("http.port") == 5000);
  CHECK(fromEnv.getString("nats.url") == "nats://env:2");
  CHECK(fromEnv.getString("log.level") == "debug");

  std::vector<std::string> withFlags = cfg;
  for (const char* a : {"--port", "6000", "--set", "log.level=warn"}) withFlags.push_back(a);
  weft::Config fromFlags = load(withFlags, env);
  CHECK(fromFlags.getInt("http.port") == 6000);
  CHECK(fromFlags.getString("log.level") == "warn");
  CHECK(fromFlags.getString("nats.url") == "nats://env:2");
}

TEST_CASE("the file comes from --config, else WEFT_CONFIG", "[config]") {
  TempFile a("http.port = 1111\n");
  TempFile b("http.port = 2222\n");
  CHECK(load({}, {{"WEFT_CONFIG", a.path()}}).getInt("http.port") == 1111);
  CHECK(load({}, {{"WEFT_CONFIG", a.path()}}).sourceFile() == a.path());
  CHECK(load({"--config", b.path()}, {{"WEFT_CONFIG", a.path()}}).getInt("http.port") == 2222);
  CHECK(load({"--config=" + b.path()}).getInt("http.port") == 2222);
  CHECK(load({}, {{"WEFT_CONFIG", ""}}).sourceFile().empty());
}

TEST_CASE("the WEFT_ form beats the compatibility name", "[config]") {
  weft::Config c = load({}, {{"NATS_URL", "nats://compat:1"},
                             {"WEFT_NATS_URL", "nats://weft:2"},
                             {"API_PORT", "7000"},
                             {"WEFT_HTTP_PORT", "7001"},
                             {"LOG_LEVEL", "error"}});
  CHECK(c.getString("nats.url") == "nats://weft:2");
  CHECK(c.getInt("http.port") == 7001);
  CHECK(c.getString("log.level") == "error");  // compat alone still applies
}

TEST_CASE("every compatibility name maps onto its key", "[config]") {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"NATS_URL", "nats.url", "nats://n:4222"},
      {"NATS_USER", "nats.user", "alice"},
      {"NATS_PASS", "nats.pass", "secret"},
      {"API_PORT", "http.port", "8080"},
      {"API_HOST", "http.host", "127.0.0.1"},
      {"API_TOKENS", "http.tokens", "t1,t2"},
      {"LOOMINAL_PROJECT_ID", "project.default", "proj-1"},
      {"LOG_LEVEL", "log.level", "trace"},
      {"IDLE_TIMEOUT_MS", "agents.idleTimeoutMs", "0"},
  };
  for (const auto& [var, key, value] : cases) {
    INFO(var);
    CHECK(load({}, {{var, value}}).getString(key) == value);
  }
}

TEST_CASE("WEFT_<KEY> names: upper case, dots become underscores", "[config]") {
  weft::Config c = load({}, {{"WEFT_KV_PLUGIN_DIR", "/opt/plugins"},
                             {"WEFT_KV_BACKEND", "sqlite"},
                             {"WEFT_SPINUP_ALLOWLOCAL", "1"},
                             {"WEFT_AGENTS_IDLECHECKINTERVALMS", "500"},
                             {"WEFT_TEST_NATS_URL", "nats://ignored:1"},
                             {"WEFT_HTTP_DRAINMS", "0"}});
  CHECK(c.getString("kv.plugin.dir") == "/opt/plugins");
  CHECK(c.getString("kv.backend") == "sqlite");
  CHECK(c.getBool("spinup.allowLocal"));
  CHECK(c.getInt("agents.idleCheckIntervalMs") == 500);
  CHECK(c.getInt("http.drainMs") == 0);
  CHECK(c.getString("nats.url") == "nats://localhost:4222");
  CHECK(c.warnings().empty());

  // Every key can be set through its WEFT_ name.
  const weft::Config defaults = load({});
  for (const auto& [key, value] : defaults.all()) {
    std::string var = "WEFT_";
    for (char ch : key) var += ch == '.' ? '_' : static_cast<char>(std::toupper(ch));
    INFO(var);
    CHECK(load({}, {{var, value}}).all().at(key) == value);
  }
}

TEST_CASE("command-line options", "[config]") {
  weft::Config c = load({"--host", "127.0.0.1", "--backend=redis", "--port=9000", "--set",
                         "spinup.allowSsh=true", "--set", "http.tokens = a, b"});
  CHECK(c.getString("http.host") == "127.0.0.1");
  CHECK(c.getString("kv.backend") == "redis");
  CHECK(c.getInt("http.port") == 9000);
  CHECK(c.getBool("spinup.allowSsh"));
  CHECK(c.getList("http.tokens") == std::vector<std::string>{"a", "b"});

  CHECK(load({"--help"}).helpRequested());
  CHECK(load({"-h", "--config", "/nonexistent/weft.properties"}).helpRequested());
  CHECK_FALSE(weft::Config::usage().empty());

  CHECK_THAT(loadError({"--verbose"}), Catch::Contains("unknown option --verbose"));
  CHECK_THAT(loadError({"stray"}), Catch::Contains("unexpected argument 'stray'"));
  CHECK_THAT(loadError({"--port"}), Catch::Contains("--port needs a value"));
  CHECK_THAT(loadError({"--set", "novalue"}), Catch::Contains("--set expects key=value"));
  CHECK_THAT(loadError({"--port", "http"}),
             Catch::Contains("http.port") && Catch::Contains("option --port"));

  weft::Config extra = load({"--set", "myplugin.shards=4"});
  CHECK(extra.getString("myplugin.shards") == "4");
  REQUIRE(extra.warnings().size() == 1);
  CHECK_THAT(extra.warnings()[0], Catch::Contains("myplugin.shards"));
}

TEST_CASE("invalid values name the key", "[config]") {
  CHECK_THAT(errorFor("http.port", "0"), Catch::StartsWith("http.port: invalid value '0'"));
  CHECK_THAT(errorFor("http.port", "65536"), Catch::Contains("from 1 to 65535"));
  CHECK_THAT(errorFor("http.port", "80x"), Catch::StartsWith("http.port:"));
  CHECK_THAT(errorFor("http.port", ""), Catch::StartsWith("http.port:"));
  CHECK_THAT(errorFor("work.idempotencyRetentionMs", "999"),
             Catch::StartsWith("work.idempotencyRetentionMs: invalid value '999'"));
  CHECK_THAT(errorFor("http.threads", "0"), Catch::StartsWith("http.threads:"));
  CHECK_THAT(errorFor("kv.timeoutMs", "0"), Catch::StartsWith("kv.timeoutMs:"));
  CHECK_THAT(errorFor("work.maxAttempts", "101"), Catch::StartsWith("work.maxAttempts:"));
  CHECK_THAT(errorFor("work.maxAttempts", "0"), Catch::StartsWith("work.maxAttempts:"));
  CHECK_THAT(errorFor("work.retentionMs", "-1"), Catch::StartsWith("work.retentionMs:"));
  CHECK_THAT(errorFor("work.retryBackoff", "linear"),
             Catch::StartsWith("work.retryBackoff:") &&
                 Catch::Contains("must be none, fixed or exponential"));
  CHECK_THAT(errorFor("work.retryJitterPercent", "101"),
             Catch::StartsWith("work.retryJitterPercent:"));
  CHECK_THAT(errorFor("work.retryMaxDelayMs", "2592000001"),
             Catch::StartsWith("work.retryMaxDelayMs:"));
  CHECK_THAT(errorFor("metrics.requireAuth", "yes"),
             Catch::StartsWith("metrics.requireAuth:") && Catch::Contains("true, false, 1 or 0"));
  CHECK_THAT(errorFor("log.level", "verbose"),
             Catch::StartsWith("log.level:") && Catch::Contains("trace, debug, info, warn, error"));
  CHECK_THAT(errorFor("log.format", "xml"), Catch::StartsWith("log.format:"));
  CHECK_THAT(errorFor("kv.backend", "Nats"), Catch::StartsWith("kv.backend:"));
  CHECK_THAT(errorFor("kv.backend", ""), Catch::StartsWith("kv.backend:"));
  CHECK_THAT(errorFor("project.default", std::string(65, 'p')),
             Catch::Contains("1-64 characters from [A-Za-z0-9_-]"));
  CHECK_THAT(errorFor("project.default", "a.b"), Catch::StartsWith("project.default:"));
  CHECK_THAT(errorFor("spinup.githubApiUrl", "api.github.com"),
             Catch::StartsWith("spinup.githubApiUrl:"));
  CHECK_THAT(errorFor("spinup.githubTokenEnvVars", "GITHUB_TOKEN,1BAD"),
             Catch::StartsWith("spinup.githubTokenEnvVars:"));

  // The origin of a bad value is named too.
  CHECK_THAT(loadError({}, {{"API_PORT", "x"}}), Catch::Contains("environment API_PORT"));
  TempFile file("\nhttp.threads = none\n");
  CHECK_THAT(loadError({"--config", file.path()}),
             Catch::StartsWith("http.threads:") && Catch::Contains(file.path() + ":2"));
}

TEST_CASE("a backend key's value is the plugin's to validate", "[config]") {
  // The plugin checks it when weftd creates the store (tests/startup_test.cpp
  // and the plugins' own suites); the configuration only trims it.
  CHECK(load({"--set", "nats.replicas= 2 "}).getString("nats.replicas") == "2");
  CHECK(load({"--set", "nats.url=ws://h:443"}).getString("nats.url") == "ws://h:443");
  CHECK(load({"--set", "nats.url=ws://h:443"}).warnings().empty());
}

TEST_CASE("a plugin receives the kv.* keys and its own, nothing else", "[config]") {
  TempFile file("http.tokens = s3cret\nredis.url = redis://r:1/0\nnats.pass = pw\n");
  weft::Config c = load({"--config", file.path(), "--set", "kv.timeoutMs=1500"});
  const std::map<std::string, std::string> settings = c.pluginSettings();
  CHECK(settings.at("kv.timeoutMs") == "1500");
  CHECK(settings.at("kv.backend") == "nats");
  CHECK(settings.at("nats.url") == "nats://localhost:4222");
  CHECK(settings.at("nats.pass") == "pw");
  CHECK(settings.count("http.tokens") == 0);
  CHECK(settings.count("redis.url") == 0);  // another backend's key: unknown here
  CHECK(settings.count("log.level") == 0);
  for (const auto& [key, value] : settings) {
    INFO(key);
    CHECK((key.rfind("kv.", 0) == 0 || key.rfind("nats.", 0) == 0));
  }
  REQUIRE(c.warnings().size() == 1);
  CHECK_THAT(c.warnings()[0], Catch::Contains("redis.url"));
}

TEST_CASE("only the effective value is validated", "[config]") {
  TempFile file("http.port = bogus\n");
  CHECK(load({"--config", file.path(), "--port", "3001"}).getInt("http.port") == 3001);
}

TEST_CASE("values are normalized", "[config]") {
  weft::Config c =
      load({"--set", "spinup.allowSsh=1", "--set", "spinup.allowWebhook=FALSE", "--set",
            "http.port=+0080", "--set", "log.level=WARN"});
  CHECK(c.getString("spinup.allowSsh") == "true");
  CHECK(c.getString("spinup.allowWebhook") == "false");
  CHECK(c.getString("http.port") == "80");
  CHECK(c.getString("log.level") == "warn");
  CHECK(c.all().at("log.level") == "warn");
}

TEST_CASE("credentials in URLs are not echoed in errors", "[config]") {
  std::string err = errorFor("spinup.githubApiUrl", "ftp://user:hunter2@h");
  CHECK_THAT(err, Catch::StartsWith("spinup.githubApiUrl:"));
  CHECK(err.find("hunter2") == std::string::npos);
  err = errorFor("http.tokens", "");  // valid: no error at all
  CHECK(err.empty());
}

TEST_CASE("list parsing: comma-separated, trimmed, empties dropped", "[config]") {
  weft::Config c = load(
      {"--set", "http.tokens= alpha , beta,,gamma , ,", "--set", "spinup.githubTokenEnvVars="});
  CHECK(c.getList("http.tokens") == std::vector<std::string>{"alpha", "beta", "gamma"});
  CHECK(c.getList("spinup.githubTokenEnvVars").empty());
  CHECK(c.getList("kv.backend") == std::vector<std::string>{"nats"});
  CHECK(load({}, {{"API_TOKENS", "one"}}).getList("http.tokens") ==
        std::vector<std::string>{"one"});
}

TEST_CASE("file syntax: comments, blank lines, spaces around '='", "[config]") {
  TempFile file(
      "\xEF\xBB\xBF# Weft test configuration\n"
      "\n"
      "   # an indented comment\n"
      "kv.backend=sqlite\n"
      "  sqlite.path   =   /tmp/x y.db   \r\n"
      "http.corsOrigin = https://a.example#frag\n"
      "http.tokens =\n"
      "\t\n"
      "log.level = warn");  // no final newline
  // With the sqlite plugin's keys, as weftd loads it for kv.backend=sqlite.
  weft::Config c = load({"--config", file.path()}, {}, {{"sqlite.path", "./var/weft.db", ""}});
  CHECK(c.getString("kv.backend") == "sqlite");
  CHECK(c.getString("sqlite.path") == "/tmp/x y.db");
  CHECK(c.getString("http.corsOrigin") == "https://a.example#frag");
  CHECK(c.getString("http.tokens").empty());
  CHECK(c.getString("log.level") == "warn");
  CHECK(c.warnings().empty());
}

TEST_CASE("file syntax errors name the file and line", "[config]") {
  TempFile noEquals("kv.backend = nats\n\njust some words\n");
  CHECK_THAT(loadError({"--config", noEquals.path()}),
             Catch::StartsWith(noEquals.path() + ":3:") && Catch::Contains("key = value"));
  TempFile badKey("= value\n");
  CHECK_THAT(loadError({"--config", badKey.path()}), Catch::StartsWith(badKey.path() + ":1:"));
  TempFile spaceKey("http port = 1\n");
  CHECK_THAT(loadError({"--config", spaceKey.path()}), Catch::StartsWith(spaceKey.path() + ":1:"));
}

TEST_CASE("an unreadable file is an error", "[config]") {
  CHECK_THAT(loadError({"--config", "/nonexistent/weft.properties"}),
             Catch::Contains("cannot read config file /nonexistent/weft.properties"));
  CHECK_THAT(loadError({}, {{"WEFT_CONFIG", "/nonexistent/x.properties"}}),
             Catch::Contains("/nonexistent/x.properties"));
  TempFile file("");
  CHECK_THAT(loadError({"--config", file.dir()}), Catch::Contains("directory"));
  CHECK_THAT(loadError({"--config", ""}), Catch::Contains("--config needs a path"));
}

TEST_CASE("unknown and repeated file keys warn but do not fail", "[config]") {
  TempFile file("kv.backend = nats\nfoo.bar = 1\nhttp.Port = 3\nkv.backend = redis\n");
  weft::Config c = load({"--config", file.path()});
  CHECK(c.getString("kv.backend") == "redis");
  CHECK(c.getString("foo.bar") == "1");  // kept for third-party plugins
  CHECK(c.all().count("foo.bar") == 1);
  CHECK(c.getInt("http.port") == 3000);
  REQUIRE(c.warnings().size() == 3);
  CHECK_THAT(c.warnings()[0], Catch::Contains(file.path() + ":2") && Catch::Contains("foo.bar"));
  CHECK_THAT(c.warnings()[1], Catch::Contains("did you mean 'http.port'"));
  CHECK_THAT(c.warnings()[2], Catch::Contains(file.path() + ":4") && Catch::Contains("line 1"));
}

TEST_CASE("typed accessors reject unknown keys and wrong types", "[config]") {
  weft::Config c = load({});
  CHECK_THROWS_AS(c.getString("no.such.key"), std::out_of_range);
  CHECK_THROWS_AS(c.getInt("no.such.key"), std::out_of_range);
  CHECK_THROWS_AS(c.getInt("kv.backend"), std::invalid_argument);
  CHECK_THROWS_AS(c.getBool("http.port"), std::invalid_argument);
}

TEST_CASE("processEnvironment reads environ", "[config]") {
  REQUIRE(::setenv("WEFT_CONFIG_TEST_PROBE", "a=b", 1) == 0);
  auto env = weft::Config::processEnvironment();
  ::unsetenv("WEFT_CONFIG_TEST_PROBE");
  CHECK(env.at("WEFT_CONFIG_TEST_PROBE") == "a=b");
}
