// Unit tests for common/auth: HMAC against RFC 4231, the psk file checks,
// handshake proofs and session key derivation.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include "common/auth.hpp"
#include "common/hash.hpp"

using namespace migrated;
namespace fs = std::filesystem;

namespace {

using testing::temp_dir;

fs::path write_key(const temp_dir& dir, const std::string& content, mode_t mode) {
  const fs::path file = dir.path / "psk";
  std::ofstream(file, std::ios::binary) << content;
  REQUIRE(::chmod(file.c_str(), mode) == 0);
  return file;
}

std::string hex(const auth::mac& m) { return to_hex(m); }

const auth::bytes nonce_a(auth::nonce_bytes, 0x11);
const auth::bytes nonce_b(auth::nonce_bytes, 0x22);

}  // namespace

TEST_CASE("hmac_sha256 matches RFC 4231", "[auth]") {
  SECTION("test case 1") {
    const auth::bytes key(20, 0x0b);
    CHECK(hex(auth::hmac_sha256(key, {auth::as_bytes("Hi There")})) ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  }
  SECTION("test case 2, data given in parts") {
    const auto key = auth::as_bytes("Jefe");
    const std::string expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const auto data = auth::as_bytes("what do ya want for nothing?");
    CHECK(hex(auth::hmac_sha256(key, {data})) == expected);
    CHECK(hex(auth::hmac_sha256(key, {auth::as_bytes("what do ya "), auth::as_bytes(""),
                                      auth::as_bytes("want for nothing?")})) == expected);
  }
  SECTION("test case 6, key longer than a block") {
    const auth::bytes key(131, 0xaa);
    CHECK(hex(auth::hmac_sha256(
              key, {auth::as_bytes("Test Using Larger Than Block-Size Key - Hash Key First")})) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
}

TEST_CASE("load_psk accepts a private key file", "[auth]") {
  temp_dir dir;
  const auto file = write_key(dir, "0123456789abcdef0123456789abcdef \n\t\n", 0600);
  auto key = auth::load_psk(file);
  REQUIRE(key);
  CHECK(std::string(key->key.begin(), key->key.end()) == "0123456789abcdef0123456789abcdef");
}

TEST_CASE("load_psk refuses a key others can read", "[auth]") {
  temp_dir dir;
  const auto [mode, text] = GENERATE(std::pair<mode_t, std::string>{0644, "0644"},
                                     std::pair<mode_t, std::string>{0640, "0640"},
                                     std::pair<mode_t, std::string>{0602, "0602"});
  const auto file = write_key(dir, "0123456789abcdef0123456789abcdef", mode);
  auto key = auth::load_psk(file);
  REQUIRE_FALSE(key);
  CHECK(key.error().code == errc::config);
  CHECK_THAT(key.error().message, Catch::Contains(text));
  CHECK_THAT(key.error().message, Catch::Contains(file.string()));
  CHECK_THAT(key.error().message, Catch::Contains("chmod 600"));
}

TEST_CASE("load_psk refuses short, empty and missing keys", "[auth]") {
  temp_dir dir;
  SECTION("short after trimming") {
    auto key = auth::load_psk(write_key(dir, "short-key\n\n      ", 0600));
    REQUIRE_FALSE(key);
    CHECK(key.error().code == errc::config);
    CHECK_THAT(key.error().message, Catch::Contains("at least 16"));
  }
  SECTION("only whitespace") {
    auto key = auth::load_psk(write_key(dir, " \n \n", 0600));
    REQUIRE_FALSE(key);
    CHECK(key.error().code == errc::config);
    CHECK_THAT(key.error().message, Catch::Contains("empty"));
  }
  SECTION("missing") {
    auto key = auth::load_psk(dir.path / "absent");
    REQUIRE_FALSE(key);
    CHECK(key.error().code == errc::not_found);
    CHECK_THAT(key.error().message, Catch::Contains("absent"));
  }
  SECTION("a directory") {
    REQUIRE(::chmod(dir.path.c_str(), 0700) == 0);
    auto key = auth::load_psk(dir.path);
    REQUIRE_FALSE(key);
    CHECK(key.error().code == errc::config);
  }
}

TEST_CASE("proof binds label, both nonces and both names", "[auth]") {
  const auth::psk key{auth::bytes(32, 0x5a)};
  const auto base = auth::proof(key, "server", nonce_a, nonce_b, "edge-a", "edge-b");
  CHECK(base == auth::proof(key, "server", nonce_a, nonce_b, "edge-a", "edge-b"));

  CHECK(base != auth::proof(key, "client", nonce_a, nonce_b, "edge-a", "edge-b"));
  CHECK(base != auth::proof(key, "server", nonce_b, nonce_b, "edge-a", "edge-b"));
  CHECK(base != auth::proof(key, "server", nonce_a, nonce_a, "edge-a", "edge-b"));
  CHECK(base != auth::proof(key, "server", nonce_a, nonce_b, "edge-x", "edge-b"));
  CHECK(base != auth::proof(key, "server", nonce_a, nonce_b, "edge-a", "edge-x"));
  CHECK(base != auth::proof(key, "server", nonce_b, nonce_a, "edge-a", "edge-b"));
  CHECK(base != auth::proof(key, "server", nonce_a, nonce_b, "edge-b", "edge-a"));
  CHECK(base != auth::proof(auth::psk{auth::bytes(32, 0x5b)}, "server", nonce_a, nonce_b,
                            "edge-a", "edge-b"));
}

TEST_CASE("proof fields cannot be shifted into one another", "[auth]") {
  const auth::psk key{auth::bytes(32, 0x5a)};
  CHECK(auth::proof(key, "server", nonce_a, nonce_b, "ab", "c") !=
        auth::proof(key, "server", nonce_a, nonce_b, "a", "bc"));
  const auth::bytes longer(nonce_a.size() + 1, 0x11);
  const auth::bytes shorter(nonce_b.begin() + 1, nonce_b.end());
  CHECK(auth::proof(key, "server", nonce_a, nonce_b, "n", "m") !=
        auth::proof(key, "server", longer, shorter, "n", "m"));
}

TEST_CASE("session keys differ per direction and per session", "[auth]") {
  const auth::psk key{auth::bytes(32, 0x5a)};
  const auto keys = auth::derive_session_keys(key, nonce_a, nonce_b);
  CHECK(keys.client_to_server.size() == auth::mac_bytes);
  CHECK(keys.server_to_client.size() == auth::mac_bytes);
  CHECK(keys.client_to_server != keys.server_to_client);

  const auto again = auth::derive_session_keys(key, nonce_a, nonce_b);
  CHECK(again.client_to_server == keys.client_to_server);
  CHECK(again.server_to_client == keys.server_to_client);

  const auto swapped = auth::derive_session_keys(key, nonce_b, nonce_a);
  CHECK(swapped.client_to_server != keys.client_to_server);
  CHECK(swapped.server_to_client != keys.server_to_client);

  const auto proof = auth::proof(key, "server", nonce_a, nonce_b, "", "");
  CHECK(auth::bytes(proof.begin(), proof.end()) != keys.client_to_server);
}

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
  const auto a = auth::random_bytes(auth::nonce_bytes);
  const auto b = auth::random_bytes(auth::nonce_bytes);
  CHECK(a.size() == auth::nonce_bytes);
  CHECK(a != b);
  CHECK(auth::random_u64() != auth::random_u64());
  CHECK(auth::random_bytes(0).empty());
}
