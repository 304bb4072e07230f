// Finished migrations on disk (see history.hpp).
#include "migration/history.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "common/log.hpp"

namespace migrated::migration {
namespace {

bool is_record(const std::string& name) {
  return name.size() > 17 && name.ends_with(".pb") && name[13] == '-' &&
         std::all_of(name.begin(), name.begin() + 13, [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

result<void> history::open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return fail(errc::io, "history " + dir_.string() + ": " + ec.message());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    const auto name = e.path().filename().string();
    if (name.ends_with(".tmp")) std::filesystem::remove(e.path(), ec);  // a write a crash cut short
    else if (is_record(name)) names.push_back(name);
  }
  if (ec) return fail(errc::io, "history " + dir_.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  kept_.clear();
  for (const auto& name : names) {
    std::ifstream in(dir_ / name, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    pb::Report r;
    if (!in.good() && !in.eof()) {
      log::get("migration")->warn("history: cannot read {}: skipped", (dir_ / name).string());
      continue;
    }
    if (!r.ParseFromString(bytes) || r.id().empty()) {
      log::get("migration")->warn("history: {} is not a report: skipped", (dir_ / name).string());
      continue;
    }
    kept_.push_back({name, std::move(r)});
  }
  drop_oldest();
  return {};
}

result<void> history::add(const pb::Report& r, std::int64_t finished_unix_ms) {
  if (r.id().empty()) return fail(errc::invalid_argument, "history: a report without an id");
  const std::string name = fmt::format("{:013d}-{}.pb", std::max<std::int64_t>(finished_unix_ms, 0), r.id());
  const auto file = dir_ / name;
  auto tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!r.SerializeToOstream(&out) || !out.flush())
      return fail(errc::io, "history: write " + tmp.string() + ": " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return fail(errc::io, "history: rename " + tmp.string() + ": " + ec.message());
  }
  // (A clock that went back sorts it among older ones on the next open;
  // here it is the newest.)
  kept_.push_back({name, r});
  drop_oldest();
  return {};
}

std::vector<pb::Report> history::newest(std::size_t limit) const {
  std::vector<pb::Report> out;
  const std::size_t n = limit ? std::min(limit, kept_.size()) : kept_.size();
  out.reserve(n);
  for (auto it = kept_.rbegin(); it != kept_.rend() && out.size() < n; ++it) out.push_back(it->report);
  return out;
}

const pb::Report* history::find(const std::string& id) const {
  for (auto it = kept_.rbegin(); it != kept_.rend(); ++it)
    if (it->report.id() == id) return &it->report;
  return nullptr;
}

void history::drop_oldest() {
  while (kept_.size() > max_) {
    std::error_code ec;
    std::filesystem::remove(dir_ / kept_.front().file, ec);
    if (ec) log::get("migration")->warn("history: cannot remove {}: {}", (dir_ / kept_.front().file).string(), ec.message());
    kept_.pop_front();
  }
}

}  // namespace migrated::migration
