#include "server/permissions.hpp"

#include <string>

namespace migrated::server {
namespace {

bool for_controllers(const pb::Envelope& m) {
  return m.has_migrate() || m.has_prepare() || m.has_status() || m.has_abort_request() || m.has_recover() ||
         m.has_measure() || m.has_history();
}

bool for_peers(const pb::Envelope& m) {
  return m.has_pull() || m.has_probe() || m.has_outcome_query() || m.has_page_link_open() ||
         m.has_session_resume();
}

std::string what(const pb::Envelope& m) {
  if (m.has_migrate()) return "start a migration";
  if (m.has_prepare()) return "prepare a migration";
  if (m.has_status()) return "read status";
  if (m.has_history()) return "read the history";
  if (m.has_abort_request()) return "abort a migration";
  if (m.has_recover()) return "recover a container";
  if (m.has_measure()) return "measure";
  if (m.has_pull()) return "send a container";
  if (m.has_probe()) return "probe the link";
  if (m.has_outcome_query()) return "ask what became of a migration";
  if (m.has_page_link_open()) return "open a page link";
  if (m.has_session_resume()) return "resume a migration";
  return "send message #" + std::to_string(m.body_case());
}

}  // namespace

result<void> permitted(const pb::Envelope& request, const node_identity& who, const config& cfg) {
  if (for_controllers(request) && who.role != node_role::controller)
    return fail(errc::denied, who.name + " is a peer, not a controller: it may not " + what(request) + " on " +
                                  cfg.node_name);
  if (!for_controllers(request) && !for_peers(request))
    return fail(errc::protocol, "message #" + std::to_string(request.body_case()) +
                                    " does not begin a conversation with " + cfg.node_name);
  if (for_peers(request)) {
    if (who.role != node_role::peer)
      return fail(errc::denied, who.name + " is a controller: only peer daemons " + what(request) + " to " +
                                    cfg.node_name);
    if (!cfg.find_peer(who.name))
      return fail(errc::denied, who.name + " is not one of " + cfg.node_name + "'s peers: it may not " +
                                    what(request) + " here (list it under peers:)");
  }
  return {};
}

}  // namespace migrated::server
