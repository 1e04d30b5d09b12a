// weftd: the Weft coordinator server. Everything is in app.cpp.
#include "app.h"

int main(int argc, char** argv) {
  return weft::runWeftd(argc, argv);
}
