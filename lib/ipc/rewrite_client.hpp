// rewrite_client.hpp: the client of trivial-rewrite's private/rewrite
// service (Postfix's rewrite_clnt and resolve_clnt): "rewrite" an address
// by rule ("local" or "remote"), and "resolve" an address to
// {transport, nexthop, recipient, flags}.
//
// Like Postfix's clients it keeps the connection open, retries until the
// service answers ("problem talking to service rewrite: ..."), and
// remembers the last few answers of each kind (Postfix keeps one; smtpd
// asks about the same recipient several times per RCPT, and cleanup
// rewrites the sender and recipient, then the same addresses again in the
// From: and To: headers, which a one-entry cache always misses).  RewriteService is the
// interface that callers hold, so that tests can answer without a daemon.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <string_view>

#include "ipc/service.hpp"

namespace mta::ipc {

// The last few answers of a query keyed by two strings (rule or sender,
// and the address), replaced round robin, each good for 30 seconds as
// Postfix's rewrite_clnt and resolve_clnt keep theirs (a table changed by
// postmap without a reload shows within that time).
template <typename Answer, size_t N = 4>
class RecentAnswers {
 public:
  static constexpr std::chrono::seconds kLifetime{30};
  const Answer* find(std::string_view k1, std::string_view k2) const {
    auto now = std::chrono::steady_clock::now();
    for (const Entry& e : entries_)
      if (e.valid && e.k1 == k1 && e.k2 == k2 && now < e.expires) return &e.answer;
    return nullptr;
  }
  void remember(std::string_view k1, std::string_view k2, const Answer& answer) {
    entries_[next_] = {true, std::string(k1), std::string(k2), answer,
                       std::chrono::steady_clock::now() + kLifetime};
    next_ = (next_ + 1) % N;
  }

 private:
  struct Entry {
    bool valid = false;
    std::string k1, k2;
    Answer answer{};
    std::chrono::steady_clock::time_point expires{};
  };
  std::array<Entry, N> entries_{};
  size_t next_ = 0;
};

struct ResolveResult {
  std::string transport;
  std::string nexthop;
  std::string recipient;
  int flags = 0;  // proto::kResolveFlag* and kResolveClass*
};

class RewriteService {
 public:
  virtual ~RewriteService() = default;
  // RULE is "local" or "remote".
  virtual std::string rewrite(std::string_view rule, std::string_view address) = 0;
  // The address in internal form; a service failure sets kResolveFlagFail.
  virtual ResolveResult resolve(std::string_view sender, std::string_view address) = 0;
};

class RewriteClient : public RewriteService {
 public:
  // queue_directory: where private/NAME lives ("." after the server
  // skeleton's chdir).
  explicit RewriteClient(std::string queue_directory = ".", std::string service = "rewrite");
  std::string rewrite(std::string_view rule, std::string_view address) override;
  ResolveResult resolve(std::string_view sender, std::string_view address) override;
  ServiceClient& connection() { return client_; }

 private:
  ServiceClient client_;
  RecentAnswers<std::string> rewrites_;     // (rule, address) -> address
  RecentAnswers<ResolveResult> resolves_;   // (sender, address) -> result
};

}  // namespace mta::ipc
