#include "migration/destination.hpp"

namespace migrated::migration {

result<destination> resolve_destination(const config& cfg, const std::string& dest) {
  if (auto* p = cfg.find_peer(dest)) return destination{p->address, p->name};
  if (dest.find(':') == std::string::npos) {
    std::string known;
    for (auto& p : cfg.peers) known += (known.empty() ? "" : ", ") + p.name;
    return fail(errc::not_found, "unknown destination '" + dest + "' (peers: " + (known.empty() ? "none" : known) +
                                     "; or give host:port)");
  }
  auto address = parse_endpoint(dest);
  if (!address) return std::unexpected(address.error());
  for (auto& p : cfg.peers)
    if (p.address.host == address->host && p.address.port == address->port) return destination{p.address, p.name};
  if (!cfg.allow_unlisted_destinations)
    return fail(errc::denied, "destination " + dest + " is not one of " + cfg.node_name +
                                  "'s peers (list it under peers:, or set allow_unlisted_destinations)");
  return destination{*address, {}};
}

awaitable<result<transport::channel>> connect_destination(node_context& ctx, const std::string& dest) {
  auto to = resolve_destination(ctx.cfg, dest);
  if (!to) co_return std::unexpected(to.error());
  co_return co_await transport::connect(to->address, ctx.tls, ctx.me, to->name, ctx.cfg.timeouts.connect,
                                        ctx.cfg.timeouts.io);
}

}  // namespace migrated::migration
