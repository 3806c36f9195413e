// tok822.cpp: see tok822.hpp.
#include "trivial-rewrite/tok822.hpp"

namespace mta::rewrite {
namespace {

constexpr std::string_view kOperators = "|%!()<>@,;:\\\".[]";
constexpr std::string_view kQuotedEscapes = "\"\\\r\n";
constexpr std::string_view kLiteralEscapes = "\\\r\n";

bool is_space_tab_cr_lf(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_ascii_cntrl(int c) { return (c >= 0 && c < 32) || c == 127; }

int byte_at(std::string_view s, size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; }

// Postfix's COLLECT: characters while cond holds, a backslash taking the
// next character whatever it is; white space becomes a plain space.  Stops
// at a NUL byte, as the C string would.
template <class Cond>
void collect(std::string_view s, size_t& i, std::string& out, Cond cond) {
  for (;;) {
    int c = byte_at(s, i);
    if (c == 0) break;
    if (c == '\\') {
      c = byte_at(s, ++i);
      if (c == 0) break;
    } else if (!cond(c)) {
      break;
    }
    out += is_space_tab_cr_lf(c) ? ' ' : static_cast<char>(c);
    ++i;
  }
}

void collect_comment(std::string_view s, size_t& i, std::string& out) {
  int level = 1;
  out += '(';
  for (;;) {
    int c = byte_at(s, i);
    if (c == 0) break;
    out += static_cast<char>(c);
    ++i;
    if (c == '(') {
      ++level;
    } else if (c == ')') {
      if (--level == 0) break;
    } else if (c == '\\') {
      c = byte_at(s, i);
      if (c == 0) break;
      out += static_cast<char>(c);
      ++i;
    }
  }
}

bool is_non_operator(const Token& t) {
  return t.type == kAtom || t.type == kQuoted || t.type == kComment || t.type == kLiteral;
}

bool append_space(const TokenList& list, size_t i) {
  if (i + 1 >= list.size() || list[i].owned) return false;
  const Token& tp = list[i];
  const Token& next = list[i + 1];
  if (tp.type == ',' || next.type == '<') return true;
  return is_non_operator(tp) && is_non_operator(next);
}

void copy_quoted(std::string& out, std::string_view text, std::string_view quote_set) {
  for (char c : text) {
    if (quote_set.find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
}

bool is_dot_string(std::string_view local) {
  if (local.empty() || local.front() == '.') return false;
  for (size_t i = 0; i < local.size(); ++i) {
    int c = static_cast<unsigned char>(local[i]);
    if (c == '.' && i + 1 < local.size() && local[i + 1] == '.') return false;
    if (c == ' ' || is_ascii_cntrl(c)) return false;
    if (std::string_view("()<>@,;:\\\"[]").find(static_cast<char>(c)) != std::string_view::npos) return false;
  }
  return local.back() != '.';
}

void inherit_ownership(TokenList& tokens, bool owned) {
  for (Token& t : tokens) t.owned = owned;
}

}  // namespace

bool is_operator_char(int c) { return c > 0 && c < 256 && kOperators.find(static_cast<char>(c)) != std::string_view::npos; }

TokenList scan(std::string_view s, size_t limit) {
  TokenList out;
  size_t i = 0;
  for (;;) {
    int ch = byte_at(s, i++);
    if (ch == 0) break;
    if (is_space_tab_cr_lf(ch)) continue;
    Token tp;
    if (ch == '(') {
      tp.type = kComment;
      collect_comment(s, i, tp.text);
    } else if (ch == '[') {
      tp.type = kLiteral;
      collect(s, i, tp.text, [](int c) { return c != ']'; });
      if (byte_at(s, i)) ++i;
    } else if (ch == '"') {
      tp.type = kQuoted;
      collect(s, i, tp.text, [](int c) { return c != '"'; });
      if (byte_at(s, i)) ++i;
    } else if (ch != '\\' && is_operator_char(ch)) {
      tp.type = ch;
    } else {
      tp.type = kAtom;
      --i;  // a backslash may come first
      collect(s, i, tp.text, [](int c) { return !is_space_tab_cr_lf(c) && !is_operator_char(c); });
      // An atom that needs quoting when externalized is a quoted string.
      for (char c : tp.text) {
        int u = static_cast<unsigned char>(c);
        if (u == ' ' || is_ascii_cntrl(u) || is_operator_char(u)) {
          tp.type = kQuoted;
          break;
        }
      }
    }
    out.push_back(std::move(tp));
    if (limit > 0 && out.size() >= limit) break;
  }
  return out;
}

std::string externalize(const TokenList& tokens) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& tp = tokens[i];
    switch (tp.type) {
      case kAtom:
      case kComment: out += tp.text; break;
      case kQuoted:
        out += '"';
        copy_quoted(out, tp.text, kQuotedEscapes);
        out += '"';
        break;
      case kLiteral:
        out += '[';
        copy_quoted(out, tp.text, kLiteralEscapes);
        out += ']';
        break;
      default: out += static_cast<char>(tp.type); break;
    }
    if (append_space(tokens, i)) out += ' ';
  }
  return out;
}

std::string internalize(const TokenList& tokens, size_t from) {
  std::string out;
  for (size_t i = from; i < tokens.size(); ++i) {
    const Token& tp = tokens[i];
    switch (tp.type) {
      case kAtom:
      case kComment:
      case kQuoted: out += tp.text; break;
      case kLiteral:
        out += '[';
        out += tp.text;
        out += ']';
        break;
      default: out += static_cast<char>(tp.type); break;
    }
    if (append_space(tokens, i)) out += ' ';
  }
  return out;
}

size_t rfind_type(const TokenList& tokens, int type) {
  for (size_t i = tokens.size(); i-- > 0;)
    if (tokens[i].type == type) return i;
  return kNone;
}

size_t find_type(const TokenList& tokens, int type, size_t from) {
  for (size_t i = from; i < tokens.size(); ++i)
    if (tokens[i].type == type) return i;
  return kNone;
}

void sub_append(TokenList& tree, TokenList tokens) {
  inherit_ownership(tokens, tree.empty() ? true : tree.back().owned);
  tree.insert(tree.end(), std::make_move_iterator(tokens.begin()), std::make_move_iterator(tokens.end()));
}

void sub_prepend(TokenList& tree, TokenList tokens) {
  inherit_ownership(tokens, tree.empty() ? true : tree.front().owned);
  tree.insert(tree.begin(), std::make_move_iterator(tokens.begin()), std::make_move_iterator(tokens.end()));
}

std::string quote_local(std::string_view mbox, bool bare_localpart) {
  size_t start = 0;
  if (!mbox.empty() && mbox[0] == '@') {
    size_t colon = mbox.find(':');
    if (colon != std::string_view::npos) start = colon + 1;
  }
  size_t end = bare_localpart ? std::string_view::npos : mbox.rfind('@');
  if (end == std::string_view::npos || end < start) end = mbox.size();
  std::string_view local = mbox.substr(start, end - start);
  if (is_dot_string(local)) return std::string(mbox);
  std::string out(mbox.substr(0, start));
  out += '"';
  for (char c : local) {
    if (c == '"' || c == '\\' || c == '\r') out += '\\';
    out += c;
  }
  out += '"';
  out += mbox.substr(end);
  return out;
}

}  // namespace mta::rewrite
