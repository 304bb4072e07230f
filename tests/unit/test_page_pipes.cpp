// Unit tests for criu/page_pipes: the page-pipe size CRIU reaches for each
// kernel limit, with and without CAP_SYS_RESOURCE, and this host's value
// against what its /proc says.
#include <fstream>

#include <catch2/catch.hpp>

#include "criu/page_pipes.hpp"

using namespace migrated::criu;

TEST_CASE("page pipes reach CRIU's 4 MiB with CAP_SYS_RESOURCE or a high enough limit", "[page_pipes]") {
  CHECK(page_pipe_capacity(true, 1 << 20) == page_pipe_max_bytes);
  CHECK(page_pipe_capacity(false, 4 << 20) == page_pipe_max_bytes);
  CHECK(page_pipe_capacity(false, 64 << 20) == page_pipe_max_bytes);  // CRIU's own cap
}

TEST_CASE("without CAP_SYS_RESOURCE page pipes stop at the kernel's limit", "[page_pipes]") {
  CHECK(page_pipe_capacity(false, 1 << 20) == 1 << 20);        // Linux's default: 256 pages
  CHECK(page_pipe_capacity(false, 3 << 20) == 2 << 20);        // doubling stops below the limit
  CHECK(page_pipe_capacity(false, 4096) == 4096);
  CHECK(page_pipe_capacity(false, 0) == 4096);                 // a pipe always holds a page
}

TEST_CASE("this host's page-pipe size follows fs.pipe-max-size", "[page_pipes]") {
  std::ifstream in("/proc/sys/fs/pipe-max-size");
  std::size_t limit = 0;
  if (!(in >> limit)) {
    WARN("skipped: no /proc/sys/fs/pipe-max-size here");
    return;
  }
  const auto got = host_page_pipe_capacity();
  CHECK(got <= page_pipe_max_bytes);
  CHECK((got == page_pipe_max_bytes || got <= limit));
}
