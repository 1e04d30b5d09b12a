// A KvStore decorator that measures every storage operation: how long it took
// and how it ended. weftd wraps the loaded plugin store in it (for the
// weft_backend_* metrics of docs/api.md §2.1); the services see an ordinary
// KvStore and cannot tell the difference.
//
// What is measured, by operation name:
//   get     KvBucket::get
//   put     KvBucket::put
//   create  KvBucket::create
//   update  KvBucket::update
//   delete  KvBucket::erase
//   list    KvBucket::keys and KvBucket::scan
//   ping    KvStore::ping
// openBucket() and watch() are set-up calls, not operations: they are passed
// through unmeasured, and so are name(), state() and messaging() (which
// returns the inner store's messaging, so NATS publications keep working).
// Watch callbacks run unchanged on the backend's threads.
//
// The wrapped buckets are the inner buckets behind a thin wrapper: every
// guarantee of kv.h (deadlines, revisions, thread-safety) is the inner
// store's. The decorator adds no locking: calls run concurrently as before.
#pragma once

#include <functional>
#include <memory>

#include "weft/kv.h"
#include "weft/status.h"

namespace weft {

enum class KvOp { Get, Put, Create, Update, Delete, List, Ping };

// "get", "put", "create", "update", "delete", "list", "ping".
const char* kvOpName(KvOp op);

// One finished operation. `code` is the Status code the caller got: Ok, or
// the failure (NotFound, AlreadyExists and Conflict are ordinary outcomes of
// get/create/update, not backend faults; the observer decides what counts as
// an error).
struct KvOpRecord {
  KvOp op;
  double seconds;
  Code code;
};

// Called on the calling thread right after each operation returns, before the
// result reaches the caller. Must be quick and must not call the store. An
// exception thrown by it is swallowed: measuring never breaks an operation.
using KvOpObserver = std::function<void(const KvOpRecord&)>;

// Wraps inner (non-null). The returned store owns a reference to inner and to
// the observer, and forwards every call. Thread-safe like inner. With an empty
// observer there is nothing to measure and inner itself is returned.
std::shared_ptr<KvStore> instrumentKvStore(std::shared_ptr<KvStore> inner, KvOpObserver observer);

}  // namespace weft
