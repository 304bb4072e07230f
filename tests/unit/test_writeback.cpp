// Writing files back early (fs/writeback.hpp): every file of a round's
// directory is handed to the disk, a sequential copy keeps its dirty pages
// to about two steps, and what cannot be written back says why. (Whether
// the kernel wrote the pages is not visible per file; what is checked is
// that the calls reach it and leave the data as it was.)
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <vector>

#include "common/unique_fd.hpp"
#include "fs/writeback.hpp"
#include "temp_dir.hpp"

using namespace migrated;

TEST_CASE("writeback: every file of a directory goes to the disk, intact", "[writeback]") {
  testing::temp_dir tmp;
  std::vector<char> data(3u << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = char(i * 131 + 7);
  for (const char* name : {"pages-1.img", "pagemap-1.img"}) {
    std::ofstream f(tmp.path / name, std::ios::binary);
    f.write(data.data(), std::streamsize(data.size()));
  }
  std::filesystem::create_directory(tmp.path / "work");  // (not a file: left alone)
  auto ok = fs::start_writeback(tmp.path, 1u << 20);
  INFO((ok ? std::string() : ok.error().message));
  REQUIRE(ok);
  std::ifstream back(tmp.path / "pages-1.img", std::ios::binary);
  std::vector<char> read_back(data.size());
  back.read(read_back.data(), std::streamsize(read_back.size()));
  CHECK(read_back == data);
}

TEST_CASE("writeback: a directory that is not there says so", "[writeback]") {
  testing::temp_dir tmp;
  auto ok = fs::start_writeback(tmp.path / "round-7");
  REQUIRE_FALSE(ok);
  CHECK(ok.error().code == errc::io);
  CHECK_THAT(ok.error().message, Catch::Contains("round-7"));
}

TEST_CASE("writeback: a copy written behind, step by step", "[writeback]") {
  testing::temp_dir tmp;
  unique_fd fd(::open((tmp.path / "stage").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(fd);
  fs::write_behind behind(fd.get());
  std::vector<char> step(1u << 20);
  for (std::uint64_t i = 0; i < 4; ++i) {
    std::fill(step.begin(), step.end(), char('a' + i));
    REQUIRE(::pwrite(fd.get(), step.data(), step.size(), off_t(i * step.size())) == ssize_t(step.size()));
    auto ok = behind.wrote(i * step.size(), step.size());
    INFO((ok ? std::string() : ok.error().message));
    REQUIRE(ok);
  }
  char c = 0;
  REQUIRE(::pread(fd.get(), &c, 1, off_t(3 * step.size() + 5)) == 1);
  CHECK(c == 'd');

  // Not a file that can be written back: the error says so.
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  unique_fd r(pipe_fds[0]), w(pipe_fds[1]);
  fs::write_behind on_pipe(w.get());
  auto bad = on_pipe.wrote(0, 4096);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("write back"));
}
