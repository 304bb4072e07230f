// How migratectl shows things: the report as one JSON object (snake_case,
// numbers as numbers) or a human table, status listings, and progress on a
// terminal.
#pragma once

#include <string>

#include "common/error.hpp"
#include "migrated.pb.h"

namespace migrated::ctl {

std::string report_json(const pb::Report& r);
std::string report_table(const pb::Report& r);
std::string status_json(const pb::StatusReply& s);
std::string status_table(const pb::StatusReply& s);
// Past migrations, newest first: {"node", "migrations": [report, ...]}, or
// a line each (when it started, in UTC).
std::string history_json(const pb::HistoryReply& h);
std::string history_table(const pb::HistoryReply& h);
std::string measure_json(const pb::MeasureReply& m);
// {"ok": false, "error", "code", "exit_code"}: what went wrong here.
std::string failure_json(const error& e, int exit_code);
// {"ok", "id", "code", "message"} of a daemon's reply.
std::string reply_json(const pb::Reply& r);
std::string measure_table(const pb::MeasureReply& m);

// Progress on a terminal: one line per phase, bytes updated in place.
class progress_printer {
 public:
  explicit progress_printer(bool enabled) : enabled_(enabled) {}
  void show(const pb::Progress& p);
  void finish();

 private:
  bool enabled_;
  std::string phase_;
  bool in_place_ = false;
};

}  // namespace migrated::ctl
