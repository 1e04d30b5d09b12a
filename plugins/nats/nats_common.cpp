#include "nats_common.h"

namespace weft::nats_plugin {

Status fromNats(natsStatus status, const std::string& what) {
  std::string message = what + ": " + natsStatus_GetText(status);
  switch (status) {
    case NATS_OK:
      return Status::ok();
    case NATS_NOT_FOUND:
      return Status::notFound(message);
    case NATS_TIMEOUT:
      return Status::timeout(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_MAX_PAYLOAD:
      return Status::invalidArgument(message);
    // Everything that means "the server is not reachable right now". Without
    // responders the JetStream API (or the bucket's stream) is not there,
    // which for KV calls is an outage of the server side, not a missing key.
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_IO_ERROR:
    case NATS_NO_RESPONDERS:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_SSL_ERROR:
    case NATS_DRAINING:
      return Status::unavailable(message);
    // The server answered with an error of its own. On a replicated stream
    // that is what a leader election, a lost quorum or a stream that is
    // catching up looks like, with or without a JetStream error code (a get
    // of the last message answers so while the stream has no leader). It is
    // the server side being unable to serve, not a fault of this process.
    case NATS_ERR:
      return Status::unavailable(message);
    default:
      return Status::internal(message);
  }
}

Status fromJetStream(natsStatus status, jsErrCode code, const std::string& what,
                     const char* serverText) {
  if (status == NATS_OK) return Status::ok();
  // With an error code set, the thread's last error is the server's
  // description of this very reply (nats.c sets both together).
  const char* text =
      serverText != nullptr ? serverText : (code != 0 ? nats_GetLastError(nullptr) : nullptr);
  const std::string detail = text != nullptr && *text != '\0' ? std::string(": ") + text : "";
  switch (code) {
    case JSInsufficientResourcesErr:
    case JSStorageResourcesExceededErr:
    case JSAccountResourcesExceededErr:
    case JSMemoryResourcesExceededErr:
      return Status::unavailable(what + detail +
                                 " (the NATS server is out of storage: disk full or JetStream "
                                 "limits reached)");
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
      return Status::unavailable(what + detail +
                                 " (JetStream is disabled on the NATS server; it disables itself "
                                 "when its disk fills up and stays off until restarted)");
    case JSStreamStoreFailedErr:
      // Go's ENOSPC text; other store failures keep the generic mapping.
      if (detail.find("no space left") != std::string::npos) {
        return Status::unavailable(what + detail + " (disk full on the NATS server)");
      }
      return fromNats(status, what + detail);
    // The cluster cannot serve the request right now: no leader, no quorum,
    // the stream or consumer offline, this server not (yet) a member.
    case JSClusterIncompleteErr:
    case JSClusterNoPeersErr:
    case JSClusterNotAssignedErr:
    case JSClusterNotAvailErr:
    case JSClusterNotLeaderErr:
    case JSClusterPeerNotMemberErr:
    case JSClusterServerNotMemberErr:
    case JSStreamOfflineErr:
    case JSConsumerOfflineErr:
      return Status::unavailable(what + detail +
                                 " (the JetStream cluster cannot serve this right now: a leader "
                                 "election, a lost quorum or a node that is down)");
    default:
      return fromNats(status, what + detail);
  }
}

bool isValidKey(const std::string& key) {
  if (key.empty() || key.front() == '.' || key.back() == '.') return false;
  char prev = 0;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '/' || c == '_' || c == '=' || c == '.';
    if (!ok) return false;
    if (c == '.' && prev == '.') return false;
    prev = c;
  }
  return true;
}

bool isValidBucketName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string keyFilterForPrefix(const std::string& prefix) {
  size_t lastDot = prefix.rfind('.');
  if (lastDot == std::string::npos) return "";
  std::string head = prefix.substr(0, lastDot);
  // A head NATS cannot represent matches no key; the whole-bucket watch plus
  // the client-side filter then returns nothing, which is the right answer.
  if (!isValidKey(head)) return "";
  return head + ".>";
}

}  // namespace weft::nats_plugin
