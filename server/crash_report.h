// What weftd prints when it dies of a programming error.
//
// A crash in production (or in a fault test, where it looks like a sudden
// wave of refused connections) is only worth something when it says where it
// happened. installCrashReport() makes a fatal signal (SIGSEGV, SIGABRT,
// SIGBUS, SIGFPE, SIGILL) write one line naming the signal and a raw stack
// trace to stderr, then die of the same signal (so the exit status and a core
// dump stay what they would have been). An exception escaping a thread gets
// its what() printed before std::terminate aborts.
//
// The trace holds addresses relative to the binary and the shared objects;
// `addr2line -Cfe build/server/weftd 0x...` turns them into lines (the
// default build is RelWithDebInfo).
#pragma once

namespace weft {

void installCrashReport();

}  // namespace weft
