#include "redis_scripts.h"

#include <cctype>

#include "sha1.h"

namespace weft::redis_plugin {
namespace {

Script makeScript(const char* name, std::string text) {
  Script s{name, std::move(text), ""};
  s.sha = sha1Hex(s.text);
  return s;
}

// Revisions are formatted with %d (64-bit in Redis' Lua) rather than by
// concatenating the number, which would switch to exponent notation above
// 1e14.
const char* kWrite = R"lua(
local mode = ARGV[3]
if mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
elseif mode == 'update' then
  local cur = redis.call('HGET', KEYS[1], 'r')
  if cur ~= ARGV[4] then return -2 end
end
local rs = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', rs)
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('PUBLISH', ARGV[6], 'P' .. rs .. ' ' .. #ARGV[1] .. ' ' .. ARGV[1] .. ARGV[2])
return tonumber(rs)
)lua";

// A key that expired but is still indexed gets a delete too: a watcher may
// still hold it, and this is the one moment the plugin can tell it.
const char* kErase = R"lua(
local cur = redis.call('HGET', KEYS[1], 'r')
if ARGV[2] ~= '0' and cur ~= ARGV[2] then return -2 end
local indexed = redis.call('ZREM', KEYS[3], ARGV[1])
if not cur and indexed == 0 then return 0 end
if cur then redis.call('DEL', KEYS[1]) end
local rs = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('PUBLISH', ARGV[3], 'D' .. rs .. ' ' .. #ARGV[1] .. ' ' .. ARGV[1])
return tonumber(rs)
)lua";

// The entry hashes are not declared in KEYS (they are only known after the
// ZRANGEBYLEX); they share the bucket's hash tag, so this stays within one
// slot even on a cluster.
const char* kList = R"lua(
local limit = tonumber(ARGV[3])
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, limit)
local withValues = ARGV[5] == '1'
local budget = tonumber(ARGV[6])
local out = {}
local bytes = 0
local last = ''
local examined = 0
for _, m in ipairs(members) do
  examined = examined + 1
  last = m
  local h = ARGV[4] .. m
  if withValues then
    local vr = redis.call('HMGET', h, 'v', 'r')
    if vr[1] and vr[2] then
      out[#out + 1] = m
      out[#out + 1] = vr[1]
      out[#out + 1] = vr[2]
      bytes = bytes + #m + #vr[1]
    else
      redis.call('ZREM', KEYS[1], m)
    end
  else
    if redis.call('EXISTS', h) == 1 then
      out[#out + 1] = m
      bytes = bytes + #m
    else
      redis.call('ZREM', KEYS[1], m)
    end
  end
  if bytes >= budget then break end
end
local done = 0
if examined == #members and #members < limit then done = 1 end
return {done, last, redis.call('GET', KEYS[2]) or '0', out}
)lua";

const char* kOpen = R"lua(
redis.call('HSETNX', KEYS[1], 'maxAgeMs', ARGV[1])
redis.call('HSETNX', KEYS[1], 'history', ARGV[2])
redis.call('HSETNX', KEYS[1], 'layout', '1')
return redis.call('HMGET', KEYS[1], 'maxAgeMs', 'history', 'layout')
)lua";

}  // namespace

const Script& writeScript() {
  static const Script s = makeScript("write", kWrite);
  return s;
}
const Script& eraseScript() {
  static const Script s = makeScript("erase", kErase);
  return s;
}
const Script& listScript() {
  static const Script s = makeScript("list", kList);
  return s;
}
const Script& openScript() {
  static const Script s = makeScript("open", kOpen);
  return s;
}

BucketKeys::BucketKeys(const std::string& bucket, int db) {
  std::string base = "weft:{" + bucket + "}:";
  entryPrefix = base + "k:";
  meta = base + "meta";
  revision = base + "rev";
  index = base + "idx";
  channel = base + "db" + std::to_string(db) + ":changes";
}

bool validBucketName(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

namespace {

// Reads decimal digits at *pos up to a space; false when there are none.
bool readNumber(const std::string& s, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  size_t start = *pos;
  while (*pos < s.size() && s[*pos] != ' ') {
    char c = s[*pos];
    if (c < '0' || c > '9' || *pos - start >= 19) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    ++*pos;
  }
  if (*pos == start || *pos >= s.size()) return false;
  ++*pos;  // the space
  *out = v;
  return true;
}

}  // namespace

bool parseChange(const std::string& message, Change* out) {
  if (message.size() < 2 || (message[0] != 'P' && message[0] != 'D')) return false;
  Change c;
  c.isDelete = message[0] == 'D';
  size_t pos = 1;
  uint64_t keyLen = 0;
  if (!readNumber(message, &pos, &c.revision) || !readNumber(message, &pos, &keyLen)) {
    return false;
  }
  if (keyLen > message.size() - pos) return false;
  c.key = message.substr(pos, keyLen);
  pos += keyLen;
  if (c.isDelete) {
    if (pos != message.size()) return false;
  } else {
    c.value = message.substr(pos);
  }
  *out = std::move(c);
  return true;
}

void prefixRange(const std::string& prefix, std::string* min, std::string* max) {
  if (prefix.empty()) {
    *min = "-";
    *max = "+";
    return;
  }
  *min = "[" + prefix;
  // The smallest string greater than every string with this prefix: drop
  // trailing 0xff bytes and increment the last remaining byte.
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (upper.empty()) {
    *max = "+";
    return;
  }
  upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  *max = "(" + upper;
}

}  // namespace weft::redis_plugin
