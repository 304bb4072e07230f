// The input of fuzz_delta, shared with make_corpus, which writes real ones:
//
//   u16 cur_len | current pagemap image | u16 prev_len | previous pagemap
//   image (prev_len 0: a first round) | u8 flags | the op stream
//
// lengths little-endian; flags bit 0: the output already holds the
// previous pages file (the destination's in-place mode), bits 1..7: chunk
// size / 13 in which the stream is fed (0: all at once). The previous
// pages file is not in the input: its pages are made from their index
// (previous_page), so a stream can refer to them.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "images/page_set.hpp"

namespace migrated::fuzz {

// Larger sets only cost time: the daemon bounds the claim (image_rounds.cpp,
// max_pages_per_file) before a decoder is made, so this one bounds it lower.
constexpr std::uint64_t max_fuzz_pages = 512;

struct delta_input {
  std::span<const std::uint8_t> cur_pagemap;
  std::span<const std::uint8_t> prev_pagemap;  // empty: no previous dump
  bool in_place = false;
  std::size_t chunk = 0;  // 0: one feed
  std::span<const std::uint8_t> stream;
};

inline std::optional<delta_input> split_delta_input(std::span<const std::uint8_t> in) {
  auto take16 = [&](std::span<const std::uint8_t>& out) {
    if (in.size() < 2) return false;
    const std::size_t n = std::size_t(in[0]) | (std::size_t(in[1]) << 8);
    if (in.size() - 2 < n) return false;
    out = in.subspan(2, n);
    in = in.subspan(2 + n);
    return true;
  };
  delta_input d;
  if (!take16(d.cur_pagemap) || !take16(d.prev_pagemap) || in.empty()) return std::nullopt;
  d.in_place = (in[0] & 1) != 0;
  d.chunk = std::size_t(in[0] >> 1) * 13;
  d.stream = in.subspan(1);
  return d;
}

inline void put_delta_input(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> cur,
                            std::span<const std::uint8_t> prev, std::uint8_t flags,
                            std::span<const std::uint8_t> stream) {
  for (auto part : {cur, prev}) {
    out.push_back(std::uint8_t(part.size()));
    out.push_back(std::uint8_t(part.size() >> 8));
    out.insert(out.end(), part.begin(), part.end());
  }
  out.push_back(flags);
  out.insert(out.end(), stream.begin(), stream.end());
}

// Stored page `index` of every previous pages file: mostly a pattern of the
// index, every fifth page zero (so ZERO and SAME-of-zero both occur).
inline void previous_page(std::uint64_t index, std::uint8_t* page) {
  if (index % 5 == 4) {
    std::memset(page, 0, images::page_bytes);
    return;
  }
  for (std::uint32_t i = 0; i < images::page_bytes; ++i)
    page[i] = std::uint8_t(index * 31 + i * 7 + (i >> 9));
}

}  // namespace migrated::fuzz
