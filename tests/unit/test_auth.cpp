// Unit tests for common/auth: constant-time comparison and randomness.
// (Identities and signatures: test_credentials.cpp.)
#include <string>

#include <catch2/catch.hpp>

#include "common/auth.hpp"

using namespace migrated;

TEST_CASE("equal compares contents and lengths", "[auth]") {
  const auth::bytes a{1, 2, 3};
  const auth::bytes b{1, 2, 3};
  const auth::bytes c{1, 2, 4};
  const auth::bytes shorter{1, 2};
  CHECK(auth::equal(a, b));
  CHECK_FALSE(auth::equal(a, c));
  CHECK_FALSE(auth::equal(a, shorter));
  CHECK_FALSE(auth::equal(shorter, a));
  CHECK(auth::equal(auth::bytes{}, auth::bytes{}));
  CHECK_FALSE(auth::equal(auth::bytes{}, a));
}

TEST_CASE("random bytes are random enough to differ", "[auth]") {
  const auto a = auth::random_bytes(32);
  const auto b = auth::random_bytes(32);
  CHECK(a.size() == 32);
  CHECK(a != b);
  CHECK(auth::random_u64() != auth::random_u64());
  CHECK(auth::random_bytes(0).empty());
}

TEST_CASE("as_bytes views the characters of a string", "[auth]") {
  const std::string s = "ab\0c";
  const auto v = auth::as_bytes(std::string_view("ab\0c", 4));
  REQUIRE(v.size() == 4);
  CHECK(v[0] == 'a');
  CHECK(v[2] == 0);
  CHECK(v[3] == 'c');
}
