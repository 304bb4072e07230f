// The CRIU 4.1.1 images of one task of a real container
// (tests/unit/fixtures/criu-4.1.1, tiny-1-*), copied into a fresh
// directory under the names CRIU gives pid 1's: its pagemap read, and its
// pages file's bytes, for the page-server tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <catch2/catch.hpp>

#include "images/page_set.hpp"
#include "temp_dir.hpp"

namespace migrated::testing {

struct task_images {
  temp_dir dir;
  images::page_set set;
  std::vector<std::uint8_t> pages;
  task_images() {
    const auto fixtures = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "criu-4.1.1";
    std::filesystem::copy_file(fixtures / "tiny-1-pagemap-1.img", dir.path / "pagemap-1.img");
    std::filesystem::copy_file(fixtures / "tiny-1-pages-1.img", dir.path / "pages-1.img");
    auto s = images::read_page_set(dir.path, "pagemap-1.img");
    REQUIRE(s);
    set = *s;
    std::ifstream in(dir.path / "pages-1.img", std::ios::binary);
    pages.assign(std::istreambuf_iterator<char>(in), {});
  }
};

}  // namespace migrated::testing
