// tls_policy.cpp: protocol lists and cipher grades, as Postfix parses them.
#include "tls/tls_policy.hpp"

#include <openssl/ssl.h>

#include <strings.h>

#include <array>

#include "config/config.hpp"

namespace mta::tls {
namespace {

struct ProtocolName {
  std::string_view name;
  unsigned bit;
  int version;
};

constexpr std::array<ProtocolName, 6> kProtocols{{
    {"SSLv2", kSSLv2, SSL2_VERSION},
    {"SSLv3", kSSLv3, SSL3_VERSION},
    {"TLSv1", kTLSv1, TLS1_VERSION},
    {"TLSv1.1", kTLSv1_1, TLS1_1_VERSION},
    {"TLSv1.2", kTLSv1_2, TLS1_2_VERSION},
    {"TLSv1.3", kTLSv1_3, TLS1_3_VERSION},
}};

bool equal_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

const ProtocolName* find_protocol(std::string_view name) {
  for (const auto& p : kProtocols)
    if (equal_nocase(p.name, name)) return &p;
  return nullptr;
}

// A version bound: "None" (no bound) or a protocol from SSLv3 up; Postfix's
// version table has no SSLv2.
std::optional<int> parse_bound(std::string_view name) {
  if (equal_nocase(name, "None")) return 0;
  const ProtocolName* p = find_protocol(name);
  if (p == nullptr || p->bit == kSSLv2) return std::nullopt;
  return p->version;
}

// Splits on Postfix's separators for these lists: blanks, commas, colons.
template <typename F>
bool for_each_token(std::string_view list, F&& f) {
  constexpr std::string_view kSep = " \t\r\n,:";
  size_t pos = 0;
  while ((pos = list.find_first_not_of(kSep, pos)) != std::string_view::npos) {
    size_t end = list.find_first_of(kSep, pos);
    if (end == std::string_view::npos) end = list.size();
    if (!f(list.substr(pos, end - pos))) return false;
    pos = end;
  }
  return true;
}

}  // namespace

uint64_t ProtocolPolicy::ssl_options() const {
  uint64_t options = 0;
  if (excluded & kSSLv2) options |= SSL_OP_NO_SSLv2;
  if (excluded & kSSLv3) options |= SSL_OP_NO_SSLv3;
  if (excluded & kTLSv1) options |= SSL_OP_NO_TLSv1;
  if (excluded & kTLSv1_1) options |= SSL_OP_NO_TLSv1_1;
  if (excluded & kTLSv1_2) options |= SSL_OP_NO_TLSv1_2;
  if (excluded & kTLSv1_3) options |= SSL_OP_NO_TLSv1_3;
  return options;
}

std::optional<ProtocolPolicy> parse_protocols(std::string_view list) {
  ProtocolPolicy policy;
  unsigned include = 0;
  unsigned exclude = 0;
  bool ok = for_each_token(list, [&](std::string_view tok) {
    if (tok.starts_with(">=") || tok.starts_with("<=")) {
      std::optional<int> v = parse_bound(tok.substr(2));
      if (!v) return false;
      (tok[0] == '>' ? policy.min_version : policy.max_version) = *v;
      return true;
    }
    bool negate = tok.front() == '!';
    const ProtocolName* p = find_protocol(negate ? tok.substr(1) : tok);
    if (p == nullptr) return false;
    (negate ? exclude : include) |= p->bit;
    return true;
  });
  if (!ok) return std::nullopt;
  policy.excluded = include != 0 ? (exclude | (kKnownProtocols & ~include)) : exclude;
  return policy;
}

CipherGrade parse_cipher_grade(std::string_view grade) {
  static constexpr std::array<std::pair<std::string_view, CipherGrade>, 5> kGrades{{
      {"export", CipherGrade::export_grade},
      {"low", CipherGrade::low},
      {"medium", CipherGrade::medium},
      {"high", CipherGrade::high},
      {"null", CipherGrade::null},
  }};
  for (const auto& [name, code] : kGrades)
    if (equal_nocase(name, grade)) return code;
  return CipherGrade::invalid;
}

std::optional<std::string> cipher_list(const config::Config& config, std::string_view grade,
                                       std::string_view exclusions, std::string& warning) {
  std::string list;
  switch (parse_cipher_grade(grade)) {
    case CipherGrade::invalid:
      warning = "invalid cipher grade: \"" + std::string(grade) + "\"";
      return std::nullopt;
    case CipherGrade::export_grade: list = config.get("tls_export_cipherlist"); break;
    case CipherGrade::low: list = config.get("tls_low_cipherlist"); break;
    case CipherGrade::medium: list = config.get("tls_medium_cipherlist"); break;
    case CipherGrade::high: list = config.get("tls_high_cipherlist"); break;
    case CipherGrade::null: list = config.get("tls_null_cipherlist"); break;
  }
  bool ok = for_each_token(exclusions, [&](std::string_view tok) {
    if (std::string_view("!+-@").find(tok.front()) != std::string_view::npos) {
      warning = "invalid unary '!+-@' in cipher exclusion: " + std::string(tok);
      return false;
    }
    list += ":!";
    list += tok;
    return true;
  });
  if (!ok) return std::nullopt;
  return list;
}

std::string server_exclusions(const config::Config& config, std::string_view prefix,
                              bool mandatory, bool ask_client_cert) {
  std::string result;
  auto add = [&](const std::string& more) {
    if (more.empty()) return;
    if (!result.empty()) result += ' ';
    result += more;
  };
  std::string p(prefix);
  add(config.get(p + "_tls_exclude_ciphers"));
  if (mandatory) add(config.get(p + "_tls_mandatory_exclude_ciphers"));
  if (ask_client_cert) add("aNULL");
  return result;
}

std::string_view version_name(int version) {
  for (const auto& p : kProtocols)
    if (p.version == version) return p.name;
  return {};
}

}  // namespace mta::tls
