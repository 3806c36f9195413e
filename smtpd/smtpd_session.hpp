// smtpd_session.hpp: one SMTP session, a state machine on the process's
// event loop (many sessions per smtpd process).
//
// Input is read through a bufferevent (an OpenSSL one after STARTTLS or in
// wrapper mode) and handled a line at a time: commands dispatch from a
// table {verb, handler, flags} as in Postfix's smtpd.c; DATA and BDAT
// content goes to cleanup as queue-file records while it arrives.  Replies
// to pipelined commands collect in the output buffer and leave together.
// The session stops reading while cleanup is behind (backpressure), while
// it waits for cleanup's verdict on a message (the 250 comes only after
// the queue file is on disk), during the error sleep, during a TLS
// handshake, while the worker pool (dns_pool.hpp) looks up the client's
// name at connect or the DNS questions of a command's restrictions (the
// command then runs with the answers at hand), and while a SASL step
// (saslauthd, Dovecot) runs in the SASL worker pool.
//
// Files: smtpd_session.cpp (I/O, dispatch, limits, logging),
// smtpd_commands.cpp (HELO ... QUIT), smtpd_data.cpp (DATA, BDAT, the
// Received header, the transaction's records).
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <functional>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/anvil_client.hpp"
#include "sasl/sasl_server.hpp"
#include "smtpd/cleanup_stream.hpp"
#include "smtpd/smtpd_check.hpp"
#include "tls/tls_session.hpp"

struct bufferevent;
struct event;
struct evbuffer;
typedef struct ssl_st SSL;

namespace mta::smtpd {

class Smtpd;

class Session {
 public:
  Session(Smtpd& server, int fd);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Looks the client up, applies the connect-time limits and checks, and
  // sends the greeting (or the refusal).
  void start();
  void greet();
  // The process is stopping: "421 4.3.2 Service shutting down" and close.
  void shutdown();

  // The command table (smtpd_commands.cpp).
  // A handler replies and says how it went: ok and failed count in the
  // disconnect statistics (a failure is also an error, as in Postfix);
  // pending: the outcome comes later (DATA waiting for cleanup, AUTH).
  enum class Outcome { ok, failed, pending };
  struct Command {
    const char* verb;
    Outcome (Session::*handler)(std::string_view args);
    unsigned flags;
  };
  static constexpr unsigned kLimit = 1;   // counts toward smtpd_junk_command_limit
  static constexpr unsigned kPreTls = 2;  // allowed before STARTTLS when TLS is required
  static constexpr unsigned kLast = 4;    // must be the last of a pipelined group
  static constexpr size_t kCommandCount = 13;
  static const std::array<Command, kCommandCount> kCommands;

 private:
  enum class Phase { command, data, bdat, auth, tls, waiting, closing };

  // ---- I/O (smtpd_session.cpp)
  static void on_read(struct bufferevent* bev, void* self);
  static void on_write(struct bufferevent* bev, void* self);
  static void on_event(struct bufferevent* bev, short what, void* self);
  static void on_sleep_done(int fd, short what, void* self);
  static void on_flush(int fd, short what, void* self);
  void flush_output();
  void set_bufferevent(struct bufferevent* bev);
  void process_input();
  bool read_line(std::string& line, bool& crlf, bool& truncated);
  void handle_command_line(std::string line, bool crlf, bool truncated);
  void reply(std::string_view text);
  // An error reply: counts toward the soft and hard limits, sleeps after
  // the soft limit, disconnects at the hard limit.
  void error_reply(std::string_view text);
  void close_after_output();
  void destroy_when_flushed();
  size_t output_pending() const;
  void destroy();
  void log_disconnect();
  std::string pending_input_sample(size_t max);
  void client_addresses(int fd);
  void client_known();
  void pause_input();
  void resume_input();

  // A stage of the access policy (none in stand-alone mode), answering
  // DNS questions from what prefetch_dns() collected.
  using CheckMethod = std::optional<std::string> (Checker::*)(SessionFacts&);
  std::optional<std::string> policy(CheckMethod method);

  // ---- waiting for the worker pool (smtpd_session.cpp)
  // Asks the DNS questions that the restrictions of STAGE could ask for
  // FACTS (as they will be when the check runs) and are not answered yet:
  // true when it did, and THEN runs once they are answered (input is
  // paused meanwhile); false when nothing needs asking.
  bool prefetch_dns(Stage stage, const SessionFacts& facts, std::function<void()> then);
  // The stage and facts of a command's check, for the prefetch (false
  // when the command will not reach the check).
  bool command_facts(size_t index, std::string_view args, SessionFacts& facts, Stage& stage) const;
  void run_command(size_t index, std::string args, bool prefetched);
  void connect_checks(bool prefetched);
  // A wait: JOBS answers to come within smtpd_timeout; ON_TIMEOUT fills in
  // what did not come; THEN goes on.
  void begin_wait(size_t jobs, std::function<void()> on_timeout, std::function<void()> then);
  void job_done(unsigned long generation);
  void end_wait();
  static void on_wait_timeout(int fd, short what, void* self);

  // ---- commands (smtpd_commands.cpp)
  Outcome cmd_helo(std::string_view args);
  Outcome cmd_ehlo(std::string_view args);
  Outcome cmd_starttls(std::string_view args);
  Outcome cmd_auth(std::string_view args);
  Outcome cmd_mail(std::string_view args);
  Outcome cmd_rcpt(std::string_view args);
  Outcome cmd_data(std::string_view args);
  Outcome cmd_bdat(std::string_view args);
  Outcome cmd_rset(std::string_view args);
  Outcome cmd_noop(std::string_view args);
  Outcome cmd_vrfy(std::string_view args);
  Outcome cmd_etrn(std::string_view args);
  Outcome cmd_quit(std::string_view args);
  Outcome helo_common(std::string_view args, bool extended);
  void finish_command(size_t index, Outcome outcome);
  size_t command_index(std::string_view verb) const;
  void auth_response(const std::string& line);
  // Runs STEP (the SASL server's start or next) in the worker pool while
  // input is paused, then replies and counts the AUTH command's outcome.
  using AuthStep = std::function<sasl::ServerSession::Result(sasl::ServerSession&, std::string& out)>;
  void auth_step(AuthStep step);
  Outcome auth_result(sasl::ServerSession& sasl, sasl::ServerSession::Result result, const std::string& out);
  sasl::ServerSession* sasl_session();
  void starttls_handshake_done(bool ok);
  bool start_tls();
  std::string tls_received_clause() const;
  bool command_allowed_before_tls(unsigned flags) const;
  std::string reject_reply_code(std::string reply) const;

  // ---- transaction and content (smtpd_data.cpp)
  bool open_cleanup();
  struct PendingRecipient {
    std::string internal, given;
    int notify = 0;
    std::string orcpt;
  };
  void open_cleanup_for(PendingRecipient rcpt);
  void cleanup_opened();
  void reset_transaction();
  void write_envelope_start();
  void write_recipient(const std::string& internal, const std::string& given, int notify, const std::string& orcpt);
  void begin_content();
  void data_input();
  bool data_lines_in_place(struct evbuffer* in, size_t limit);
  void data_line(std::string_view line, bool crlf, bool complete);
  void bdat_input();
  void bdat_content(std::string_view bytes, bool flush);
  void content_record(std::string_view text, bool complete);
  void end_of_message(std::string_view verb, bool prefetched = false);
  void message_done(int status, const std::string& reason, std::string verb);
  std::string received_header_lines();

  Smtpd& server_;
  struct bufferevent* bev_ = nullptr;
  struct event* sleep_timer_ = nullptr;
  struct event* flush_event_ = nullptr;
  std::string pending_out_;  // replies not yet handed to the socket
  bool flush_scheduled_ = false;
  SSL* ssl_ = nullptr;
  Phase phase_ = Phase::command;
  bool input_paused_ = false;
  bool skip_rest_of_line_ = false;  // after a command line over line_length_limit
  std::string truncated_line_;      // its first line_length_limit bytes
  bool tls_after_sleep_ = false;    // STARTTLS's 220 waits for the error sleep
  bool destroyed_ = false;
  bool client_gone_ = false;
  bool opening_inline_ = false;  // open_cleanup_for() has not returned yet  // EOF while cleanup was still writing the message
  std::string access_denied_;  // smtpd_delay_reject = no and the client was refused
  bool closing_ = false;
  bool holding_replies_ = false;  // during the error sleep
  std::string held_replies_;
  std::string last_command_ = "CONNECT";  // for "timeout after X", "lost connection after X"

  SessionFacts facts_;
  std::string namaddr_;  // "name[addr]"
  sockaddr_storage peer_{};
  socklen_t peer_len_ = 0;

  // Worker pool jobs.  Their answers come back through the event loop
  // holding alive_ (null once the session is gone) and the generation of
  // their wait (an answer of a wait that timed out is dropped).
  std::shared_ptr<Session*> alive_;
  unsigned long wait_generation_ = 0;
  size_t wait_outstanding_ = 0;
  bool waiting_ = false;
  // Set when the current wait is over or the session goes: the pool
  // skips the jobs of that wait that have not started.
  std::shared_ptr<std::atomic<bool>> wait_cancelled_;
  std::function<void()> wait_timeout_;
  std::function<void()> wait_then_;
  struct event* wait_timer_ = nullptr;
  DnsAnswers dns_answers_;
  std::string rfc_addr_; // "127.0.0.1" or "IPv6:::1"
  int address_family_ = 0;

  // The disconnect statistics, per kCommands entry: {ok, total}.
  std::array<std::array<int, 2>, kCommandCount> counts_{};
  int unknown_total_ = 0;
  int error_count_ = 0;
  int junk_count_ = 0;

  bool helo_seen_ = false;
  bool ehlo_seen_ = false;  // PIPELINING offered
  bool tls_active_ = false;
  tls::SessionInfo tls_info_;
  bool bare_newline_exempt_ = false;
  std::string helo_verb_;  // "HELO" or "EHLO", for logs
  std::string sasl_mechanism_;
  std::unique_ptr<ipc::AnvilClient> anvil_;
  // Shared with the worker pool while a step runs (the session may go
  // first); null after a step that outlived smtpd_timeout.
  std::shared_ptr<sasl::ServerSession> sasl_;
  bool sasl_failed_open_ = false;
  bool limit_exceeded(const char* what, long long limit, int rate);

  // The mail transaction.
  std::unique_ptr<CleanupStream> cleanup_;
  bool tx_active_ = false;       // MAIL given
  bool tx_failed_ = false;       // cleanup failed: refuse at end of data
  std::string tx_fail_reply_;
  std::vector<std::string> recipients_;  // accepted, internal form
  std::string ret_, envid_, body_;
  std::string verp_;  // XVERP delimiters
  bool smtputf8_ = false;
  long long declared_size_ = 0;
  struct timeval arrival_{};
  int rcpt_total_ = 0;  // RCPT attempts in this transaction (overshoot limit)

  // DATA / BDAT.
  bool prev_crlf_ = true;   // the previous content line ended in CR LF
  bool prev_cont_ = false;  // the previous record was a partial line
  bool saw_bare_lf_ = false;
  long long content_size_ = 0;
  bool size_exceeded_ = false;
  long long bdat_remaining_ = 0;
  long long bdat_chunk_ = 0;
  bool bdat_last_ = false;
  bool bdat_active_ = false;   // a BDAT transaction is under way
  bool bdat_discard_ = false;  // the chunks of a refused transaction are read and dropped
  std::string bdat_line_;      // partial line across chunks
  bool bdat_cr_ = false;       // the chunk so far ended in CR
};

}  // namespace mta::smtpd
