// Connection limits (server/connections.hpp): pending connections give way
// oldest first — per source, then overall — so a flood of idle ones never
// keeps a new connection out; authenticated ones are bounded.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <vector>

#include "server/connections.hpp"

using migrated::server::connections;

TEST_CASE("the oldest pending connection makes room for a new one", "[connections]") {
  // (One connection per source: the oldest of all gives way.)
  connections c({.pending = 3, .pending_per_source = 8, .authenticated = 10});
  std::vector<int> closed;
  std::vector<connections::id> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(c.arrive("10.0.0." + std::to_string(i), [&closed, i] { closed.push_back(i); }));
  CHECK(c.pending() == 3);
  CHECK(closed == std::vector<int>{0, 1});
  CHECK(c.evicted() == 2);
  // An evicted connection that ends later is no error.
  c.leave(ids[0]);
  CHECK(c.pending() == 3);
}

TEST_CASE("one source gives way to itself before it displaces others", "[connections]") {
  connections c({.pending = 10, .pending_per_source = 2, .authenticated = 10});
  std::vector<std::string> closed;
  c.arrive("10.0.0.9", [&] { closed.push_back("other"); });
  for (int i = 0; i < 5; ++i) c.arrive("10.0.0.1", [&closed, i] { closed.push_back("flood " + std::to_string(i)); });
  CHECK(closed == std::vector<std::string>{"flood 0", "flood 1", "flood 2"});
  CHECK(c.pending() == 3);  // the other source's and the flood's newest two
}

TEST_CASE("an authenticated connection leaves the pending ones and is bounded", "[connections]") {
  connections c({.pending = 2, .pending_per_source = 2, .authenticated = 1});
  int closed = 0;
  const auto a = c.arrive("10.0.0.1", [&] { ++closed; });
  const auto b = c.arrive("10.0.0.2", [&] { ++closed; });
  CHECK(c.authenticate(a));
  CHECK(c.pending() == 1);
  CHECK(c.authenticated() == 1);
  CHECK_FALSE(c.authenticate(b));  // no authenticated slot left
  // A pending flood no longer touches an authenticated connection.
  for (int i = 0; i < 5; ++i) c.arrive("10.0.0.3", [&] { ++closed; });
  CHECK(c.authenticated() == 1);
  c.leave(a);
  CHECK(c.authenticated() == 0);
  CHECK(closed == 4);  // b and three of the flood gave way
}

TEST_CASE("a full house gives way on the side of the source with most pending connections", "[connections]") {
  connections c({.pending = 4, .pending_per_source = 8, .authenticated = 10});
  std::vector<std::string> closed;
  c.arrive("controller", [&] { closed.push_back("controller"); });  // the oldest of all
  for (int i = 0; i < 10; ++i) c.arrive("flood", [&closed, i] { closed.push_back("flood " + std::to_string(i)); });
  CHECK(std::find(closed.begin(), closed.end(), "controller") == closed.end());
  CHECK(closed.size() == 7);
  CHECK(c.pending() == 4);
}
