// Unit tests for common/credentials: loading a node's certificate and key
// (and every refusal), the identity a certificate states, and signatures
// made and verified with a fleet's certificates.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/auth.hpp"
#include "common/credentials.hpp"
#include "fleet.hpp"

using namespace migrated;
using testing::fleet;
using testing::other_fleet;
using testing::shared_fleet;
namespace fs = std::filesystem;

namespace {

using bytes = std::vector<std::uint8_t>;

const bytes message_bytes = [] {
  const std::string m = "a message worth signing";
  return bytes(m.begin(), m.end());
}();

result<node_identity> identity_of_file(const fs::path& pem) {
  auto cert = testing::read_certificate(pem);
  return identity_of(cert.get());
}

}  // namespace

TEST_CASE("credentials made by migrated-ca load and name their node", "[credentials]") {
  fleet& f = shared_fleet();
  SECTION("a peer") {
    const tls_files files = f.issue("edge-a");
    auto c = credentials::load(files);
    INFO((c ? std::string() : c.error().message));
    REQUIRE(c);
    CHECK(c->self().name == "edge-a");
    CHECK(c->self().role == node_role::peer);
    CHECK(c->files().cert == files.cert);
    CHECK(c->certificate() != nullptr);
    CHECK(c->key() != nullptr);
    CHECK(c->trust() != nullptr);
    CHECK(bytes(c->certificate_der().begin(), c->certificate_der().end()) == testing::der_of(files.cert));
    CHECK(c->certificate_der().size() <= credentials::max_certificate_bytes);
  }
  SECTION("a controller") {
    auto c = credentials::load(f.issue("ctl-1", node_role::controller));
    REQUIRE(c);
    CHECK(c->self().name == "ctl-1");
    CHECK(c->self().role == node_role::controller);
  }
}

TEST_CASE("a key others may read is refused, naming its mode", "[credentials]") {
  const tls_files files = shared_fleet().issue("edge-a");
  const auto [mode, text] = GENERATE(std::pair<mode_t, std::string>{0640, "0640"},
                                     std::pair<mode_t, std::string>{0604, "0604"},
                                     std::pair<mode_t, std::string>{0620, "0620"});
  REQUIRE(::chmod(files.key.c_str(), mode) == 0);
  auto c = credentials::load(files);
  REQUIRE_FALSE(c);
  CHECK(c.error().code == errc::config);
  CHECK_THAT(c.error().message, Catch::Contains(text));
  CHECK_THAT(c.error().message, Catch::Contains(files.key.string()));
  CHECK_THAT(c.error().message, Catch::Contains("chmod 600"));
}

TEST_CASE("credentials that do not belong together are refused", "[credentials]") {
  fleet& f = shared_fleet();
  tls_files files = f.issue("edge-a");
  std::string words;
  errc expected = errc::config;
  SECTION("the key of another certificate") {
    files.key = f.issue("edge-b").key;
    words = "is not the key of";
  }
  SECTION("a certificate of another fleet's CA") {
    files.cert = other_fleet().issue("edge-a").cert;
    files.key = fs::path(files.cert).replace_extension(".key");
    words = "does not verify";
    expected = errc::auth;
  }
  SECTION("a CA that is not this certificate's") {
    files.ca = other_fleet().ca_cert();
    words = "does not verify";
    expected = errc::auth;
  }
  SECTION("an expired certificate") {
    files = f.issue_raw("/O=migrated/OU=peer/CN=edge-old", true);
    words = "expired";
    expected = errc::auth;
  }
  SECTION("a certificate without a role") {
    files = f.issue_raw("/O=migrated/CN=edge-a");
    words = "role";
    expected = errc::auth;
  }
  SECTION("a missing key") {
    files.key = files.key.parent_path() / "absent.key";
    words = "absent.key";
    expected = errc::not_found;
  }
  SECTION("a key file that holds no key") {
    std::ofstream(files.key, std::ios::trunc) << "not a key\n";
    words = "not a PEM private key";
  }
  SECTION("a CA file that holds no certificate") {
    files.ca = files.key.parent_path() / "bad-ca.crt";
    std::ofstream(files.ca) << "nothing\n";
    words = "tls.ca";
  }
  SECTION("the CA's certificate in place of the node's") {
    files.cert = files.ca;  // a certificate, but the CA's, whose key this is not
    words = "is not the key of";
  }
  auto c = credentials::load(files);
  REQUIRE_FALSE(c);
  INFO(c.error().message);
  CHECK(c.error().code == expected);
  CHECK_THAT(c.error().message, Catch::Contains(words));
}

TEST_CASE("a certificate names its node by CN and its role by OU", "[credentials]") {
  fleet& f = shared_fleet();
  SECTION("peer") {
    auto who = identity_of_file(f.issue("edge-b").cert);
    REQUIRE(who);
    CHECK(who->name == "edge-b");
    CHECK(who->role == node_role::peer);
  }
  SECTION("controller") {
    auto who = identity_of_file(f.issue("ctl-2", node_role::controller).cert);
    REQUIRE(who);
    CHECK(who->name == "ctl-2");
    CHECK(who->role == node_role::controller);
  }
  SECTION("OU and CN in another order in the subject") {
    auto who = identity_of_file(f.issue_raw("/CN=edge-c/OU=controller").cert);
    REQUIRE(who);
    CHECK(who->name == "edge-c");
    CHECK(who->role == node_role::controller);
  }
  SECTION("no certificate at all") {
    auto who = identity_of(nullptr);
    REQUIRE_FALSE(who);
    CHECK(who.error().code == errc::auth);
  }
}

TEST_CASE("a certificate that states no single valid name and role is refused", "[credentials]") {
  fleet& f = shared_fleet();
  std::string subject;
  std::string words;
  SECTION("no OU") {
    subject = "/O=migrated/CN=edge-a";
    words = "no role (OU)";
  }
  SECTION("an unknown OU") {
    subject = "/O=migrated/OU=admin/CN=edge-a";
    words = "unknown role 'admin'";
  }
  SECTION("two OUs") {
    subject = "/O=migrated/OU=peer/OU=controller/CN=edge-a";
    words = "more than one role";
  }
  SECTION("no CN") {
    subject = "/O=migrated/OU=peer";
    words = "no node (CN)";
  }
  SECTION("two CNs") {
    subject = "/O=migrated/OU=peer/CN=edge-a/CN=edge-b";
    words = "more than one node";
  }
  SECTION("an invalid name") {
    subject = "/O=migrated/OU=peer/CN=edge a;rm";
    words = "invalid node";
  }
  SECTION("a name of dots") {
    subject = "/O=migrated/OU=peer/CN=..";
    words = "invalid node";
  }
  auto who = identity_of_file(f.issue_raw(subject).cert);
  REQUIRE_FALSE(who);
  INFO(who.error().message);
  CHECK(who.error().code == errc::auth);
  CHECK_THAT(who.error().message, Catch::Contains(words));
}

TEST_CASE("a signature verifies against the signer's certificate and names it", "[credentials]") {
  fleet& f = shared_fleet();
  const credentials& a = f.node("edge-a");
  const credentials& b = f.node("edge-b");
  const bytes signature = a.sign(message_bytes);
  CHECK_FALSE(signature.empty());
  // Any member of the fleet verifies it, the signer included.
  for (const credentials* verifier : {&a, &b}) {
    auto who = verifier->verify_signed(a.certificate_der(), message_bytes, signature);
    INFO((who ? std::string() : who.error().message));
    REQUIRE(who);
    CHECK(who->name == "edge-a");
    CHECK(who->role == node_role::peer);
  }
  const credentials& ctl = f.node("ctl-1", node_role::controller);
  auto who = b.verify_signed(ctl.certificate_der(), message_bytes, ctl.sign(message_bytes));
  REQUIRE(who);
  CHECK(who->name == "ctl-1");
  CHECK(who->role == node_role::controller);
}

TEST_CASE("verify_signed refuses anything that does not verify", "[credentials]") {
  fleet& f = shared_fleet();
  const credentials& a = f.node("edge-a");
  const credentials& b = f.node("edge-b");
  bytes der(a.certificate_der().begin(), a.certificate_der().end());
  bytes message = message_bytes;
  bytes signature = a.sign(message_bytes);
  std::string words;
  SECTION("a flipped signature byte") {
    signature[signature.size() / 2] ^= 0x01;
    words = "does not verify";
  }
  SECTION("a truncated signature") {
    signature.pop_back();
    words = "does not verify";
  }
  SECTION("no signature") {
    signature.clear();
  }
  SECTION("a flipped message byte") {
    message.back() ^= 0x80;
    words = "does not verify";
  }
  SECTION("another node's certificate with the same signature") {
    der.assign(b.certificate_der().begin(), b.certificate_der().end());
    words = "signature of edge-b";
  }
  SECTION("a certificate of another fleet, with its own valid signature") {
    const credentials& stranger = other_fleet().node("edge-a");
    der.assign(stranger.certificate_der().begin(), stranger.certificate_der().end());
    signature = stranger.sign(message_bytes);
    words = "does not verify";
  }
  SECTION("an expired certificate of this fleet") {
    der = testing::der_of(f.issue_raw("/O=migrated/OU=peer/CN=edge-old", true).cert);
    words = "expired";
  }
  SECTION("a certificate of this fleet with no role") {
    auto files = f.issue_raw("/O=migrated/CN=edge-x");
    der = testing::der_of(files.cert);
    words = "role";
  }
  SECTION("a flipped byte in the certificate") {
    der[der.size() - 10] ^= 0x01;  // inside the CA's signature
  }
  SECTION("garbage DER") {
    der = auth::random_bytes(300);
    words = "not a certificate";
  }
  SECTION("a certificate with bytes after it") {
    der.push_back(0);
    words = "not a certificate";
  }
  SECTION("no certificate") {
    der.clear();
  }
  SECTION("oversize DER") {
    der.resize(credentials::max_certificate_bytes + 1, 0x30);
    words = std::to_string(credentials::max_certificate_bytes);
  }
  auto who = b.verify_signed(der, message, signature);
  REQUIRE_FALSE(who);
  INFO(who.error().message);
  CHECK(who.error().code == errc::auth);
  if (!words.empty()) CHECK_THAT(who.error().message, Catch::Contains(words));
}
