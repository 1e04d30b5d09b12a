// A shared library that loads but does not export WEFT_KV_PLUGIN_ENTRY.
extern "C" __attribute__((visibility("default"))) int weft_kv_not_the_entry(void) {
  return 42;
}
