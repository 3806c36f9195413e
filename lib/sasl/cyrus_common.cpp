// cyrus_common.cpp: see cyrus_common.hpp.
#include "sasl/cyrus_common.hpp"

#include <cstring>

#include "log/log.hpp"

namespace mta::sasl {
namespace {

int log_callback(void*, int level, const char* message) {
  if (message == nullptr) return SASL_OK;
  switch (level) {
    case SASL_LOG_ERR:
    case SASL_LOG_WARN: log::warning("SASL authentication problem: %s", message); break;
    case SASL_LOG_FAIL: log::warning("SASL authentication failure: %s", message); break;
    case SASL_LOG_NOTE: log::info("SASL authentication info: %s", message); break;
    case SASL_LOG_DEBUG: log::debug("SASL authentication debug: %s", message); break;
    case SASL_LOG_TRACE: log::debug("SASL authentication trace: %s", message); break;
    case SASL_LOG_PASS: log::debug("SASL authentication pass: %s", message); break;
    default: break;
  }
  return SASL_OK;
}

int confpath_callback(void* context, char** path) {
  *path = ::strdup(static_cast<const std::string*>(context)->c_str());  // the library frees it
  return *path != nullptr ? SASL_OK : SASL_NOMEM;
}

}  // namespace

unsigned security_flags(const SecurityOptions& o) {
  unsigned flags = 0;
  if (o.noplaintext) flags |= SASL_SEC_NOPLAINTEXT;
  if (o.noactive) flags |= SASL_SEC_NOACTIVE;
  if (o.nodictionary) flags |= SASL_SEC_NODICTIONARY;
  if (o.forward_secrecy) flags |= SASL_SEC_FORWARD_SECRECY;
  if (o.noanonymous) flags |= SASL_SEC_NOANONYMOUS;
  if (o.mutual_auth) flags |= SASL_SEC_MUTUAL_AUTH;
  return flags;
}

void make_cyrus_callbacks(sasl_callback_t (&list)[3], const std::string* conf_path) {
  list[0] = {SASL_CB_LOG, as_callback(&log_callback), nullptr};
  if (conf_path != nullptr)
    list[1] = {SASL_CB_GETCONFPATH, as_callback(&confpath_callback),
               const_cast<void*>(static_cast<const void*>(conf_path))};
  else
    list[1] = {SASL_CB_LIST_END, nullptr, nullptr};
  list[2] = {SASL_CB_LIST_END, nullptr, nullptr};
}

std::string cyrus_error_text(int status) {
  const char* text = sasl_errstring(status, nullptr, nullptr);
  return text != nullptr ? text : "SASL error " + std::to_string(status);
}

}  // namespace mta::sasl
