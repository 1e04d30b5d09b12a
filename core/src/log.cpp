#include "weft/log.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "weft/clock.h"

namespace weft::log {
namespace {

std::atomic<LogLevel> gLevel{LogLevel::Info};
std::atomic<Format> gFormat{Format::Json};

// Guards the sink and serialises writes so lines never interleave.
std::mutex& sinkMutex() {
  static std::mutex m;
  return m;
}
std::function<void(const std::string&)>& sink() {
  static std::function<void(const std::string&)> s;
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Text format: strings that are "simple" are written bare, anything else as
// JSON so the line stays unambiguous and one line long.
void appendTextValue(std::string& out, const Json& value) {
  if (value.isString()) {
    const std::string& s = value.asString();
    bool simple = !s.empty();
    for (unsigned char c : s) {
      if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
        simple = false;
        break;
      }
    }
    if (simple) {
      out += s;
      return;
    }
  }
  value.dumpTo(out);
}

std::string formatRecord(Format format, LogLevel level, std::string_view msg,
                         const Fields& fields) {
  std::string line;
  line.reserve(96 + msg.size());
  const std::string time = formatIso(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  if (format == Format::Json) {
    line += "{\"time\":\"";
    line += time;
    line += "\",\"level\":\"";
    line += levelName(level);
    line += "\",\"msg\":";
    appendJsonString(line, msg);
    for (const auto& [key, value] : fields) {
      // The three leading keys are reserved; a field with one of those names
      // would make the object ambiguous for log processors.
      line += ',';
      if (key == "time" || key == "level" || key == "msg") {
        appendJsonString(line, "field." + key);
      } else {
        appendJsonString(line, key);
      }
      line += ':';
      value.dumpTo(line);
    }
    line += "}\n";
  } else {
    line += time;
    line += ' ';
    std::string lv = levelName(level);
    for (char& c : lv) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    lv.resize(5, ' ');
    line += lv;
    line += ' ';
    // Keep one record on one line even when a message carries a newline.
    for (char c : msg) line += (c == '\n' || c == '\r') ? ' ' : c;
    for (const auto& [key, value] : fields) {
      line += ' ';
      line += key;
      line += '=';
      appendTextValue(line, value);
    }
    line += '\n';
  }
  return line;
}

}  // namespace

void setLevel(LogLevel level) {
  gLevel.store(level, std::memory_order_relaxed);
}
LogLevel level() {
  return gLevel.load(std::memory_order_relaxed);
}
bool enabled(LogLevel level) {
  return static_cast<int>(level) >= static_cast<int>(gLevel.load(std::memory_order_relaxed));
}

void setFormat(Format format) {
  gFormat.store(format, std::memory_order_relaxed);
}
Format format() {
  return gFormat.load(std::memory_order_relaxed);
}

std::optional<LogLevel> parseLevel(std::string_view name) {
  const std::string n = lower(name);
  if (n == "trace") return LogLevel::Trace;
  if (n == "debug") return LogLevel::Debug;
  if (n == "info") return LogLevel::Info;
  if (n == "warn" || n == "warning") return LogLevel::Warn;
  if (n == "error") return LogLevel::Error;
  return std::nullopt;
}

std::optional<Format> parseFormat(std::string_view name) {
  const std::string n = lower(name);
  if (n == "json") return Format::Json;
  if (n == "text") return Format::Text;
  return std::nullopt;
}

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::Trace:
      return "trace";
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

void write(LogLevel level, std::string_view msg, const Fields& fields) {
  if (!enabled(level)) return;
  try {
    const std::string line = formatRecord(format(), level, msg, fields);
    std::lock_guard<std::mutex> lock(sinkMutex());
    if (sink()) {
      sink()(line);
    } else {
      std::fwrite(line.data(), 1, line.size(), stderr);
      std::fflush(stderr);
    }
  } catch (...) {
    // Logging must never take a caller down (it runs in plugin threads and
    // in catch blocks); a record that cannot be written is dropped.
  }
}

void setSink(std::function<void(const std::string& line)> s) {
  std::lock_guard<std::mutex> lock(sinkMutex());
  sink() = std::move(s);
}

std::string redactUrl(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    // Each list element (or the whole text) is one URL: skip "scheme://" if
    // present, then mask everything before the last '@' of the element. The
    // last '@' rather than the end of the authority, because a password may
    // hold an unencoded '/', '?' or '#': over-masking an odd path is better
    // than leaking a credential.
    size_t elementEnd = text.find(',', pos);
    if (elementEnd == std::string::npos) elementEnd = text.size();
    size_t authority = pos;
    const size_t scheme = text.find("://", pos);
    if (scheme != std::string::npos && scheme < elementEnd) authority = scheme + 3;
    const size_t at = elementEnd > authority ? text.rfind('@', elementEnd - 1) : std::string::npos;
    if (at != std::string::npos && at >= authority) {
      out.append(text, pos, authority - pos);
      out += "***";
      out.append(text, at, elementEnd - at);
    } else {
      out.append(text, pos, elementEnd - pos);
    }
    if (elementEnd < text.size()) out += ',';
    pos = elementEnd + 1;
  }
  return out;
}

}  // namespace weft::log
