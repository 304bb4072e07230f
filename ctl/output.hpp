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

// Progress on a terminal: the migration's id first, then one line per
// phase, and while bytes flow one line updated in place with the bytes
// sent, of how many when the daemon knows, the rate and the time left.
class progress_printer {
 public:
  explicit progress_printer(bool enabled) : enabled_(enabled) {}
  // `interruptible`: Ctrl-C asks what to do (interrupt.hpp), and the first
  // line says so.
  void started(const std::string& id, const std::string& container, const std::string& to,
               const std::string& method, bool interruptible);
  void show(const pb::Progress& p);
  // Ends a line left in place (before the report, or a question).
  void finish();

 private:
  bool enabled_;
  std::string phase_;
  double phase_start_ms_ = 0;
  bool in_place_ = false;
};

// "12.0 MiB of 48.0 MiB (25%), 11.8 MiB/s, 3 s left" for `p`, its phase
// having begun at `phase_start_ms` (of the migration's elapsed time); the
// total and the time left only when the daemon said what the total is.
std::string transfer_line(const pb::Progress& p, double phase_start_ms);

}  // namespace migrated::ctl
