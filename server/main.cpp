// weftd: the Weft coordinator server. Everything is in app.cpp.
#include "app.h"
#include "crash_report.h"

int main(int argc, char** argv) {
  weft::installCrashReport();
  return weft::runWeftd(argc, argv);
}
