// cyrus_client.cpp: see cyrus_client.hpp.
#include "sasl/cyrus_client.hpp"

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include <cstdlib>
#include <cstring>

#include "log/log.hpp"
#include "sasl/cyrus_common.hpp"

namespace mta::sasl {

namespace {

std::string g_client_conf_path;
bool g_client_initialized = false;

sasl_callback_t g_client_callbacks[3];

}  // namespace

struct Client::Callbacks {
  sasl_callback_t list[4];
};

bool init_client(std::string_view config_path, std::string& error) {
  if (g_client_initialized) return true;
  g_client_conf_path = config_path;
  make_cyrus_callbacks(g_client_callbacks, g_client_conf_path.empty() ? nullptr : &g_client_conf_path);
  int status = sasl_client_init(g_client_callbacks);
  if (status != SASL_OK) {
    error = "SASL library initialization: " + cyrus_error_text(status);
    return false;
  }
  g_client_initialized = true;
  return true;
}

namespace {

int get_user(void* context, int id, const char** result, unsigned* len) {
  auto* user = static_cast<const std::string*>(context);
  if (id != SASL_CB_USER && id != SASL_CB_AUTHNAME) return SASL_FAIL;
  *result = user->c_str();
  if (len) *len = static_cast<unsigned>(user->size());
  return SASL_OK;
}

int get_secret(sasl_conn_t*, void* context, int id, sasl_secret_t** psecret) {
  if (id != SASL_CB_PASS) return SASL_FAIL;
  *psecret = static_cast<sasl_secret_t*>(context);
  return SASL_OK;
}

}  // namespace

std::unique_ptr<Client> Client::create(std::string_view service, std::string_view server_name,
                                       const SecurityOptions& o, std::string& error) {
  std::unique_ptr<Client> c(new Client);
  c->callbacks_ = std::make_unique<Callbacks>();
  // The user and password are filled in by first(); the callbacks point at them.
  c->callbacks_->list[0] = {SASL_CB_USER, as_callback(&get_user), &c->user_};
  c->callbacks_->list[1] = {SASL_CB_AUTHNAME, as_callback(&get_user), &c->user_};
  c->callbacks_->list[2] = {SASL_CB_PASS, as_callback(&get_secret), nullptr};
  c->callbacks_->list[3] = {SASL_CB_LIST_END, nullptr, nullptr};
  int status = sasl_client_new(std::string(service).c_str(), std::string(server_name).c_str(), nullptr, nullptr,
                               c->callbacks_->list, 0, &c->conn_);
  if (status != SASL_OK) {
    error = "per-session SASL client initialization: " + cyrus_error_text(status);
    return nullptr;
  }
  sasl_security_properties_t props{};
  props.min_ssf = 0;
  props.max_ssf = 0;  // no SASL security layer
  props.maxbufsize = 0;
  props.security_flags = security_flags(o);
  status = sasl_setprop(c->conn_, SASL_SEC_PROPS, &props);
  if (status != SASL_OK) {
    error = "set security properties: " + cyrus_error_text(status);
    return nullptr;
  }
  return c;
}

Client::~Client() {
  if (conn_) sasl_dispose(&conn_);
  if (secret_) std::memset(secret_.get(), 0, sizeof(sasl_secret_t) + password_.size());
}

bool Client::encode(const char* data, unsigned len, std::string& reply) {
  reply.clear();
  if (data == nullptr || len == 0) return true;
  std::string buf(len * 4 / 3 + 8, '\0');
  unsigned out = 0;
  int status = sasl_encode64(data, len, buf.data(), static_cast<unsigned>(buf.size()), &out);
  if (status != SASL_OK) {
    reply = cyrus_error_text(status);
    return false;
  }
  buf.resize(out);
  reply = std::move(buf);
  return true;
}

bool Client::first(std::string_view mechanisms, std::string_view user, std::string_view password,
                   std::string& mechanism, std::string& reply) {
  user_ = user;
  password_ = password;
  secret_ = std::make_unique<unsigned char[]>(sizeof(sasl_secret_t) + password_.size() + 1);
  auto* secret = reinterpret_cast<sasl_secret_t*>(secret_.get());
  secret->len = password_.size();
  std::memcpy(secret->data, password_.data(), password_.size());
  callbacks_->list[2].context = secret;
  const char* out = nullptr;
  unsigned outlen = 0;
  const char* mech = nullptr;
  int status = sasl_client_start(conn_, std::string(mechanisms).c_str(), nullptr, &out, &outlen, &mech);
  if (status != SASL_OK && status != SASL_CONTINUE) {
    reply = cyrus_error_text(status);
    return false;
  }
  mechanism = mech ? mech : "";
  return encode(out, outlen, reply);
}

bool Client::next(std::string_view challenge, std::string& reply) {
  std::string decoded(challenge.size() + 4, '\0');
  unsigned dlen = 0;
  int status = sasl_decode64(challenge.data(), static_cast<unsigned>(challenge.size()), decoded.data(),
                             static_cast<unsigned>(decoded.size()), &dlen);
  if (status != SASL_OK) {
    reply = cyrus_error_text(status);
    return false;
  }
  const char* out = nullptr;
  unsigned outlen = 0;
  status = sasl_client_step(conn_, decoded.data(), dlen, nullptr, &out, &outlen);
  if (status != SASL_OK && status != SASL_CONTINUE) {
    reply = cyrus_error_text(status);
    return false;
  }
  return encode(out, outlen, reply);
}

}  // namespace mta::sasl
