#include "nats_store.h"

#include <algorithm>
#include <cctype>
#include <climits>

#include "nats_bucket.h"
#include "nats_common.h"
#include "nats_version.h"

namespace weft::nats_plugin {
namespace {

constexpr int64_t kNanosPerMs = 1000000;
// JetStream's default duplicate window; it may not exceed a stream's max age.
constexpr int64_t kDuplicateWindowMs = 2 * 60 * 1000;

std::string setting(const PluginContext& ctx, const std::string& key, const std::string& dflt) {
  auto it = ctx.settings.find(key);
  if (it == ctx.settings.end()) return dflt;
  std::string v = it->second;
  size_t b = v.find_first_not_of(" \t");
  if (b == std::string::npos) return dflt;
  v = v.substr(b, v.find_last_not_of(" \t") - b + 1);
  return v;
}

Result<int64_t> positiveSetting(const PluginContext& ctx, const std::string& key, int64_t dflt) {
  std::string text = setting(ctx, key, std::to_string(dflt));
  bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  if (!digits || text.size() > 12 || std::stoll(text) < 1) {
    return Status::invalidArgument(key + " must be a positive integer (milliseconds), got '" +
                                   text + "'");
  }
  return static_cast<int64_t>(std::stoll(text));
}

// A subject Weft may publish to: tokens of printable non-space characters
// separated by single dots, no wildcards. Anything else could break the
// protocol line or publish somewhere unintended.
bool isPublishableSubject(const std::string& subject) {
  if (subject.empty() || subject.front() == '.' || subject.back() == '.') return false;
  char prev = 0;
  for (char c : subject) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '*' || c == '>') return false;
    if (c == '.' && prev == '.') return false;
    prev = c;
  }
  return true;
}

}  // namespace

Status NatsMessaging::publish(const std::string& subject, const std::string& payload) {
  if (!isPublishableSubject(subject)) {
    return Status::invalidArgument("not a publishable NATS subject: '" + subject + "'");
  }
  if (payload.size() > static_cast<size_t>(INT_MAX)) {
    return Status::invalidArgument("payload too large");
  }
  if (Status st = conn_->checkAvailable(); !st) return st;
  natsStatus s = natsConnection_Publish(conn_->nc(), subject.c_str(), payload.data(),
                                        static_cast<int>(payload.size()));
  return fromNats(s, "publish to " + subject);
}

Status NatsMessaging::publishJetStream(const std::string& subject, const std::string& payload) {
  if (!isPublishableSubject(subject)) {
    return Status::invalidArgument("not a publishable NATS subject: '" + subject + "'");
  }
  if (payload.size() > static_cast<size_t>(INT_MAX)) {
    return Status::invalidArgument("payload too large");
  }
  if (Status st = conn_->checkAvailable(); !st) return st;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = conn_->timeoutMs();
  jsPubAck* ack = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, conn_->js(), subject.c_str(), payload.data(),
                            static_cast<int>(payload.size()), &po, &ec);
  if (s == NATS_OK) {
    jsPubAck_Destroy(ack);
    return Status::ok();
  }
  if (s == NATS_NO_RESPONDERS) {
    return Status::notFound("no JetStream stream captures subject " + subject);
  }
  if (s == NATS_CONNECTION_DISCONNECTED) {
    return Status::timeout("JetStream publish to " + subject +
                           ": connection lost before the acknowledgement");
  }
  return fromJetStream(s, ec, "JetStream publish to " + subject);
}

namespace {

StreamInfo toStreamInfo(const jsStreamInfo* si) {
  StreamInfo info;
  if (si->Config != nullptr) {
    if (si->Config->Name != nullptr) info.name = si->Config->Name;
    if (si->Config->Description != nullptr) info.description = si->Config->Description;
    for (int i = 0; i < si->Config->SubjectsLen; ++i) {
      if (si->Config->Subjects[i] != nullptr) info.subjects.emplace_back(si->Config->Subjects[i]);
    }
  }
  info.firstSeq = si->State.FirstSeq;
  info.lastSeq = si->State.LastSeq;
  return info;
}

// jsOptions whose Wait is the whole kv.timeoutMs of one interface call.
jsOptions waitOptions(int64_t timeoutMs) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = timeoutMs;
  return jo;
}

}  // namespace

Result<std::vector<StreamInfo>> NatsMessaging::listStreams(const std::string& prefix) {
  if (Status st = conn_->checkAvailable(); !st) return st;
  // JetStream has no listing filter by name prefix (only by subject), so the
  // whole list is fetched; nats.c pages through it internally, each page
  // bounded by Wait.
  jsOptions jo = waitOptions(conn_->timeoutMs());
  jsStreamInfoList* list = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_Streams(&list, conn_->js(), &jo, &ec);
  std::vector<StreamInfo> out;
  // nats.c reports an account without streams as NATS_NOT_FOUND.
  if (s == NATS_NOT_FOUND) return out;
  if (s != NATS_OK) return fromJetStream(s, ec, "list JetStream streams");
  for (int i = 0; list != nullptr && i < list->Count; ++i) {
    const jsStreamInfo* si = list->List[i];
    if (si == nullptr || si->Config == nullptr || si->Config->Name == nullptr) continue;
    if (!hasPrefix(si->Config->Name, prefix)) continue;
    out.push_back(toStreamInfo(si));
  }
  jsStreamInfoList_Destroy(list);
  return out;
}

Result<StreamInfo> NatsMessaging::streamInfo(const std::string& stream) {
  // The name is spliced into a JetStream API subject: anything beyond
  // [A-Za-z0-9_-] ('.', '*', '>', spaces) could address something else.
  if (!isValidBucketName(stream)) return Status::notFound("no stream " + stream);
  if (Status st = conn_->checkAvailable(); !st) return st;
  jsOptions jo = waitOptions(conn_->timeoutMs());
  jsStreamInfo* si = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_->js(), stream.c_str(), &jo, &ec);
  if (s != NATS_OK) return fromJetStream(s, ec, "stream info of " + stream);
  StreamInfo info = toStreamInfo(si);
  jsStreamInfo_Destroy(si);
  return info;
}

Result<StreamMessage> NatsMessaging::getMessage(const std::string& stream, uint64_t seq) {
  if (!isValidBucketName(stream) || seq == 0) {
    return Status::notFound("no message " + std::to_string(seq) + " in stream " + stream);
  }
  if (Status st = conn_->checkAvailable(); !st) return st;
  jsOptions jo = waitOptions(conn_->timeoutMs());
  natsMsg* msg = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, conn_->js(), stream.c_str(), seq, &jo, &ec);
  if (s != NATS_OK) {
    return fromJetStream(s, ec, "get message " + std::to_string(seq) + " of stream " + stream);
  }
  StreamMessage out;
  const char* data = natsMsg_GetData(msg);
  int len = natsMsg_GetDataLength(msg);
  if (data != nullptr && len > 0) out.data.assign(data, static_cast<size_t>(len));
  out.timeMs = natsMsg_GetTime(msg) / kNanosPerMs;
  natsMsg_Destroy(msg);
  return out;
}

Result<std::unique_ptr<NatsKvStore>> NatsKvStore::create(const PluginContext& context) {
  ConnectionSettings cs;
  Result<NatsServerSpec> servers =
      parseNatsUrl(setting(context, "nats.url", "nats://localhost:4222"));
  if (!servers) return servers.status();
  cs.servers = std::move(servers.value());
  cs.user = setting(context, "nats.user", "");
  cs.password = setting(context, "nats.pass", "");
  Result<int64_t> timeout = positiveSetting(context, "kv.timeoutMs", 2000);
  if (!timeout) return timeout.status();
  Result<int64_t> reconnectWait = positiveSetting(context, "kv.reconnectWaitMs", 2000);
  if (!reconnectWait) return reconnectWait.status();
  cs.timeoutMs = *timeout;
  cs.reconnectWaitMs = *reconnectWait;
  cs.log = context.log;
  const std::string replicasText = setting(context, "nats.replicas", "1");
  if (replicasText != "1" && replicasText != "3" && replicasText != "5") {
    return Status::invalidArgument("nats.replicas must be 1, 3 or 5, got '" + replicasText + "'");
  }
  std::string guardText = setting(context, "nats.casGuard", "auto");
  std::transform(guardText.begin(), guardText.end(), guardText.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  CasGuard guard;
  if (guardText == "auto") {
    guard = CasGuard::Auto;
  } else if (guardText == "always") {
    guard = CasGuard::Always;
  } else if (guardText == "off") {
    guard = CasGuard::Off;
  } else {
    return Status::invalidArgument("nats.casGuard must be auto, always or off, got '" +
                                   guardText + "'");
  }
  Result<std::shared_ptr<NatsConnection>> conn = NatsConnection::open(std::move(cs));
  if (!conn) return conn.status();
  return std::unique_ptr<NatsKvStore>(
      new NatsKvStore(std::move(conn.value()), std::stoi(replicasText), guard));
}

NatsKvStore::NatsKvStore(std::shared_ptr<NatsConnection> conn, int replicas, CasGuard guard)
    : conn_(std::move(conn)),
      replicas_(replicas),
      casGuard_(guard),
      watches_(std::make_shared<WatchRegistry>()),
      messaging_(conn_) {}

bool NatsKvStore::guardFor(int replicas) {
  if (!versionKnown_) {
    // Read once, and logged whatever the mode: operators want to see it.
    char url[256] = {0};
    std::string host;
    int port = 0;
    std::optional<ServerVersion> version;
    if (natsConnection_GetConnectedUrl(conn_->nc(), url, sizeof url) == NATS_OK &&
        splitHostPort(url, &host, &port)) {
      version = probeServerVersion(host, port, conn_->timeoutMs());
    }
    if (version) {
      versionKnown_ = true;
      serverHasCasFix_ = hasReplicatedCasFix(*version);
      conn_->log(LogLevel::Info,
                 "nats-server " + version->text + " at " + url +
                     (serverHasCasFix_
                          ? ": compare-and-set on replicated buckets is exclusive natively"
                          : ": compare-and-set on replicated buckets is not exclusive natively "
                            "(fixed in 2.9.21); Weft guards it with the stream sequence"));
    } else {
      conn_->log(LogLevel::Warn,
                 "could not read the nats-server version; compare-and-set on replicated "
                 "buckets is guarded");
    }
  }
  if (replicas <= 1 || casGuard_ == CasGuard::Off) return false;
  if (casGuard_ == CasGuard::Always || !versionKnown_) return true;
  return !serverHasCasFix_;
}

NatsKvStore::~NatsKvStore() {
  // Watches first: their threads use the connection.
  watches_->stopAll();
  conn_->close();
  // Buckets handed out may outlive the store; they keep the (closed)
  // connection object alive and answer Unavailable.
}

Result<BucketRef> NatsKvStore::describeBucket(const std::string& name, const Deadline& deadline) {
  const std::string stream = "KV_" + name;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout("open bucket " + name + ": deadline exceeded");
  jsStreamInfo* si = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_->js(), stream.c_str(), &jo, &ec);
  if (s != NATS_OK) return fromJetStream(s, ec, "open bucket " + name);
  BucketRef ref;
  ref.name = name;
  ref.stream = stream;
  ref.subjectPrefix = "$KV." + name + ".";
  ref.allowDirect = si->Config->AllowDirect;
  ref.replicas = si->Config->Replicas > 0 ? static_cast<int>(si->Config->Replicas) : 1;
  ref.oneValuePerKey = si->Config->MaxMsgsPerSubject == 1;
  bool isKv = false;
  for (int i = 0; i < si->Config->SubjectsLen; ++i) {
    if (ref.subjectPrefix + ">" == si->Config->Subjects[i]) isKv = true;
  }
  jsStreamInfo_Destroy(si);
  if (!isKv) {
    return Status::internal("stream " + stream + " exists but does not hold subjects $KV." + name +
                            ".>; it is not a KV bucket");
  }
  return ref;
}

Status NatsKvStore::createBucket(const std::string& name, const BucketOptions& options,
                                 const Deadline& deadline) {
  const std::string stream = "KV_" + name;
  const std::string subjects = "$KV." + name + ".>";
  const char* subjectList[] = {subjects.c_str()};
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = stream.c_str();
  sc.Subjects = subjectList;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Retention = js_LimitsPolicy;
  sc.Discard = js_DiscardOld;
  sc.MaxAge = options.maxAgeMs * kNanosPerMs;  // nanoseconds
  // history 0 = unlimited = no per-subject limit (-1): the agent-registry
  // settings of docs/api.md §6.3, which kvConfig cannot express.
  sc.MaxMsgsPerSubject = options.history == 0 ? -1 : options.history;
  sc.AllowRollup = true;
  sc.DenyDelete = true;
  sc.AllowDirect = true;
  sc.Replicas = replicas_;
  sc.MaxMsgSize = -1;
  int64_t dupMs =
      options.maxAgeMs > 0 ? std::min(kDuplicateWindowMs, options.maxAgeMs) : kDuplicateWindowMs;
  sc.Duplicates = dupMs * kNanosPerMs;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout("create bucket " + name + ": deadline exceeded");
  jsStreamInfo* si = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, conn_->js(), &sc, &jo, &ec);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    conn_->log(
        LogLevel::Info,
        "created NATS KV bucket " + name + " (stream " + stream + ", history " +
            (options.history == 0 ? std::string("unlimited") : std::to_string(options.history)) +
            ", max age " + std::to_string(options.maxAgeMs) + " ms, " + std::to_string(replicas_) +
            (replicas_ == 1 ? " replica)" : " replicas)"));
    return Status::ok();
  }
  // Another process created it first (with these or other settings): the
  // existing bucket wins and is opened by the caller.
  if (ec == JSStreamNameExistErr) return Status::ok();
  return fromJetStream(s, ec, "create bucket " + name);
}

Result<std::shared_ptr<KvBucket>> NatsKvStore::openBucket(const std::string& name,
                                                          const BucketOptions& options) {
  if (!isValidBucketName(name)) {
    return Status::invalidArgument("invalid NATS KV bucket name '" + name +
                                   "' (allowed: [A-Za-z0-9_-])");
  }
  if (options.history < 0 || options.history > 64) {
    return Status::invalidArgument("bucket " + name + ": history must be 0 (unlimited) to 64");
  }
  if (options.maxAgeMs < 0) {
    return Status::invalidArgument("bucket " + name + ": maxAgeMs must not be negative");
  }
  try {
    std::lock_guard<std::mutex> lock(bucketsMu_);
    auto it = buckets_.find(name);
    if (it != buckets_.end()) return std::shared_ptr<KvBucket>(it->second);
    if (Status st = conn_->checkAvailable(); !st) return st;
    const Deadline deadline(conn_->timeoutMs());
    Result<BucketRef> ref = describeBucket(name, deadline);
    if (!ref && ref.code() == Code::NotFound) {
      if (Status st = createBucket(name, options, deadline); !st) return st;
      ref = describeBucket(name, deadline);
    }
    if (!ref) return ref.status();
    if (ref->replicas != replicas_) {
      conn_->log(LogLevel::Warn, "NATS KV bucket " + name + " has " +
                                     std::to_string(ref->replicas) +
                                     " replica(s), nats.replicas says " +
                                     std::to_string(replicas_) + ": the existing bucket wins");
    }
    ref->guardedCas = guardFor(ref->replicas);
    conn_->log(LogLevel::Info, "opened NATS KV bucket " + name + " (" +
                                   std::to_string(ref->replicas) + " replica(s), compare-and-set " +
                                   (ref->guardedCas ? "guarded by the stream sequence"
                                                    : "native") + ")");
    auto bucket = std::make_shared<NatsKvBucket>(conn_, std::move(ref.value()), watches_);
    buckets_.emplace(name, bucket);
    return std::shared_ptr<KvBucket>(bucket);
  } catch (const std::exception& ex) {
    return Status::internal("open bucket " + name + ": " + ex.what());
  }
}

Status NatsKvStore::ping() {
  if (Status st = conn_->checkAvailable(); !st) return st;
  jsAccountInfo* info = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetAccountInfo(&info, conn_->js(), nullptr, &ec);
  if (s == NATS_OK) {
    jsAccountInfo_Destroy(info);
    return Status::ok();
  }
  return fromJetStream(s, ec, "JetStream account info");
}

}  // namespace weft::nats_plugin
