#include "crash_report.h"

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace weft {

namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};

// Only async-signal-safe calls in here: write(2), strlen, backtrace_symbols_fd(3)
// (backtrace(3) itself is primed in installCrashReport, so it does not load
// libgcc lazily inside the handler), signal(2) and raise(3).
const char* signalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    default: return "?";
  }
}

void say(const char* text) { (void)!write(STDERR_FILENO, text, std::strlen(text)); }

void onFatalSignal(int sig) {
  say("weftd: fatal signal ");
  say(signalName(sig));
  say("; stack:\n");
  void* frames[64];
  int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void onTerminate() {
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "weftd: uncaught exception: %s\n", ex.what());
    } catch (...) {
      std::fprintf(stderr, "weftd: uncaught exception of unknown type\n");
    }
  } else {
    std::fprintf(stderr, "weftd: std::terminate without an exception\n");
  }
  std::fflush(stderr);
  std::abort();  // lands in onFatalSignal(SIGABRT): the stack comes with it
}

}  // namespace

void installCrashReport() {
  void* prime[1];
  backtrace(prime, 1);
  for (int sig : kFatalSignals) std::signal(sig, onFatalSignal);
  std::set_terminate(onTerminate);
}

}  // namespace weft
