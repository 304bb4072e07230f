// What the fuzz targets share: a way to stop on a broken invariant that
// names it (libFuzzer then saves the input as a reproducer), and a scratch
// directory per process on tmpfs for decoders that read or write files.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace migrated::fuzz {

[[noreturn]] inline void broken(const char* invariant, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz: invariant broken: %s%s%s\n", invariant, detail.empty() ? "" : ": ",
               detail.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, ...) \
  do {                        \
    if (!(cond)) ::migrated::fuzz::broken(#cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

// /dev/shm/migrated-fuzz-<name>-<pid>, created on first use, emptied by the caller.
inline const std::filesystem::path& scratch(const char* name) {
  static const std::filesystem::path dir = [&] {
    auto d = std::filesystem::path("/dev/shm") /
             ("migrated-fuzz-" + std::string(name) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace migrated::fuzz
