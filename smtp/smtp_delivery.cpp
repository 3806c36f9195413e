// smtp_delivery.cpp: one delivery request (Agent::deliver): the server
// addresses of the next hop (smtp_addr.c), the connections
// (smtp_connect.c), the SMTP/LMTP dialogue (smtp_proto.c) and the
// per-recipient results (smtp_trouble.c, smtp_rcpt.c).  See smtp_client.hpp.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "ipc/scache_client.hpp"
#include "log/log.hpp"
#include "mime/mime_state.hpp"
#include "queue/queue_file.hpp"
#include "sasl/cyrus_client.hpp"
#include "smtp/smtp_client.hpp"
#include "smtp/smtp_dane.hpp"
#include "smtp/smtp_reply.hpp"
#include "tls/tls_session.hpp"
#include "tls/tls_stream.hpp"
#include "tls/tls_verify.hpp"

namespace mta::smtp {
namespace proto = ipc::proto;

namespace {

// The DANE policy and its cache of TLSA answers live as long as the
// process, as Postfix's policy and TLSA caches do (smtp_dane.hpp).
dane::Policy& dane_policy(const Settings& s) {
  static dane::ResolverDns dns;
  static dane::Policy policy(s.dane, dns);
  return policy;
}

// Server features (SMTP_FEATURE_*).
constexpr unsigned kEsmtp = 1 << 0, k8BitMime = 1 << 1, kPipelining = 1 << 2, kSize = 1 << 3,
                   kStartTls = 1 << 4, kDsn = 1 << 5, kSmtpUtf8 = 1 << 6, kBestMx = 1 << 7,
                   kAuth = 1 << 8;
// ehlo_mask bits (smtp_settings.cpp's table order).
constexpr unsigned kMask8BitMime = 1 << 0, kMaskAuth = 1 << 1, kMaskPipelining = 1 << 3, kMaskSize = 1 << 4,
                   kMaskStartTls = 1 << 9, kMaskDsn = 1 << 10, kMaskSmtpUtf8 = 1 << 13;
// SMTPUTF8 request flags (smtputf8.h).
constexpr int kUtf8Requested = 1 << 0;

// Protocol states, with Postfix's texts (xfer_states, xfer_request).
enum XferState { kMail, kRcpt, kData, kDot, kAbort, kQuit };
const char* const kXferStates[] = {"sending MAIL FROM", "sending RCPT TO", "sending DATA command",
                                   "sending end of data -- message may be sent more than once",
                                   "sending final RSET", "sending QUIT"};
const char* const kXferRequest[] = {"MAIL FROM command", "RCPT TO command", "DATA command",
                                    "end of DATA command", "final RSET command", "QUIT command"};

enum class Mark { none, keep, drop };

proto::MsgStats::Time now_time() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return {tv.tv_sec, tv.tv_usec};
}

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// xtext (RFC 3461): '+', '=' and bytes outside 33..126 as "+XX".
std::string xtext(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += '+';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// quote_821_local(): quote the local part when it needs quotes.
std::string quote_821(std::string_view addr) {
  size_t at = addr.rfind('@');
  std::string_view local = at == std::string_view::npos ? addr : addr.substr(0, at);
  bool needs = local.empty() ? false : false;
  for (size_t i = 0; i < local.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(local[i]);
    if (c < 33 || c == 127 || std::strchr("<>()[]\\,;:\"@", c) || (c == '.' && (i == 0 || i + 1 == local.size() || local[i - 1] == '.')))
      needs = true;
  }
  if (!needs) return std::string(addr);
  std::string out = "\"";
  for (char c : local) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  if (at != std::string_view::npos) out += addr.substr(at);
  return out;
}

const char* dsn_ret_text(int ret) { return ret == 1 ? "FULL" : ret == 2 ? "HDRS" : ""; }

std::string dsn_notify_text(int notify) {
  if (notify & deliver::kDsnNotifyNever) return "NEVER";
  std::string out;
  auto add = [&](const char* w) { out += out.empty() ? w : std::string(",") + w; };
  if (notify & deliver::kDsnNotifySuccess) add("SUCCESS");
  if (notify & deliver::kDsnNotifyFailure) add("FAILURE");
  if (notify & deliver::kDsnNotifyDelay) add("DELAY");
  return out;
}

struct Session {
  std::unique_ptr<tls::Stream> stream;
  std::string host, addr;
  unsigned port = 0;
  std::string namaddr, namaddrport;
  unsigned features = 0;
  bool tls_active = false;
  bool dead = false;  // no more I/O (a failed TLS handshake)
  bool tls_retry_plain = false;
  bool tls_verified = false;  // the certificate matched (verify, secure)
  TlsLevel tls_level = TlsLevel::none;
  const TlsPolicy* tls_policy = nullptr;  // match names, overrides
  const dane::Decision* dane = nullptr;    // DANE: TLSA records that must authenticate the server
  std::string dest;          // the next hop as given, "[host]:port" (SASL lookups)
  std::string sasl_mechs;    // the server's AUTH list after smtp_sasl_mechanism_filter
  bool sasl_used = false;    // authenticated: never cached
  // Connection caching (smtp.h): expire_time > 0: the session may be saved
  // until then (wall clock); 0: not to be cached; < 0: throttled (a failed
  // session, which also keeps the next hop's cache label for the next
  // server).  reuse_count: how often it was taken from the cache.
  long long expire_time = 0;
  int reuse_count = 0;
  bool from_cache = false;
  bool rset_rejected = false;
};

class DeliveryRun {
 public:
  DeliveryRun(Agent& agent, agent::Delivery& d) : a_(agent), s_(agent.settings()), d_(d), req_(d.request) {
    stats_ = req_.stats;
    for (size_t i = 0; i < req_.recipients.size(); ++i) todo_.push_back(i);
    mark_.assign(req_.recipients.size(), Mark::none);
    flags_ = agent::trace_flags(req_.flags);
  }
  int run();

 private:
  // ---- results (smtp_trouble.c)
  void fill_dsn(const std::string& mta_name, const Reply* reply, std::string status, std::string reason);
  void bulk_fail(bool throttle);
  int site_fail(const std::string& mta_name, const Reply* reply, const std::string& reason) {
    fill_dsn(mta_name, reply, reply ? reply->dsn : "", reason);
    bulk_fail(true);
    return -1;
  }
  int fake_fail(const char* status, const std::string& reason) {
    fill_dsn("", nullptr, status, reason);
    bulk_fail(true);
    return -1;
  }
  void rcpt_fail(size_t idx, const std::string& mta_name, const Reply& reply, const std::string& reason);
  void rcpt_done(size_t idx, const Reply& reply);
  int stream_except(tls::Stream::Error kind, const std::string& where);
  int report(const char* what, size_t idx, deliver::Dsn dsn);
  size_t rcpt_left() const { return todo_.size(); }
  void rcpt_cleanup();

  // ---- addresses (smtp_addr.c)
  std::vector<ServerAddress> domain_addr(const std::string& name);
  std::vector<ServerAddress> host_addr(const std::string& name);
  // As Postfix with smtp_dns_support_level = dnssec: every question asks
  // for DNSSEC (which also feeds the process's dnssec_probe).
  dns::Status lookup(const std::string& name, int type, std::vector<dns::Record>& out, std::string* why) {
    return s_.dane.dnssec ? a_.resolver().query_dnssec(name, type, out, why) : a_.resolver().query(name, type, out, why);
  }
  void addr_one(std::vector<ServerAddress>& out, const std::string& host, unsigned pref);
  void sort_addresses(std::vector<ServerAddress>& list, bool shuffle);

  // ---- connections (smtp_connect.c)
  void connect_inet(const std::string& nexthop);
  void connect_site(const std::string& dest, bool final_nexthop, bool first_nexthop);
  TlsPolicy tls_policy_for(const std::string& dest);
  void connect_local(const std::string& path);
  std::unique_ptr<Session> connect_addr(const ServerAddress& a, unsigned port);
  std::unique_ptr<Session> connect_sock(int sock, const sockaddr* sa, socklen_t len, const std::string& host,
                                        const std::string& addr, unsigned port);
  void cleanup_session();

  // ---- connection cache (smtp_reuse.c, smtp_session.c)
  void cache_policy(const std::string& domain);
  bool session_cached() const { return session_ && !session_->dead && session_->expire_time > 0; }
  bool session_expired() const;
  std::string cache_key(const std::string& where, const std::string& port) const;
  void save_session();
  std::unique_ptr<Session> activate_session(int fd, const std::string& dest_prop, const std::string& endp_prop,
                                            const std::string& label);
  bool reuse_common(std::unique_ptr<Session> s);
  bool reuse_nexthop();
  bool reuse_addr(const ServerAddress& a, unsigned port);
  int reuse_session(std::vector<ServerAddress>& list, unsigned best_pref, unsigned port, bool final_nexthop);
  void update_addr_list(std::vector<ServerAddress>& list, const std::string& addr, int session_count);
  int rset_probe();

  // ---- the dialogue (smtp_proto.c)
  int helo(bool in_starttls);
  int start_tls();
  void sasl_offer(const std::string& words);
  int sasl_login();
  // The password table's entry for this sender, server or next hop, or
  // nullopt; a lookup error counts as an entry (the safe side).
  std::optional<maps::Result> sasl_credentials();
  // Postfix's PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE: opportunistic
  // TLS failed, the message has waited minimal_backoff_time, and no
  // credentials would go out in the clear.
  bool plaintext_fallback_ok();
  void quit();
  int xfer();
  Reply read_reply();
  bool send_body();
  bool mime_downgrade() const;
  std::string mail_command();
  std::string rcpt_command(const proto::Recipient& r);
  long long state_timeout(int st) const;

  Agent& a_;
  const Settings& s_;
  agent::Delivery& d_;
  const proto::DeliverRequest& req_;
  proto::MsgStats stats_;
  int flags_ = 0;
  std::vector<size_t> todo_;  // indices of the recipients still to do
  std::vector<Mark> mark_;
  deliver::Dsn why_;
  bool has_why_ = false;
  bool final_server_ = false;
  bool completed_session_ = false;  // some server finished a transaction for this request
  bool loop_detect_ = false;
  bool last_site_fallback_ = false;  // the last destination tried was a fallback relay
  std::string nexthop_domain_;
  int status_ = 0;
  std::unique_ptr<Session> session_;
  // Connection caching for this request: look up (load) and save (store)
  // connections; the next hop under which the first good session is saved
  // (empty: none, or already used); addresses of the sessions reused.
  bool conn_load_ = false;
  bool conn_store_ = false;
  std::string scache_nexthop_;
  std::vector<std::string> cache_used_;
};

// ---------------------------------------------------------------- results

void DeliveryRun::fill_dsn(const std::string& mta_name, const Reply* reply, std::string status, std::string reason) {
  deliver::Dsn d;
  if (!mta_name.empty() && !status.empty() && status[0] != '4' && status[0] != '5') {
    reason = "Protocol error: " + reason;
    status = "5.5.0";
  }
  d.status = status;
  d.reason = reason;
  if (!mta_name.empty()) {
    d.mtype = "dns";
    d.mname = mta_name;
  }
  if (reply) {
    d.dtype = "smtp";
    d.dtext = reply->flat();
  }
  why_ = d;
  has_why_ = true;
}

int DeliveryRun::report(const char* what, size_t idx, deliver::Dsn dsn) {
  const proto::Recipient& r = req_.recipients[idx];
  deliver::StatusReporter rep(a_.reporter(), req_.queue_id, stats_, session_ ? session_->namaddrport : "none");
  int rc;
  if (std::strcmp(what, "sent") == 0) {
    rc = rep.sent(flags_, r, std::move(dsn));
    if (rc == 0 && (req_.flags & proto::kDelReqFlagSuccess)) agent::mark_done(d_, r);
  } else {
    rc = dsn.temporary() ? rep.defer_append(flags_, r, std::move(dsn)) : rep.bounce_append(flags_, r, std::move(dsn));
    if (rc == 0) agent::mark_done(d_, r);
  }
  return rc;
}

void DeliveryRun::bulk_fail(bool throttle) {
  // A failed session is not cached (DONT_CACHE_THROTTLED_SESSION).
  if (throttle && session_) session_->expire_time = -1;
  bool soft = !why_.status.empty() && why_.status[0] == '4';
  bool soft_bounce = !why_.status.empty() && why_.status[0] == '5' && a_.reporter().soft_bounce;
  if ((soft || soft_bounce) && !final_server_) {
    log::info("%s: %s", req_.queue_id.c_str(), why_.reason.c_str());
    for (size_t idx : todo_)
      if (mark_[idx] == Mark::none) mark_[idx] = Mark::keep;
    return;
  }
  if (stats_.conn_setup_done.sec == 0) {
    stats_.conn_setup_done = now_time();
    stats_.deliver_done = stats_.conn_setup_done;
  } else {
    stats_.deliver_done = now_time();
  }
  int aggregate = 0;
  for (size_t idx : todo_) {
    if (mark_[idx] != Mark::none) continue;
    aggregate |= report("fail", idx, why_);
    mark_[idx] = Mark::drop;
  }
  status_ |= aggregate;
  // As Postfix: a failure to get through to the next hop (throttle) that
  // left mail deferred is the destination's fault, and qmgr is told, so
  // that its concurrency shrinks and, past the failed cohort limit, it is
  // marked dead for a while instead of tried again for every message.
  if (throttle && aggregate != 0 && !completed_session_ && d_.hop_status.status.empty()) {
    proto::Dsn& hop = d_.hop_status;
    hop.status = why_.status;
    hop.dtype = why_.dtype;
    hop.dtext = why_.dtext;
    hop.mtype = why_.mtype;
    hop.mname = why_.mname;
    hop.action = "delayed";
    hop.reason = why_.reason;
  }
}

void DeliveryRun::rcpt_fail(size_t idx, const std::string& mta_name, const Reply& reply, const std::string& reason) {
  fill_dsn(mta_name, &reply, reply.dsn, reason);
  bool soft = why_.status[0] == '4';
  bool soft_bounce = why_.status[0] == '5' && a_.reporter().soft_bounce;
  if ((soft || soft_bounce) && !final_server_) {
    log::info("%s: %s", req_.queue_id.c_str(), why_.reason.c_str());
    mark_[idx] = Mark::keep;
    return;
  }
  status_ |= report("fail", idx, why_);
  mark_[idx] = Mark::drop;
}

void DeliveryRun::rcpt_done(size_t idx, const Reply& reply) {
  deliver::Dsn d;
  d.status = reply.dsn;
  d.reason = reply.flat();
  d.mtype = "dns";
  d.mname = session_->host;
  d.dtype = "smtp";
  d.dtext = reply.flat();
  // A server that announced DSN does the SUCCESS notification itself; a
  // success is "relayed", unless an LMTP server without DSN is final
  // (lmtp_assume_final).
  proto::Recipient r = req_.recipients[idx];
  if (session_->features & kDsn) r.dsn_notify &= ~deliver::kDsnNotifySuccess;
  d.action = !(session_->features & kDsn) && s_.lmtp && s_.lmtp_assume_final ? "delivered" : "relayed";
  deliver::StatusReporter rep(a_.reporter(), req_.queue_id, stats_, session_->namaddrport);
  int rc = rep.sent(flags_, r, std::move(d));
  if (rc == 0 && (req_.flags & proto::kDelReqFlagSuccess)) agent::mark_done(d_, r);
  status_ |= rc;
  mark_[idx] = Mark::drop;
}

int DeliveryRun::stream_except(tls::Stream::Error kind, const std::string& where) {
  Session& s = *session_;
  std::string reason = kind == tls::Stream::Error::eof
                           ? "lost connection with " + s.namaddr + " while " + where
                           : "conversation with " + s.namaddr + " timed out while " + where;
  why_ = deliver::Dsn::simple("4.4.2", reason);
  has_why_ = true;
  // RETRY_AS_PLAINTEXT: an opportunistic TLS session that failed.
  if (s.tls_active && plaintext_fallback_ok()) {
    s.tls_retry_plain = true;
    final_server_ = false;
  }
  s.dead = true;
  bulk_fail(true);
  return -1;
}

void DeliveryRun::rcpt_cleanup() {
  std::vector<size_t> left;
  for (size_t idx : todo_) {
    if (mark_[idx] == Mark::drop) continue;
    mark_[idx] = Mark::none;
    left.push_back(idx);
  }
  todo_ = std::move(left);
}

// ---------------------------------------------------------------- addresses

void DeliveryRun::sort_addresses(std::vector<ServerAddress>& list, bool shuffle) {
  if (shuffle && s_.randomize_addresses) std::shuffle(list.begin(), list.end(), a_.rng());
  int want = s_.address_preference == "ipv4" ? AF_INET : s_.address_preference == "ipv6" ? AF_INET6 : 0;
  std::stable_sort(list.begin(), list.end(), [want](const ServerAddress& x, const ServerAddress& y) {
    if (x.pref != y.pref) return x.pref < y.pref;
    if (want) return (x.family == want) > (y.family == want);
    return false;
  });
}

void DeliveryRun::addr_one(std::vector<ServerAddress>& out, const std::string& host, unsigned pref) {
  // A numerical name is an address.
  unsigned char buf[sizeof(in6_addr)];
  for (int family : {AF_INET, AF_INET6}) {
    if (::inet_pton(family, host.c_str(), buf) == 1) {
      if ((family == AF_INET && s_.ipv4) || (family == AF_INET6 && s_.ipv6))
        out.push_back({host, host, family, pref});
      return;
    }
  }
  bool soft_before = has_why_ && !why_.status.empty() && why_.status[0] == '4';
  if (s_.lookup_dns) {
    std::vector<dns::Record> rr;
    dns::Status worst = dns::Status::not_found;
    std::string reason;
    bool found = false;
    std::vector<int> types;
    if (s_.ipv4) types.push_back(dns::kTypeA);
    if (s_.ipv6) types.push_back(dns::kTypeAaaa);
    for (int type : types) {
      std::string r;
      dns::Status st = lookup(host, type, rr, &r);
      if (st == dns::Status::ok) {
        found = true;
        continue;
      }
      if (st == dns::Status::retry || (st == dns::Status::fail && worst != dns::Status::retry) || reason.empty()) {
        if (st != dns::Status::not_found || worst == dns::Status::not_found) worst = st;
        reason = r;
      }
      if (st == dns::Status::not_found && a_.resolver().last_nxdomain()) break;
    }
    if (found) {
      for (const dns::Record& r : rr)
        out.push_back({host, r.data, r.type == dns::kTypeA ? AF_INET : AF_INET6, pref});
      return;
    }
    why_.reason = reason;
    why_.mtype.clear();
    why_.dtype.clear();
    has_why_ = true;
    switch (worst) {
      case dns::Status::retry: why_.status = "4.4.3"; return;
      case dns::Status::fail: why_.status = soft_before ? "4.4.3" : "5.4.3"; return;
      default: why_.status = soft_before ? "4.4.4" : "5.4.4"; break;  // maybe native succeeds
    }
  }
  if (s_.lookup_native) {
    addrinfo hints{};
    hints.ai_family = s_.ipv4 && s_.ipv6 ? AF_UNSPEC : s_.ipv4 ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res0 = nullptr;
    int err = ::getaddrinfo(host.c_str(), nullptr, &hints, &res0);
    if (err != 0) {
      bool retry = err == EAI_AGAIN || err == EAI_MEMORY || err == EAI_SYSTEM;
      bool nohost = err == EAI_AGAIN || err == EAI_NONAME
#ifdef EAI_NODATA
                    || err == EAI_NODATA
#endif
          ;
      why_ = deliver::Dsn::simple((soft_before || retry) ? (nohost ? "4.4.4" : "4.3.0") : (nohost ? "5.4.4" : "5.3.0"),
                                  "unable to look up host " + host + ": " + ::gai_strerror(err));
      has_why_ = true;
      return;
    }
    size_t before = out.size();
    for (addrinfo* ai = res0; ai; ai = ai->ai_next) {
      char text[INET6_ADDRSTRLEN];
      const void* src = ai->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
                                                 : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
      if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || !::inet_ntop(ai->ai_family, src, text, sizeof text)) continue;
      bool dup = false;
      for (size_t i = before; i < out.size(); ++i) dup = dup || out[i].addr == text;
      if (!dup) out.push_back({host, text, ai->ai_family, pref});
    }
    ::freeaddrinfo(res0);
    if (out.size() == before) {
      why_ = deliver::Dsn::simple(soft_before ? "4.4.4" : "5.4.4", host + ": host not found");
      has_why_ = true;
    }
  }
}

std::vector<ServerAddress> DeliveryRun::host_addr(const std::string& name) {
  std::vector<ServerAddress> list;
  addr_one(list, name, 0);
  sort_addresses(list, true);
  return list;
}

std::vector<ServerAddress> DeliveryRun::domain_addr(const std::string& name) {
  std::vector<ServerAddress> list;
  std::vector<dns::Record> mx;
  std::string reason;
  has_why_ = false;
  dns::Status st = lookup(name, dns::kTypeMx, mx, &reason);
  auto set = [&](const char* status) {
    why_ = deliver::Dsn::simple(status, reason);
    has_why_ = true;
  };
  switch (st) {
    case dns::Status::retry:
      set("4.4.3");
      if (s_.ignore_mx_lookup_error) list = host_addr(name);
      break;
    case dns::Status::fail:
      set("5.4.3");
      if (s_.ignore_mx_lookup_error) list = host_addr(name);
      break;
    case dns::Status::null_mx:
      set("5.1.0");
      break;
    case dns::Status::not_found:
      list = host_addr(name);
      break;
    case dns::Status::ok:
      dns::sort_mx(mx, a_.rng());
      for (const dns::Record& r : mx) addr_one(list, r.data, r.pref);
      sort_addresses(list, true);
      break;
  }
  return list;
}

// ---------------------------------------------------------------- connections

std::unique_ptr<Session> DeliveryRun::connect_sock(int sock, const sockaddr* sa, socklen_t len, const std::string& host,
                                                   const std::string& addr, unsigned port) {
  int rc;
  int err = 0;
  if (s_.connect_timeout > 0) {
    ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
    rc = ::connect(sock, sa, len);
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{sock, POLLOUT, 0};
      int n;
      do n = ::poll(&p, 1, static_cast<int>(s_.connect_timeout * 1000));
      while (n < 0 && errno == EINTR);
      if (n == 0) {
        rc = -1;
        err = ETIMEDOUT;
      } else if (n < 0) {
        err = errno;
        rc = -1;
      } else {
        socklen_t el = sizeof err;
        if (::getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        rc = err ? -1 : 0;
      }
    } else if (rc < 0) {
      err = errno;
    }
  } else {
    rc = ::connect(sock, sa, len);
    if (rc < 0) err = errno;
  }
  if (rc < 0) {
    std::string text = std::strerror(err);
    why_ = deliver::Dsn::simple("4.4.1", port ? "connect to " + host + "[" + addr + "]:" + std::to_string(port) + ": " + text
                                              : "connect to " + host + "[" + addr + "]: " + text);
    has_why_ = true;
    ::close(sock);
    return nullptr;
  }
  auto s = std::make_unique<Session>();
  s->stream = std::make_unique<tls::Stream>(sock);
  // The new-stream caching policy (smtp_session_alloc): cacheable for
  // smtp_connection_reuse_time_limit when the request stores connections.
  s->expire_time = conn_store_ ? static_cast<long long>(::time(nullptr)) + s_.reuse_time_limit : 0;
  s->host = host;
  s->addr = addr;
  s->port = port;
  s->namaddr = host + "[" + addr + "]";
  s->namaddrport = port ? s->namaddr + ":" + std::to_string(port) : s->namaddr;
  return s;
}

std::unique_ptr<Session> DeliveryRun::connect_addr(const ServerAddress& a, unsigned port) {
  sockaddr_storage ss{};
  socklen_t len;
  if (a.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, a.addr.c_str(), &sin->sin_addr);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, a.addr.c_str(), &sin6->sin6_addr);
    len = sizeof *sin6;
  }
  int sock = ::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) log::fatal("smtp_connect_addr: socket: %s", std::strerror(errno));
  return connect_sock(sock, reinterpret_cast<sockaddr*>(&ss), len, a.host, a.addr, port);
}

// smtp_cleanup_session(): a good session goes to the cache (the first one
// under the next hop too), anything else is closed; QUIT was sent already
// for a session that is not cached.
void DeliveryRun::cleanup_session() {
  bool throttled = session_ && !session_->dead && session_->expire_time < 0;
  if (session_expired()) quit();  // also disables caching
  if (session_cached()) save_session();
  session_.reset();
  // The first good session was saved under the next hop: later ones (less
  // preferred servers) must not be.
  if (!scache_nexthop_.empty() && !throttled) scache_nexthop_.clear();
  rcpt_cleanup();
  // Time spent on a failed server counts as connection set-up for the next.
  stats_.conn_setup_done = {};
  stats_.deliver_done = {};
  stats_.reuse_count = 0;
}

// ---------------------------------------------------------------- connection cache

// smtp_cache_policy(): smtp_connection_cache_destinations always caches;
// otherwise, with smtp_connection_cache_on_demand, qmgr's flags say.
void DeliveryRun::cache_policy(const std::string& domain) {
  conn_load_ = conn_store_ = false;
  if (!a_.scache_enabled()) return;
  if (a_.cache_destinations().match(domain) == maps::Match::yes) {
    conn_load_ = conn_store_ = true;
  } else if (s_.cache_on_demand) {
    conn_load_ = (req_.flags & proto::kDelReqFlagConnLoad) != 0;
    conn_store_ = (req_.flags & proto::kDelReqFlagConnStore) != 0;
  }
}

// THIS_SESSION_IS_EXPIRED: past smtp_connection_reuse_time_limit, or used
// smtp_connection_reuse_count_limit times.
bool DeliveryRun::session_expired() const {
  if (!session_cached()) return false;
  if (session_->expire_time < static_cast<long long>(::time(nullptr))) return true;
  return s_.reuse_count_limit > 0 && session_->reuse_count >= s_.reuse_count_limit;
}

// Cache labels, as Postfix 3.7's smtp_key_prefix(): the master.cf service,
// the sender when SASL logins depend on it ("*" otherwise), then the next
// hop, or the server address and port; newline-separated.
std::string DeliveryRun::cache_key(const std::string& where, const std::string& port) const {
  std::string key = a_.service_name() + "\n";
  key += (s_.sasl_enable && s_.sender_dependent_auth) ? req_.sender : "*";
  // With SASL the credentials depend on the next hop: a session opened
  // for one destination (perhaps without a login) is not another's.
  key += "\n" + (s_.sasl_enable ? req_.nexthop : std::string("*"));
  key += "\n" + where + "\n";
  if (!port.empty()) key += port + "\n";
  return key;
}

// smtp_save_session(): the passivated session (smtp_session_passivate) under
// the next hop (when this is the first good session) and under its address.
void DeliveryRun::save_session() {
  Session& s = *session_;
  try {
    s.stream->flush();
  } catch (const tls::Stream::IoError&) {
    return;
  }
  // Plaintext only: without tlsproxy Postfix 3.7 does not reuse a TLS
  // session (smtp_tls_connection_reuse), nor an authenticated one.
  if (s.tls_active || s.tls_level != TlsLevel::none || s.sasl_used) return;
  ipc::ScacheClient* cache = a_.scache();
  if (!cache) return;
  int fd = ::dup(s.stream->fd());
  if (fd < 0) return;
  std::string endp_label = cache_key(s.addr, std::to_string(s.port));
  std::string dest_prop = std::to_string(s.features & kBestMx);
  std::string endp_prop = std::to_string(s.reuse_count) + "\n" + s.dest + "\n" + s.host + "\n" + s.addr + "\n" +
                          std::to_string(s.port) + "\n" + std::to_string(s.features & ~kBestMx) + "\n" +
                          std::to_string(s.expire_time);
  int ttl = static_cast<int>(std::max<long long>(1, s_.cache_time_limit));
  if (!scache_nexthop_.empty()) cache->save_dest(ttl, cache_key(scache_nexthop_, ""), dest_prop, endp_label);
  cache->save_endp(ttl, endp_label, endp_prop, fd);
}

// smtp_session_activate(): a session from its properties; null (after a
// warning) when they do not parse.
std::unique_ptr<Session> DeliveryRun::activate_session(int fd, const std::string& dest_prop,
                                                       const std::string& endp_prop, const std::string& label) {
  std::vector<std::string> f;
  for (size_t pos = 0;;) {
    size_t nl = endp_prop.find('\n', pos);
    f.push_back(endp_prop.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  auto number = [](const std::string& t, long long& out) {
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoll(t);
    return true;
  };
  long long reuse = 0, port = 0, features = 0, expires = 0, dest_features = 0;
  if (f.size() != 7 || !number(f[0], reuse) || !number(f[4], port) || !number(f[5], features) ||
      !number(f[6], expires) || (!dest_prop.empty() && !number(dest_prop, dest_features))) {
    log::warning("smtp_reuse_common: bad cached session attribute for %s", printable(label).c_str());
    ::close(fd);
    return nullptr;
  }
  auto s = std::make_unique<Session>();
  s->stream = std::make_unique<tls::Stream>(fd);
  s->dest = f[1];
  s->host = f[2];
  s->addr = f[3];
  s->port = static_cast<unsigned>(port);
  s->namaddr = s->host + "[" + s->addr + "]";
  s->namaddrport = s->port ? s->namaddr + ":" + std::to_string(s->port) : s->namaddr;
  s->features = static_cast<unsigned>(features | dest_features);
  s->from_cache = true;
  s->expire_time = expires;
  s->reuse_count = static_cast<int>(reuse) + 1;
  return s;
}

// smtp_rset(): the probe that a cached session still works.  -1 when the
// connection failed; a refused RSET sets rset_rejected.
int DeliveryRun::rset_probe() {
  Session& s = *session_;
  try {
    s.stream->set_timeout(s_.rset_timeout);
    s.stream->write("RSET\r\n");
    Reply r = read_reply();
    if (r.code / 100 != 2) s.rset_rejected = true;
    return 0;
  } catch (const tls::Stream::IoError&) {
    s.dead = true;
    return -1;
  }
}

// smtp_reuse_common(): probe the session; keep it as the current one when
// it works.
bool DeliveryRun::reuse_common(std::unique_ptr<Session> s) {
  if (!s) return false;
  session_ = std::move(s);
  session_->tls_level = TlsLevel::none;
  if (rset_probe() < 0 || session_->rset_rejected) {
    session_.reset();
    return false;
  }
  cache_used_.push_back(session_->addr);
  return true;
}

// smtp_reuse_nexthop(): a session cached under the request's next hop.
bool DeliveryRun::reuse_nexthop() {
  ipc::ScacheClient* cache = a_.scache();
  if (!cache || s_.tls_level != TlsLevel::none) return false;  // no plaintext reuse when TLS would be tried
  std::string label = cache_key(scache_nexthop_, ""), dest_prop, endp_prop;
  int fd = cache->find_dest(label, dest_prop, endp_prop);
  if (fd < 0) return false;
  return reuse_common(activate_session(fd, dest_prop, endp_prop, label));
}

// smtp_reuse_addr(): a session cached under a server address and port; no
// destination properties (the best-MX bit is the caller's).
bool DeliveryRun::reuse_addr(const ServerAddress& a, unsigned port) {
  ipc::ScacheClient* cache = a_.scache();
  if (!cache || s_.tls_level != TlsLevel::none) return false;
  std::string label = cache_key(a.addr, std::to_string(port)), endp_prop;
  int fd = cache->find_endp(label, endp_prop);
  if (fd < 0) return false;
  return reuse_common(activate_session(fd, "", endp_prop, label));
}

// smtp_update_addr_list(): drop the address of a reused session; drop all
// when the session or address limit is reached.
void DeliveryRun::update_addr_list(std::vector<ServerAddress>& list, const std::string& addr, int session_count) {
  if (list.empty()) return;
  if (session_count == s_.mx_session_limit || session_count == s_.mx_address_limit) {
    list.clear();
    return;
  }
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->addr == addr) {
      list.erase(it);
      return;
    }
  }
}

// smtp_reuse_session(): before new connections, a session cached under the
// next hop, then sessions cached under the addresses of the best MX hosts.
// Returns how many sessions were used.
int DeliveryRun::reuse_session(std::vector<ServerAddress>& list, unsigned best_pref, unsigned port,
                               bool final_nexthop) {
  int count = 0;
  if (!list.empty() && rcpt_left() > 0 && !scache_nexthop_.empty() && reuse_nexthop()) {
    count = 1;
    update_addr_list(list, session_->addr, count);
    if (final_nexthop && list.empty()) final_server_ = true;
    xfer();
    cleanup_session();
  }
  for (size_t i = 0; i < list.size() && rcpt_left() > 0;) {
    if (list[i].pref != best_pref) break;
    if (!reuse_addr(list[i], port)) {
      ++i;
      continue;
    }
    session_->features |= kBestMx;
    ++count;
    update_addr_list(list, session_->addr, count);  // removes list[i] (or all)
    if (final_nexthop && i >= list.size()) final_server_ = true;
    xfer();
    cleanup_session();
  }
  return count;
}

void DeliveryRun::connect_local(const std::string& path) {
  sockaddr_un sun{};
  if (path.size() >= sizeof sun.sun_path) {
    log::warning("unix-domain name too long: %s", path.c_str());
    why_ = deliver::Dsn::simple("4.3.5", "Server configuration error");
    has_why_ = true;
    return;
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  // The cache label is the path, without "unix:".
  cache_policy(path);
  if (conn_load_ || conn_store_) scache_nexthop_ = path;
  if (!conn_load_ || !reuse_nexthop()) {
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) log::fatal("smtp_connect_unix: socket: %s", std::strerror(errno));
    session_ = connect_sock(sock, reinterpret_cast<sockaddr*>(&sun), sizeof sun, s_.myhostname, path, 0);
  }
  if (!session_) return;
  session_->dest = req_.nexthop;
  session_->tls_level = s_.tls_level;
  if (session_->tls_level == TlsLevel::may) {
    log::warning("smtp_connect_local: opportunistic TLS encryption is not appropriate for unix-domain destinations.");
    session_->tls_level = TlsLevel::none;
  }
  final_server_ = true;
  if (!session_->from_cache && helo(false) != 0) {
    if (!session_->dead) quit();
  } else {
    xfer();
  }
  cleanup_session();
  scache_nexthop_.clear();
}

// smtp_tls_policy_maps: the next hop as given ("[host]:port" once; a
// domain, then its parent domains as ".parent"), else the main.cf level.
TlsPolicy DeliveryRun::tls_policy_for(const std::string& dest) {
  TlsPolicy policy;
  policy.level = s_.tls_level;
  if (policy.level == TlsLevel::verify) policy.match = s_.tls_verify_match;
  if (policy.level == TlsLevel::secure) policy.match = s_.tls_secure_match;
  const maps::Maps& table = a_.tls_policy();
  if (table.empty()) return policy;
  bool hostname = dest.find_first_of("[]:") == std::string::npos;
  for (std::string key = dest; !key.empty();) {
    maps::Result r = table.find(key);
    if (r.failed()) {
      log::warning("%s: %s lookup error for %s", req_.queue_id.c_str(), table.title().c_str(), key.c_str());
      policy.invalid = true;
      return policy;
    }
    if (r.found())
      return parse_tls_policy(r.value, table.title() + ", next-hop destination \"" + key + "\"", s_.tls_verify_match,
                              s_.tls_secure_match);
    if (!hostname) break;
    size_t dot = key.find('.', 1);
    key = dot == std::string::npos ? "" : key.substr(dot);
  }
  return policy;
}

// smtp_connect_inet(): the next hop, then (SMTP only) the
// smtp_fallback_relay destinations, until every recipient is done; a
// soft error at the last server of one destination keeps the recipients
// for the next destination.
void DeliveryRun::connect_inet(const std::string& nexthop) {
  if (!s_.ipv4 && !s_.ipv6) {
    why_ = deliver::Dsn::simple("4.4.4", "all network protocols are disabled");
    has_why_ = true;
    return;
  }
  std::vector<std::string> sites{nexthop};
  if (!s_.lmtp)
    for (const std::string& f : s_.fallback_relay) sites.push_back(f);
  for (size_t k = 0; k < sites.size() && rcpt_left() > 0; ++k) {
    last_site_fallback_ = k > 0;
    connect_site(sites[k], k + 1 == sites.size(), k == 0);
  }
  scache_nexthop_.clear();
}

void DeliveryRun::connect_site(const std::string& dest, bool final_nexthop, bool first_nexthop) {
  std::string error;
  std::optional<NextHop> hop = parse_nexthop(dest, s_.def_service, s_.lmtp, error);
  if (!hop) log::fatal("%s", error.c_str());
  if (hop->port == 465) {
    log::info("CLIENT wrappermode (port smtps/465) is unimplemented");
    log::info("instead, send to (port submission/587) with STARTTLS");
  }
  nexthop_domain_ = hop->host;
  loop_detect_ = !s_.lmtp && hop->port == 25;
  bool lookup_mx = !s_.lmtp && s_.dns_enabled && hop->lookup_mx;
  std::vector<ServerAddress> list = lookup_mx ? domain_addr(hop->host) : host_addr(hop->host);
  if (list.empty()) return;
  unsigned best_pref = list.front().pref;
  int addr_count = 0, sess_count = 0;
  bool retry_plain = false;
  const TlsPolicy policy = tls_policy_for(dest);
  // Connection caching, decided on the first next hop (the domain without
  // [] or port); the first good session goes under the next hop as given.
  if (first_nexthop) {
    cache_policy(hop->host);
    if (conn_load_ || conn_store_) scache_nexthop_ = dest;
  }
  // Sessions from the cache first; their addresses leave the list.
  if (conn_load_ && policy.level == TlsLevel::none && !policy.invalid) {
    std::erase_if(list, [this](const ServerAddress& a) {
      return std::find(cache_used_.begin(), cache_used_.end(), a.addr) != cache_used_.end();
    });
    sess_count = addr_count = reuse_session(list, best_pref, hop->port, final_nexthop);
  }
  for (size_t i = 0; i < list.size() && rcpt_left() > 0;) {
    const ServerAddress& a = list[i];
    bool last = i + 1 >= list.size();
    if (++addr_count == s_.mx_address_limit) last = true;
    TlsLevel level = retry_plain ? TlsLevel::none : policy.level;
    retry_plain = false;
    if (policy.invalid) {  // no connection with a broken policy
      why_ = deliver::Dsn::simple("4.7.5", "client TLS configuration problem");
      has_why_ = true;
      log::warning("TLS policy lookup for %s/%s: %s", dest.c_str(), a.host.c_str(), why_.reason.c_str());
      i = last ? list.size() : i + 1;
      continue;
    }
    // dane, dane-only: this host's level from DNSSEC (smtp_dane.hpp); an
    // authenticated one is "verify" with the TLSA records instead of names.
    dane::Decision dane_decision;
    if (level == TlsLevel::dane || level == TlsLevel::dane_only) {
      dane_decision = dane_policy(s_).decide(level == TlsLevel::dane ? dane::Mode::dane : dane::Mode::dane_only,
                                             {dest, lookup_mx ? hop->host : "", a.host, a.addr, hop->port});
      level = dane_decision.level == dane::Level::may       ? TlsLevel::may
              : dane_decision.level == dane::Level::encrypt ? TlsLevel::encrypt
                                                            : TlsLevel::verify;
      if (dane_decision.level == dane::Level::invalid) {
        why_ = deliver::Dsn::simple(dane_decision.status, dane_decision.reason);
        has_why_ = true;
        log::warning("TLS policy lookup for %s/%s: %s", dest.c_str(), a.host.c_str(), why_.reason.c_str());
        i = last ? list.size() : i + 1;
        continue;
      }
    }
    // A backup MX may have a cached session (the best ones were tried above).
    if (!conn_load_ || a.pref == best_pref || level != TlsLevel::none || !reuse_addr(a, hop->port))
      session_ = connect_addr(a, hop->port);
    size_t next = last ? list.size() : i + 1;
    if (session_) {
      if (!session_->from_cache) session_->dest = dest;
      session_->tls_level = session_->from_cache ? TlsLevel::none : level;
      session_->tls_policy = &policy;
      session_->dane = dane_decision.authenticated() ? &dane_decision : nullptr;
      if (a.pref == best_pref) session_->features |= kBestMx;
      final_server_ = final_nexthop && last;
      if (!session_->from_cache && helo(false) != 0) {
        if (session_->tls_retry_plain) {  // the same address again, without TLS
          retry_plain = true;
          --addr_count;
          next = i;
        }
        if (!session_->dead) quit();
      } else {
        if (++sess_count == s_.mx_session_limit) next = list.size();
        final_server_ = final_nexthop && next >= list.size();
        xfer();
      }
      cleanup_session();
    } else {
      log::info("%s", why_.reason.c_str());  // includes the address and port
    }
    i = next;
  }
}

// ---------------------------------------------------------------- the dialogue

// smtp_chat_resp(): a line longer than line_length_limit is cut there (the
// rest is read and thrown away, so a 100 MB line costs no memory); a line
// without a three-digit code is garbage that is skipped, with Postfix's
// warning when PIPELINING is on (a garbage line could make replies and
// commands go out of step).
Reply DeliveryRun::read_reply() {
  Session& s = *session_;
  ReplyReader reader(s_.line_limit);
  std::string line;
  for (;;) {
    bool fits = s.stream->read_line(line, s_.line_limit);
    if (!fits)
      log::warning("%s: response longer than %zu: %.30s...", s.namaddrport.c_str(), s_.line_limit, printable(line).c_str());
    if (reader.add_line(line)) break;
    size_t digits = 0;
    while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') ++digits;
    if (digits == 3 && line.size() > 3 && line[3] == '-') continue;
    if (s.features & kPipelining) {
      log::warning("%s: non-%s response from %s: %.100s", req_.queue_id.c_str(), s_.lmtp ? "LMTP" : "ESMTP",
                   s.namaddrport.c_str(), printable(line).c_str());
      if (s_.helpful_warnings)
        log::warning("to prevent loss of mail, turn off command pipelining for %s with the %s parameter", s.addr.c_str(),
                     s_.lmtp ? "lmtp_discard_lhlo_keyword_address_maps" : "smtp_discard_ehlo_keyword_address_maps");
    }
  }
  return reader.take();
}

int DeliveryRun::helo(bool in_starttls) {
  Session& s = *session_;
  std::string where;
  s.stream->set_timeout(s_.helo_timeout);
  try {
    Reply r;
    if (!in_starttls) {
      where = "receiving the initial server greeting";
      r = read_reply();
      if (r.code / 100 != 2) {
        if (r.code / 100 == 5 && s_.skip_5xx_greeting) r.dsn[0] = '4';
        return site_fail(s.host, &r, "host " + s.namaddr + " refused to talk to me: " + r.flat());
      }
      if (s.tls_level == TlsLevel::unsupported)
        return fake_fail("4.7.0", "client TLS configuration problem");
      // The greeting's words: our own name (a loop), ESMTP.
      std::string first = r.text.substr(0, r.text.find('\n'));
      std::vector<std::string> words;
      for (size_t i = 4; i < first.size();) {
        size_t e = first.find_first_of(" \t", i);
        if (e == std::string::npos) e = first.size();
        if (e > i) words.push_back(first.substr(i, e - i));
        i = e + 1;
      }
      if (!words.empty() && strcasecmp(words[0].c_str(), s_.myhostname.c_str()) == 0 && loop_detect_)
        log::warning("host %s greeted me with my own hostname %s", s.namaddrport.c_str(), s_.myhostname.c_str());
      s.features |= kEsmtp;  // smtp_always_send_ehlo
      if (s_.never_ehlo) s.features &= ~kEsmtp;
    } else {
      s.features |= kEsmtp;
    }
    if (!s_.lmtp) {
      where = "performing the EHLO handshake";
      if (s.features & kEsmtp) {
        s.stream->write("EHLO " + s_.helo_name + "\r\n");
        r = read_reply();
        if (r.code / 100 != 2) {
          if (r.code == 421) return site_fail(s.host, &r, "host " + s.namaddr + " refused to talk to me: " + r.flat());
          s.features &= ~kEsmtp;
        }
      }
      if (!(s.features & kEsmtp)) {
        where = "performing the HELO handshake";
        s.stream->write("HELO " + s_.helo_name + "\r\n");
        r = read_reply();
        if (r.code / 100 != 2) return site_fail(s.host, &r, "host " + s.namaddr + " refused to talk to me: " + r.flat());
      }
    } else {
      where = "performing the LHLO handshake";
      s.stream->write("LHLO " + s_.helo_name + "\r\n");
      r = read_reply();
      if (r.code / 100 != 2) return site_fail(s.host, &r, "host " + s.namaddr + " refused to talk to me: " + r.flat());
    }
    if (s.features & kEsmtp) {
      unsigned discard = s_.discard_ehlo;
      if (!s_.discard_ehlo_text.empty()) log::info("%s", s_.discard_ehlo_text.c_str());
      size_t n = 0;
      size_t pos = 0;
      while (pos <= r.text.size()) {
        size_t e = r.text.find('\n', pos);
        if (e == std::string::npos) e = r.text.size();
        std::string line = r.text.substr(pos, e - pos);
        pos = e + 1;
        // "code (SP|-) keyword (SP|=) params"
        size_t k = line.find_first_of("- ");
        if (k == std::string::npos) continue;
        k = line.find_first_not_of("- ", k);
        if (k == std::string::npos) continue;
        size_t ke = line.find_first_of(" \t=", k);
        std::string word = line.substr(k, ke == std::string::npos ? std::string::npos : ke - k);
        std::string rest = ke == std::string::npos ? "" : line.substr(ke + 1);
        if (n == 0) {
          if (strcasecmp(word.c_str(), s_.myhostname.c_str()) == 0 && loop_detect_) {
            log::warning("host %s replied to HELO/EHLO with my own hostname %s", s.namaddrport.c_str(), s_.myhostname.c_str());
            return fake_fail((s.features & kBestMx) ? "5.4.6" : "4.4.6", "mail for " + req_.nexthop + " loops back to myself");
          }
        } else if (strcasecmp(word.c_str(), "8BITMIME") == 0) {
          if (!(discard & kMask8BitMime)) s.features |= k8BitMime;
        } else if (strcasecmp(word.c_str(), "PIPELINING") == 0) {
          if (!(discard & kMaskPipelining)) s.features |= kPipelining;
        } else if (strcasecmp(word.c_str(), "SIZE") == 0) {
          if (!(discard & kMaskSize)) {
            s.features |= kSize;
            std::string limit = rest.substr(0, rest.find_first_of(" \t"));
            if (!limit.empty() && limit.find_first_not_of("0123456789") != std::string::npos)
              log::warning("bad EHLO SIZE limit \"%s\" from %s", limit.c_str(), s.namaddrport.c_str());
          }
        } else if (strcasecmp(word.c_str(), "STARTTLS") == 0) {
          if (!(discard & kMaskStartTls)) s.features |= kStartTls;
        } else if (strcasecmp(word.c_str(), "AUTH") == 0) {
          if (s_.sasl_enable && !(discard & kMaskAuth)) sasl_offer(rest);
        } else if (strcasecmp(word.c_str(), "DSN") == 0) {
          if (!(discard & kMaskDsn)) s.features |= kDsn;
        } else if (strcasecmp(word.c_str(), "SMTPUTF8") == 0) {
          if (!(discard & kMaskSmtpUtf8)) s.features |= kSmtpUtf8;
        }
        ++n;
      }
    }
    if (!in_starttls) {
      if ((s.features & kStartTls) && s_.tls_note_starttls_offer && s.tls_level == TlsLevel::none)
        log::info("Host offered STARTTLS: [%s]", s.host.c_str());
      if ((s.features & kStartTls) && a_.tls() && s.tls_level >= TlsLevel::may) {
        s.stream->set_timeout(s_.starttls_timeout);
        where = "receiving the STARTTLS response";
        s.stream->write("STARTTLS\r\n");
        r = read_reply();
        if (r.code / 100 == 2) {
          s.features &= kBestMx;
          s.sasl_mechs.clear();  // the list offered in plain text no longer counts
          return start_tls();
        }
        s.features &= ~kStartTls;
        if (s.tls_level >= TlsLevel::encrypt)
          return site_fail(s.host, &r, "TLS is required, but host " + s.namaddr + " refused to start TLS: " + r.flat());
      }
      if (s.tls_level >= TlsLevel::encrypt) {
        if (!(s.features & kStartTls))
          return fake_fail("4.7.4", "TLS is required, but was not offered by host " + s.namaddr);
        if (!a_.tls()) return fake_fail("4.7.5", "TLS is required, but our TLS engine is unavailable");
        return fake_fail("4.7.0", "TLS is required, but unavailable");
      }
    }
    // AUTH with the credentials for this server, if any (smtp_sasl_helo_login).
    if (s_.sasl_enable && (s.features & kAuth)) {
      int rc = sasl_login();
      if (rc != 0) return rc;
      if (s.features & kAuth) s.sasl_used = true;
    }
  } catch (const tls::Stream::IoError& e) {
    return stream_except(e.kind, where);
  }
  // SMTPUTF8 (RFC 6531): mail that needs it cannot go to a server without it.
  if ((req_.smtputf8 & kUtf8Requested) && !(s.features & kSmtpUtf8) && !s_.lmtp) {
    bool needs = !all_ascii(req_.sender);
    for (size_t idx : todo_) needs = needs || !all_ascii(req_.recipients[idx].address);
    if (needs) {
      fill_dsn("", nullptr, "5.6.7", "SMTPUTF8 is required, but was not offered by host " + s.namaddr);
      bool saved = final_server_;
      final_server_ = true;  // a message failure: no other server will do better
      bulk_fail(false);
      final_server_ = saved;
      return -1;
    }
  }
  return 0;
}

int DeliveryRun::start_tls() {
  Session& s = *session_;
  std::string servername;
  if (s_.tls_servername == "hostname") servername = s.host;
  else if (s_.tls_servername == "nexthop") servername = nexthop_domain_;
  else servername = s_.tls_servername;
  if (s.dane) servername = s.dane->base_domain;  // RFC 7672: always the TLSA base domain
  const tls::SessionOverrides* overrides = s.tls_policy ? &s.tls_policy->overrides : nullptr;
  SSL* ssl = a_.tls()->new_ssl(s.tls_level >= TlsLevel::encrypt, servername, s.namaddrport, overrides);
  // verify, secure: the names the certificate must match, checked by
  // OpenSSL during the chain verification (add_namechecks()).
  bool names_ok = true;
  tls::VerifyState verify;
  if (ssl != nullptr && s.dane) {  // DANE: the TLSA records, not names (tls_dane.hpp)
    names_ok = tls::enable_dane(ssl, s_.dane.digests, s.dane->base_domain, s.dane->match_names, s.dane->tlsa);
  } else if (ssl != nullptr && s.tls_level >= TlsLevel::verify) {
    std::vector<std::string> names;
    for (const std::string& m : s.tls_policy ? s.tls_policy->match : std::vector<std::string>{}) {
      if (strcasecmp(m.c_str(), "nexthop") == 0) names.push_back(nexthop_domain_);
      else if (strcasecmp(m.c_str(), "dot-nexthop") == 0) names.push_back("." + nexthop_domain_);
      else if (strcasecmp(m.c_str(), "hostname") == 0) names.push_back(s.host);
      else names.push_back(m);
    }
    names_ok = tls::add_name_checks(ssl, names, s.namaddrport);
  }
  if (ssl != nullptr) tls::track_verify_errors(ssl, &verify);
  s.stream->set_timeout(s_.starttls_timeout);
  if (ssl == nullptr || !s.stream->start_tls(ssl, s.namaddrport)) {
    s.dead = true;
    if (plaintext_fallback_ok()) {  // RETRY_AS_PLAINTEXT
      s.tls_retry_plain = true;
      final_server_ = false;
    }
    return fake_fail("4.7.5", "Cannot start TLS: handshake failure");
  }
  s.tls_active = true;
  tls::SessionInfo info = tls::describe(s.stream->ssl(), false, s_.tls_fingerprint_digest);
  const bool must_trust = s.tls_level >= TlsLevel::verify;
  const bool trusted = info.peer_trusted && names_ok;
  if (must_trust && trusted) {
    // DANE through an insecure MX lookup is matched but only "Trusted".
    info.peer_verified = !(s.dane && s.dane->level == dane::Level::half_dane);
    s.tls_verified = true;
    if (s.dane && a_.tls()->loglevel() >= 2)
      log::info("%s", tls::dane_match_line(tls::dane_match(s.stream->ssl()), s.namaddrport).c_str());
  }
  // verify_extract_name(): the reason, at the levels that need trust.
  if (must_trust && !trusted) {
    std::string why = tls::verify_error_text(verify, s.namaddrport, false);
    if (!why.empty()) log::info("%s", why.c_str());
  }
  if (a_.tls()->loglevel() >= 1) log::info("%s", tls::connection_summary(info, s.namaddrport).c_str());
  // VERIFY lives on this stack frame: the SSL must not reach it later.
  tls::track_verify_errors(s.stream->ssl(), nullptr);
  // The session is usable: QUIT politely after these.
  // Postfix 3.7 checks the match first, and a certificate that OpenSSL
  // did not verify never matched: one text for both.
  if (must_trust && !trusted) return fake_fail("4.7.5", "Server certificate not verified");
  return helo(true);
}

// smtp_sasl_helo_auth(): the server's mechanisms, through
// smtp_sasl_mechanism_filter (names, "!name" excludes; first match wins).
void DeliveryRun::sasl_offer(const std::string& words) {
  Session& s = *session_;
  std::string list;
  size_t i = 0;
  while (i < words.size()) {
    size_t e = words.find_first_of(" \t", i);
    if (e == std::string::npos) e = words.size();
    std::string mech = words.substr(i, e - i);
    i = e + 1;
    if (mech.empty()) continue;
    bool keep = s_.sasl_mech_filter.empty();
    for (const std::string& f : s_.sasl_mech_filter) {
      bool neg = !f.empty() && f[0] == '!';
      if (strcasecmp(mech.c_str(), f.c_str() + (neg ? 1 : 0)) == 0) {
        keep = !neg;
        break;
      }
    }
    if (!keep) continue;
    if (!list.empty()) list += ' ';
    list += mech;
  }
  if (!s.sasl_mechs.empty()) {
    // Several AUTH lines: concatenated, libsasl2 worries about duplicates.
    if (strcasecmp(s.sasl_mechs.c_str(), list.c_str()) != 0 && !list.empty() && s.sasl_mechs.size() < s_.line_limit)
      s.sasl_mechs += " " + list;
    return;
  }
  if (!list.empty()) s.sasl_mechs = list;
  else if (!words.empty())
    log::warning("%s offered no supported AUTH mechanisms: '%s'", s.namaddrport.c_str(), words.c_str());
  else
    log::warning("%s offered null AUTH mechanism list", s.namaddrport.c_str());
  s.features |= kAuth;
}

// smtp_sasl_helo_login() and smtp_sasl_authenticate(): AUTH when the
// password table knows this sender, server or next hop; otherwise we talk
// as strangers.  Returns 0 (go on) or -1 (the recipients have a reason).
std::optional<maps::Result> DeliveryRun::sasl_credentials() {
  if (!s_.sasl_enable) return std::nullopt;
  const Session& s = *session_;
  const maps::Maps& table = a_.sasl_passwd();
  if (s_.sender_dependent_auth && !req_.sender.empty()) {
    maps::AddressLookup how;
    how.recipient_delimiter = s_.recipient_delimiter;
    how.localpart_if_local = false;
    maps::Result r = maps::find_address(table, req_.sender, how);
    if (r.found() || r.failed()) return r;
  }
  for (const std::string& key : {s.host, s.dest}) {
    maps::Result r = table.find(key);
    if (r.found() || r.failed()) return r;
  }
  return std::nullopt;
}

bool DeliveryRun::plaintext_fallback_ok() {
  const Session& s = *session_;
  if (s.tls_level != TlsLevel::may) return false;
  long long waited = req_.stats.active_arrival.sec - req_.stats.incoming_arrival.sec;
  if (waited < s_.min_backoff) return false;
  return !sasl_credentials().has_value();
}

int DeliveryRun::sasl_login() {
  Session& s = *session_;
  const maps::Maps& table = a_.sasl_passwd();
  maps::Result found;
  auto failed = [&](const maps::Result& r) {
    if (!r.failed()) return false;
    log::warning("%s: %s lookup error", req_.queue_id.c_str(), table.title().c_str());
    why_ = deliver::Dsn::simple("4.3.0", "local data error while talking to " + s.namaddr);
    has_why_ = true;
    return true;
  };
  if (s_.sender_dependent_auth && !req_.sender.empty()) {
    maps::AddressLookup how;
    how.recipient_delimiter = s_.recipient_delimiter;
    how.localpart_if_local = false;
    found = maps::find_address(table, req_.sender, how);
    if (failed(found)) return bulk_fail(true), -1;
  }
  if (!found.found()) {
    found = table.find(s.host);
    if (failed(found)) return bulk_fail(true), -1;
  }
  if (!found.found()) {
    found = table.find(s.dest);
    if (failed(found)) return bulk_fail(true), -1;
  }
  if (!found.found()) {
    s.features &= ~kAuth;
    return 0;
  }
  size_t colon = found.value.find(':');
  std::string user = found.value.substr(0, colon);
  std::string password = colon == std::string::npos ? "" : found.value.substr(colon + 1);

  auto sasl_fail = [&](const std::string& text) {
    deliver::Dsn d = deliver::Dsn::simple("4.7.0", "SASL authentication failed; cannot authenticate to server " +
                                                        s.namaddr + ": " + text);
    d.dtype = "x-sasl";  // DSB_DTYPE_SASL
    d.dtext = text;
    why_ = d;
    has_why_ = true;
    bulk_fail(true);
    return -1;
  };
  if (s.sasl_mechs.empty())
    return fake_fail("4.7.0", "SASL authentication failed: server " + s.namaddr +
                                  " offered no compatible authentication mechanisms for this type of connection security");
  const sasl::SecurityOptions& opts = !s.tls_active ? s_.sasl_opts : s.tls_verified ? s_.sasl_tlsv_opts : s_.sasl_tls_opts;
  std::string error;
  std::unique_ptr<sasl::Client> client = sasl::Client::create(s_.prefix, s.host, opts, error);
  if (!client) log::fatal("SASL per-connection initialization failed: %s", error.c_str());
  std::string mech, out;
  if (!client->first(s.sasl_mechs, user, password, mech, out)) return sasl_fail(out);
  s.stream->write(out.empty() ? "AUTH " + mech + "\r\n" : "AUTH " + mech + " " + out + "\r\n");
  Reply r = read_reply();
  for (int steps = 0; r.code / 100 == 3; r = read_reply()) {
    if (++steps > 100)
      return fake_fail("4.3.0", "SASL authentication failed; authentication protocol loop with server " + s.namaddr);
    // The challenge: the first line's text after the code.
    std::string line = r.text.substr(0, r.text.find('\n'));
    size_t k = line.find_first_not_of("- \t", 3);
    std::string challenge = k == std::string::npos ? "" : line.substr(k);
    if (!client->next(challenge, out)) return sasl_fail(out);
    s.stream->write(out + "\r\n");
  }
  if (r.code / 100 != 2) {
    std::string status = r.dsn;
    if (s_.sasl_auth_soft_bounce && r.code / 100 == 5) status[0] = '4';
    fill_dsn(s.host, &r, status, "SASL authentication failed; server " + s.namaddr + " said: " + r.flat());
    bulk_fail(true);
    return -1;
  }
  return 0;
}

void DeliveryRun::quit() {
  Session& s = *session_;
  if (s.expire_time > 0) s.expire_time = 0;  // DONT_CACHE_THIS_SESSION
  try {
    s.stream->set_timeout(s_.quit_timeout);
    s.stream->write("QUIT\r\n");
    s.stream->flush();
    if (!s_.skip_quit_response) read_reply();
  } catch (const tls::Stream::IoError&) {
  }
}

long long DeliveryRun::state_timeout(int st) const {
  switch (st) {
    case kMail: return s_.mail_timeout;
    case kRcpt: return s_.rcpt_timeout;
    case kData: return s_.data_init_timeout;
    case kDot: return s_.data_done_timeout;
    case kAbort: return s_.rset_timeout;
    default: return s_.quit_timeout;
  }
}

std::string DeliveryRun::mail_command() {
  Session& s = *session_;
  std::string cmd = "MAIL FROM:<" + (req_.sender.empty() ? std::string() : quote_821(req_.sender)) + ">";
  // As Postfix: no SIZE when the content will be converted (its size changes).
  if ((s.features & kSize) && !mime_downgrade()) cmd += " SIZE=" + std::to_string(req_.data_size);
  if (s.features & k8BitMime) {
    if (req_.encoding == "8bit") cmd += " BODY=8BITMIME";
    else if (req_.encoding == "7bit") cmd += " BODY=7BIT";
    else if (!req_.encoding.empty())
      log::warning("%s: unknown content encoding: %s", req_.queue_id.c_str(), req_.encoding.c_str());
  }
  if ((s.features & kSmtpUtf8) && (req_.smtputf8 & kUtf8Requested)) cmd += " SMTPUTF8";
  if (s.features & kDsn) {
    if (!req_.dsn_envid.empty()) cmd += " ENVID=" + xtext(req_.dsn_envid);
    if (req_.dsn_ret) cmd += std::string(" RET=") + dsn_ret_text(req_.dsn_ret);
  }
  return cmd;
}

std::string DeliveryRun::rcpt_command(const proto::Recipient& r) {
  std::string cmd = "RCPT TO:<" + quote_821(r.address) + ">";
  if (session_->features & kDsn) {
    if (!r.dsn_orcpt.empty()) cmd += " ORCPT=" + xtext(r.dsn_orcpt);
    else if (!r.orig_addr.empty()) cmd += " ORCPT=" + xtext("rfc822;" + r.orig_addr);
    if (r.dsn_notify) cmd += " NOTIFY=" + dsn_notify_text(r.dsn_notify);
  }
  return cmd;
}

// Postfix's SMTP_MIME_DOWNGRADE: 8-bit content for a server without
// 8BITMIME is converted to 7-bit unless disable_mime_output_conversion;
// only mail that cleanup recorded as 7bit is exempt (no encoding counts
// as 8-bit).
bool DeliveryRun::mime_downgrade() const {
  return s_.mime_output_conversion && !(session_->features & k8BitMime) && req_.encoding != "7bit";
}

// smtp_text_out(): content records as SMTP lines: dot stuffing, CR LF,
// lines longer than smtp_line_length_limit broken (the rest starts with a
// space), a missing final newline added.  When converting (smtp_proto.c's
// downgrading), the records go through the MIME machine first: headers
// come out line by line (smtp_header_out), 8-bit bodies as
// quoted-printable.  A MIME error (nesting beyond lib/mime's limit of
// 100; smtp does not read mime_nesting_limit) fails the message with
// 5.6.0 and returns false: the session is then dropped without ".", as
// Postfix does, there being no other way to cancel the transfer.
bool DeliveryRun::send_body() {
  tls::Stream& out = *session_->stream;
  const size_t limit = s_.line_length_limit;
  size_t space_left = limit;
  char prev_type = 0;
  bool said_breaking = false;
  auto text_out = [&](char type, std::string_view data) {
    bool cont = type == queue::rec::kCont;
    do {
      if (space_left == limit && !data.empty() && data[0] == '.') out.write(".");
      if (limit > 0 && data.size() >= space_left) {
        if (!said_breaking) {
          log::info("%s: breaking line > %zu bytes with <CR><LF>SPACE", req_.queue_id.c_str(), limit);
          said_breaking = true;
        }
        out.write(data.substr(0, space_left));
        out.write("\r\n");
        data.remove_prefix(space_left);
        space_left = limit;
        if (!data.empty() || cont) {
          out.write(" ");
          space_left -= 1;
        }
      } else {
        out.write(data);
        if (cont) {
          space_left -= data.size();
        } else {
          out.write("\r\n");
          space_left = limit;
        }
        break;
      }
    } while (!data.empty());
    if (out.pending() > 65536) out.flush();
  };

  std::optional<mime::MimeState> mime;
  if (mime_downgrade()) {
    mime::MimeOptions opt;
    opt.downgrade = true;
    opt.report_nesting = true;
    mime::MimeState::Callbacks cb;
    cb.header = [&](mime::HeaderClass, std::string& header) {
      std::string_view h = header;
      for (;;) {
        size_t nl = h.find('\n');
        text_out(queue::rec::kNorm, h.substr(0, nl));
        if (nl == std::string_view::npos) break;
        h.remove_prefix(nl + 1);
      }
    };
    cb.body = [&](char type, std::string_view text, long long) { text_out(type, text); };
    mime.emplace(opt, std::move(cb));
  }

  queue::Envelope env;
  std::string error;
  env.data_offset = req_.data_offset;
  if (!d_.file->read_envelope(&env, &error)) log::fatal("%s: read queue file: %s", req_.queue_id.c_str(), error.c_str());
  int mime_errors = 0;
  bool ok = d_.file->read_content(env, [&](char type, std::string_view text) {
    if (mime) {
      mime_errors = mime->record(type, text);
      if (mime_errors) return false;
    } else {
      text_out(type, text);
    }
    prev_type = type;
    return true;
  }, &error);
  if (!ok && !mime_errors) log::fatal("%s: read queue file: %s", req_.queue_id.c_str(), error.c_str());
  if (mime && !mime_errors) mime_errors = mime->end();
  if (mime_errors) {  // smtp_mime_fail(): the message fails (smtp_mesg_fail)
    const mime::MimeErrorDetail& detail = mime::mime_error_detail(mime_errors);
    fill_dsn("", nullptr, std::string(detail.dsn), std::string(detail.text));
    bool saved = final_server_;
    final_server_ = true;
    bulk_fail(false);
    final_server_ = saved;
    return false;
  }
  if (!mime && prev_type == queue::rec::kCont) out.write("\r\n");
  return true;
}

int DeliveryRun::xfer() {
  Session& s = *session_;
  const bool trace_only = (req_.flags & deliver::kTraceOnlyMask) != 0;
  const bool pipelining = (s.features & kPipelining) != 0;
  struct Cmd {
    int state;
    std::string text;
    size_t rcpt = 0;
  };
  std::vector<Cmd> cmds;
  // conn_use=N in the log: how often this connection was reused.
  stats_.reuse_count = s.reuse_count;
  stats_.conn_setup_done = now_time();
  cmds.push_back({kMail, mail_command()});
  for (size_t idx : todo_) cmds.push_back({kRcpt, rcpt_command(req_.recipients[idx]), idx});
  cmds.push_back({trace_only ? kAbort : kData, trace_only ? "RSET" : "DATA"});

  // A batch fills at most the socket's send buffer (Postfix: SO_SNDBUF,
  // at most VSTREAM_BUFSIZE); without PIPELINING every command waits.
  const size_t sndbuf = pipelining ? 4096 : 0;
  bool mail_from_rejected = false;
  int nrcpt = 0;
  std::vector<size_t> survivors;  // LMTP: accepted recipients, in order
  int recv_state = kMail;
  auto handle = [&](const Cmd& c, const Reply& r) {
    switch (c.state) {
      case kMail:
        if (r.code / 100 != 2) {
          fill_dsn(s.host, &r, r.dsn, "host " + s.namaddr + " said: " + r.flat() + " (in reply to " + kXferRequest[kMail] + ")");
          bulk_fail(false);
          mail_from_rejected = true;
        }
        break;
      case kRcpt:
        if (mail_from_rejected) break;
        if (r.code / 100 == 2) {
          survivors.push_back(c.rcpt);
          ++nrcpt;
          if (trace_only) rcpt_done(c.rcpt, r);
        } else {
          rcpt_fail(c.rcpt, s.host, r, "host " + s.namaddr + " said: " + r.flat() + " (in reply to " + kXferRequest[kRcpt] + ")");
        }
        break;
      case kData:
        if (r.code / 100 != 3) {
          if (nrcpt > 0) {
            fill_dsn(s.host, &r, r.dsn, "host " + s.namaddr + " said: " + r.flat() + " (in reply to " + kXferRequest[kData] + ")");
            bulk_fail(false);
          }
          nrcpt = -1;
        }
        break;
      default:
        break;
    }
  };
  auto abort_session = [&]() {
    // RSET, then QUIT; failures no longer matter (nothing is being sent).
    // A cached session stays open after the RSET.
    if (session_expired()) s.expire_time = 0;
    try {
      s.stream->set_timeout(s_.rset_timeout);
      s.stream->write("RSET\r\n");
      if (session_cached()) {
        read_reply();
        return 0;
      }
      if (!pipelining) {
        read_reply();
        s.stream->write("QUIT\r\n");
        s.stream->flush();
      } else {
        s.stream->write("QUIT\r\n");
        read_reply();
      }
      s.stream->set_timeout(s_.quit_timeout);
      if (!s_.skip_quit_response) read_reply();
    } catch (const tls::Stream::IoError&) {
      s.dead = true;
    }
    return 0;
  };

  size_t i = 0;
  while (i < cmds.size()) {
    size_t end = i;
    size_t bytes = 0;
    do {
      bytes += cmds[end].text.size() + 2;
      s.stream->write(cmds[end].text + "\r\n");
      ++end;
    } while (end < cmds.size() && bytes + cmds[end].text.size() + 2 <= sndbuf);
    for (size_t j = i; j < end; ++j) {
      recv_state = cmds[j].state;
      s.stream->set_timeout(state_timeout(recv_state));
      Reply r;
      try {
        r = read_reply();
      } catch (const tls::Stream::IoError& e) {
        return stream_except(e.kind, kXferStates[recv_state]);
      }
      handle(cmds[j], r);
    }
    i = end;
    // Course corrections at the points where the sender waits.
    if (i < cmds.size()) {
      if (mail_from_rejected || (cmds[i].state == kData && nrcpt == 0) || (cmds[i].state == kAbort && nrcpt == 0))
        return abort_session();
    }
  }
  if (trace_only) {  // RSET was sent and answered
    if (session_expired()) s.expire_time = 0;
    if (session_cached()) return 0;
    try {
      s.stream->set_timeout(s_.quit_timeout);
      s.stream->write("QUIT\r\n");
      s.stream->flush();
      if (!s_.skip_quit_response) read_reply();
    } catch (const tls::Stream::IoError&) {
    }
    return 0;
  }
  if (mail_from_rejected || nrcpt < 0) return abort_session();

  // DATA was accepted: the message (or just "." when no recipient was).
  // A session that stays cached gets no QUIT.
  bool lost_in_data = false;
  if (session_expired()) s.expire_time = 0;
  const bool cached = session_cached();
  try {
    s.stream->set_timeout(s_.data_xfer_timeout);
    if (nrcpt > 0 && !send_body()) {
      s.dead = true;  // cancelled halfway through the content
      return 0;
    }
    s.stream->write(".\r\n");
    if (pipelining && !cached) s.stream->write("QUIT\r\n");
    s.stream->flush();
  } catch (const tls::Stream::IoError& e) {
    if (e.kind != tls::Stream::Error::eof) return stream_except(e.kind, "sending message body");
    lost_in_data = true;  // maybe the server said why before it hung up
    s.expire_time = 0;
  }
  s.stream->set_timeout(s_.data_done_timeout);
  size_t replies = s_.lmtp && nrcpt > 0 ? survivors.size() : 1;
  for (size_t k = 0; k < replies; ++k) {
    Reply r;
    try {
      r = read_reply();
    } catch (const tls::Stream::IoError& e) {
      return stream_except(e.kind, lost_in_data ? "sending message body" : kXferStates[kDot]);
    }
    stats_.deliver_done = now_time();
    if (nrcpt <= 0) break;
    std::string reason = "host " + s.namaddr + " said: " + r.flat() + " (in reply to " + kXferRequest[kDot] + ")";
    if (!s_.lmtp) {
      if (r.code / 100 != 2) {
        fill_dsn(s.host, &r, r.dsn, reason);
        bulk_fail(false);
      } else {
        for (size_t idx : survivors)
          if (mark_[idx] == Mark::none) rcpt_done(idx, r);
      }
    } else {
      if (r.code / 100 != 2) rcpt_fail(survivors[k], s.host, r, reason);
      else rcpt_done(survivors[k], r);
    }
  }
  if (lost_in_data) {
    s.dead = true;
    return 0;
  }
  // SMTP_MISC_FLAG_COMPLETE_SESSION: a server got through a whole
  // transaction, so a later failure (the next MX for recipients it
  // deferred) is not the destination's fault.
  completed_session_ = true;
  if (cached) return 0;
  try {
    if (!pipelining) {
      s.stream->set_timeout(s_.quit_timeout);
      s.stream->write("QUIT\r\n");
      s.stream->flush();
    }
    if (!s_.skip_quit_response) {
      s.stream->set_timeout(s_.quit_timeout);
      read_reply();
    }
  } catch (const tls::Stream::IoError&) {
  }
  return 0;
}

int DeliveryRun::run() {
  if (req_.nexthop.empty()) log::fatal("empty nexthop hostname");
  if (req_.recipients.empty()) log::fatal("recipient count: %zu", req_.recipients.size());
  if (s_.lmtp && req_.nexthop.compare(0, 5, "unix:") == 0) connect_local(req_.nexthop.substr(5));
  else connect_inet(req_.nexthop);
  // Whoever is left: the last reason, from no server (relay=none).
  if (rcpt_left() > 0) {
    session_.reset();
    final_server_ = true;
    if (!has_why_) {
      why_ = deliver::Dsn::simple("4.3.0", "server unavailable or unable to receive mail");
      has_why_ = true;
    } else if (!why_.status.empty() && why_.status[0] != '4' && !s_.lmtp && last_site_fallback_) {
      // The fall-back relay did not resolve, refused us, or loops.
      log::warning("smtp_fallback_relay configuration problem");
      why_.status = "4.3.5";
    } else if (!why_.status.empty() && why_.status[0] != '4' && !s_.lmtp && req_.nexthop == s_.relayhost) {
      log::warning("relayhost configuration problem");
      why_.status = "4.3.5";
    }
    for (size_t idx : todo_) mark_[idx] = Mark::none;
    bulk_fail(true);
  }
  return status_ == 0 ? 0 : -1;
}

}  // namespace

Agent::Agent(Settings settings, deliver::ReporterConfig reporter, std::unique_ptr<tls::ClientContext> tls)
    : settings_(std::move(settings)), reporter_(std::move(reporter)), tls_(std::move(tls)), rng_(std::random_device{}()) {
  // smtp_sasl_initialize().
  if (settings_.sasl_enable) {
    if (settings_.sasl_password_maps.empty())
      log::fatal("specify a password table via the `%s_sasl_password_maps' configuration parameter",
                 settings_.prefix.c_str());
    sasl_passwd_ = maps::Maps(settings_.prefix + "_sasl_password_maps", settings_.sasl_password_maps);
    std::string error;
    if (!sasl::init_client(settings_.cyrus_sasl_config_path, error)) log::fatal("%s", error.c_str());
  }
  if (!settings_.tls_policy_maps.empty())
    tls_policy_ = maps::Maps(settings_.prefix + "_tls_policy_maps", settings_.tls_policy_maps);
  if (!settings_.cache_destinations.empty())
    cache_dest_ = maps::MatchList(settings_.prefix + "_connection_cache_destinations", settings_.cache_destinations,
                                  maps::MatchList::Kind::string);
}

ipc::ScacheClient* Agent::scache() {
  if (!scache_)
    scache_ = std::make_unique<ipc::ScacheClient>(reporter_.queue_directory, settings_.scache_service,
                                                  std::chrono::seconds(settings_.scache_timeout));
  return scache_->disabled() ? nullptr : scache_.get();
}

int Agent::deliver(agent::Delivery& delivery) {
  DeliveryRun run(*this, delivery);
  return run.run();
}

std::string Agent::changed_table() const {
  for (const maps::Maps* m : {&sasl_passwd_, &tls_policy_})
    for (const maps::DictPtr& d : m->dicts())
      if (d->has_changed()) return d->spec();
  return cache_dest_.changed_table();
}

}  // namespace mta::smtp
