// dovecot_protocol.hpp: the pure parts of Dovecot's auth client protocol
// (version 1.x), as a client such as an SMTP server speaks it.
//
// Lines are tab-separated fields ending in LF.  The client opens with
// "VERSION\t1\t2" and "CPID\t<pid>"; the server answers VERSION, one MECH
// line per mechanism (name, then flags such as plaintext or anonymous),
// SPID, CUID, COOKIE and DONE.  A request is "AUTH\t<id>\t<mech>\t<args>"
// (service=, nologin, lip=, rip=, lport=, rport=, secured, resp=<base64>),
// answered by "CONT\t<id>\t<base64>" (the client replies with its own CONT),
// "OK\t<id>\t<args>" (user=) or "FAIL\t<id>\t<args>" (reason=, temp, user=).
// Values in args are escaped: \001 -> \0011, TAB -> \001t, LF -> \001n,
// CR -> \001r.  Nothing here does I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sasl/security_options.hpp"

namespace mta::sasl::dovecot {

inline constexpr unsigned kMajorVersion = 1;
inline constexpr unsigned kMinorVersion = 2;

std::string tab_escape(std::string_view value);
std::string tab_unescape(std::string_view value);
// The raw (still escaped) fields of one line without its LF.
std::vector<std::string_view> split_fields(std::string_view line);

// A MECH line's mechanism and flags.
struct Mechanism {
  std::string name;
  bool anonymous = false, plaintext = false, dictionary = false, active = false;
  bool forward_secrecy = false, mutual_auth = false, private_mech = false;
};
// Parses "MECH\tNAME\tflag..."; nullopt when the line is not one.
std::optional<Mechanism> parse_mech(std::string_view line);
// Whether the security options allow a mechanism (private ones never).
bool mechanism_allowed(const Mechanism& mech, const SecurityOptions& options);

// Standard base64 (RFC 4648, with padding); "" is valid.
bool is_valid_base64(std::string_view text);

// The fields of an AUTH request.
struct AuthRequest {
  unsigned id = 0;
  std::string mechanism, service;
  std::string local_ip, remote_ip, local_port, remote_port;
  bool secured = false;
  std::optional<std::string> initial_response;  // base64; "" sends an empty resp=
};
// The request line with its LF.
std::string format_auth(const AuthRequest& request);
std::string format_cont(unsigned id, std::string_view response_base64);

// A server reply to a request.
struct AuthReply {
  enum class Kind { ok, cont, fail } kind = Kind::fail;
  unsigned id = 0;
  std::string data;    // CONT: the base64 challenge
  std::string user;    // OK/FAIL: user= (unescaped), "" if absent
  std::string reason;  // FAIL: reason= (unescaped), "" if absent
  bool has_user = false, has_reason = false, temp = false;
};
// nullopt when the line is no OK, CONT or FAIL with a numeric id.
std::optional<AuthReply> parse_reply(std::string_view line);

}  // namespace mta::sasl::dovecot
