#include "spin_up_internal.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>

namespace weft::spinup::detail {

bool isNonBlankString(const Json& v) {
  if (!v.isString()) return false;
  const std::string& s = v.asString();
  return std::any_of(s.begin(), s.end(), [](char c) {
    return !(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v');
  });
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

int64_t positiveInt(const Json& cfg, const char* key, int64_t fallback) {
  const Json& v = cfg.get(key);
  return v.isInteger() && v.asInt() > 0 ? v.asInt() : fallback;
}

std::string firstLine(const std::string& text) {
  std::string line = trim(text.substr(0, text.find('\n')));
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return line;
}

std::string exitDescription(const ProcessOutcome& p) {
  if (p.exited) return "exit code " + std::to_string(p.exitCode);
  return "killed by signal " + std::to_string(p.signal);
}

std::string jsonEscaped(const std::string& value) {
  std::string quoted;
  appendJsonString(quoted, value);
  return quoted.substr(1, quoted.size() - 2);
}

std::string encodeSegment(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool validHeaderText(const std::string& s) {
  return s.find_first_of("\r\n") == std::string::npos;
}

MechanismOutcome timeoutOutcome(int64_t ownMs, int64_t budgetMs, const std::string& what) {
  MechanismOutcome out;
  if (ownMs < budgetMs) {
    out.error = what + " timed out after " + std::to_string(ownMs) + " ms";
  } else {
    out.timedOut = true;
    out.error = "timed out";
  }
  return out;
}

MechanismOutcome failure(std::string error, Json mechanismResult) {
  MechanismOutcome out;
  out.error = std::move(error);
  out.mechanismResult = std::move(mechanismResult);
  return out;
}

MechanismOutcome success(Json mechanismResult) {
  MechanismOutcome out;
  out.success = true;
  out.mechanismResult = std::move(mechanismResult);
  return out;
}

MechanismOutcome cancelledOutcome() {
  MechanismOutcome out;
  out.cancelled = true;
  out.error = "cancelled";
  return out;
}

bool validDestinationPart(const std::string& s) {
  if (s.empty() || s[0] == '-') return false;
  return s.find_first_of(" \t\r\n@") == std::string::npos;
}

Result<std::vector<std::string>> sshPrefix(const Json& ssh, const std::string& sshPath,
                                           int64_t connectSeconds) {
  const std::string user = ssh.getString("user");
  const std::string host = ssh.getString("host");
  if (!validDestinationPart(user)) {
    return Status::invalidArgument("invalid ssh destination: user '" + user + "'");
  }
  if (!validDestinationPart(host)) {
    return Status::invalidArgument("invalid ssh destination: host '" + host + "'");
  }
  std::vector<std::string> argv{sshPath};
  const Json& port = ssh.get("port");
  if (!port.isNull()) {
    int64_t p = 0;
    if (port.isInteger()) {
      p = port.asInt();
    } else if (port.isString() && !port.asString().empty() &&
               std::all_of(port.asString().begin(), port.asString().end(),
                           [](char c) { return c >= '0' && c <= '9'; }) &&
               port.asString().size() <= 5) {
      p = std::stoll(port.asString());
    }
    if (p < 1 || p > 65535) return Status::invalidArgument("invalid ssh port: " + scalarText(port));
    argv.insert(argv.end(), {"-p", std::to_string(p)});
  }
  if (const std::string key = ssh.getString("privateKeyPath"); !key.empty()) {
    argv.insert(argv.end(), {"-i", key});
  }
  argv.insert(argv.end(), {"-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o",
                           "ConnectTimeout=" + std::to_string(connectSeconds)});
  argv.push_back(user + "@" + host);
  return argv;
}

bool sleepUnlessCancelled(int64_t ms, const CancelToken& cancel) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cancel.cancelled()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !cancel.cancelled();
}

}  // namespace weft::spinup::detail
