// address.cpp: see address.hpp.
#include "address/address.hpp"

namespace mta::address {
namespace {

bool is_special(char c) { return std::string_view("()<>@,;:\\\".[]").find(c) != std::string_view::npos; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_ctl(char c) { return static_cast<unsigned char>(c) < 32 || c == 127; }

// RFC 5322 atext (plus 8-bit bytes, which SMTPUTF8 allows).
bool is_atext(char c) {
  if (static_cast<unsigned char>(c) >= 128) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool local_needs_quotes(std::string_view local) {
  if (local.empty()) return false;
  if (local.front() == '.' || local.back() == '.') return true;
  for (size_t i = 0; i < local.size(); ++i) {
    char c = local[i];
    if (c == '.') {
      if (i + 1 < local.size() && local[i + 1] == '.') return true;
      continue;
    }
    if (!is_atext(c)) return true;
  }
  return false;
}

}  // namespace

std::string_view local_part(std::string_view internal) {
  size_t at = internal.rfind('@');
  return at == std::string_view::npos ? internal : internal.substr(0, at);
}

std::string_view domain_part(std::string_view internal) {
  size_t at = internal.rfind('@');
  return at == std::string_view::npos ? std::string_view() : internal.substr(at + 1);
}

InternalAddress to_internal(std::string_view ext) {
  // Find the @ that separates the domain: the last one outside quotes.
  size_t split = std::string_view::npos;
  bool in_quotes = false;
  for (size_t i = 0; i < ext.size(); ++i) {
    char c = ext[i];
    if (c == '\\' && i + 1 < ext.size()) {
      ++i;
      continue;
    }
    if (c == '"') in_quotes = !in_quotes;
    else if (c == '@' && !in_quotes) split = i;
  }
  std::string_view local = split == std::string_view::npos ? ext : ext.substr(0, split);
  std::string out;
  in_quotes = false;
  for (size_t i = 0; i < local.size(); ++i) {
    char c = local[i];
    if (c == '\\' && i + 1 < local.size()) {
      out += local[++i];
    } else if (c == '"') {
      in_quotes = !in_quotes;
    } else {
      out += c;
    }
  }
  if (split != std::string_view::npos) {
    out += '@';
    out += ext.substr(split + 1);
  }
  return {out};
}

ExternalAddress to_external(std::string_view internal) {
  size_t at = internal.rfind('@');
  std::string_view local = at == std::string_view::npos ? internal : internal.substr(0, at);
  std::string out;
  if (local_needs_quotes(local)) {
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  } else {
    out = std::string(local);
  }
  if (at != std::string_view::npos) {
    out += '@';
    out += internal.substr(at + 1);
  }
  return {out};
}

std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (is_space(c)) {
      ++i;
    } else if (c == '"') {
      std::string text;
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        text += s[i];
      }
      ++i;  // closing quote (a missing one ends the text, as tok822 does)
      out.push_back({TokenKind::quoted, text});
    } else if (c == '(') {
      std::string text;
      int depth = 1;
      for (++i; i < s.size() && depth > 0; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          text += s[++i];
          continue;
        }
        if (s[i] == '(') ++depth;
        if (s[i] == ')' && --depth == 0) break;
        text += s[i];
      }
      ++i;
      out.push_back({TokenKind::comment, text});
    } else if (c == '[') {
      std::string text;
      for (++i; i < s.size() && s[i] != ']'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        text += s[i];
      }
      ++i;
      out.push_back({TokenKind::literal, text});
    } else if (is_special(c)) {
      out.push_back({TokenKind::special, std::string(1, c)});
      ++i;
    } else {
      std::string text;
      while (i < s.size() && !is_space(s[i]) && !is_special(s[i]) && !is_ctl(s[i])) text += s[i++];
      if (text.empty()) {
        ++i;  // a control character: skip it
        continue;
      }
      out.push_back({TokenKind::atom, text});
    }
  }
  return out;
}

std::vector<InternalAddress> parse_header_addresses(std::string_view value) {
  std::vector<Token> all = tokenize(value);
  std::vector<Token> tokens;
  for (Token& t : all)
    if (t.kind != TokenKind::comment) tokens.push_back(std::move(t));

  // Split into mailboxes at top-level commas; a group "name: a, b;" opens at
  // ':' and closes at ';'.  In each piece the address is the text between
  // <> when there is a pair, else the whole piece.
  std::vector<InternalAddress> out;
  auto emit = [&out](const std::vector<Token>& piece) {
    size_t open = piece.size(), close = piece.size();
    for (size_t k = 0; k < piece.size(); ++k) {
      if (piece[k].kind == TokenKind::special && piece[k].text == "<") open = k;
      if (piece[k].kind == TokenKind::special && piece[k].text == ">" && open < piece.size()) {
        close = k;
        break;
      }
    }
    size_t b = 0, e = piece.size();
    if (open < piece.size()) {
      b = open + 1;
      e = close < piece.size() ? close : piece.size();
      // A source route "<@a,@b:user@c>" keeps only the last part.
      for (size_t k = b; k < e; ++k)
        if (piece[k].kind == TokenKind::special && piece[k].text == ":") b = k + 1;
    }
    std::string local, domain;
    bool in_domain = false;
    for (size_t k = b; k < e; ++k) {
      const Token& t = piece[k];
      if (t.kind == TokenKind::special && t.text == "@" && !in_domain) {
        in_domain = true;
        continue;
      }
      std::string text = t.kind == TokenKind::literal ? "[" + t.text + "]" : t.text;
      (in_domain ? domain : local) += text;
    }
    if (local.empty() && domain.empty()) return;
    out.push_back({in_domain ? local + "@" + domain : local});
  };
  std::vector<Token> piece;
  for (size_t k = 0; k < tokens.size(); ++k) {
    const Token& t = tokens[k];
    bool in_angle = false;
    for (const Token& p : piece)
      if (p.kind == TokenKind::special) in_angle = p.text == "<" ? true : p.text == ">" ? false : in_angle;
    if (t.kind == TokenKind::special && !in_angle) {
      if (t.text == ",") {
        emit(piece);
        piece.clear();
        continue;
      }
      if (t.text == ":") {  // group name: drop it
        piece.clear();
        continue;
      }
      if (t.text == ";") {
        emit(piece);
        piece.clear();
        continue;
      }
    }
    piece.push_back(t);
  }
  emit(piece);
  return out;
}

std::string verp_sender(std::string_view delimiters, std::string_view sender, std::string_view recipient) {
  size_t s_at = sender.rfind('@');
  size_t s_local = s_at == std::string_view::npos ? sender.size() : s_at;
  size_t r_at = recipient.rfind('@');
  size_t r_local = r_at == std::string_view::npos ? recipient.size() : r_at;
  std::string out(sender.substr(0, s_local));
  out += delimiters.empty() ? '+' : delimiters[0];
  out += recipient.substr(0, r_local);
  if (r_local + 1 < recipient.size()) {
    out += delimiters.size() < 2 ? '=' : delimiters[1];
    out += recipient.substr(r_local + 1);
  }
  if (s_local + 1 < sender.size()) {
    out += '@';
    out += sender.substr(s_local + 1);
  }
  return out;
}

}  // namespace mta::address
