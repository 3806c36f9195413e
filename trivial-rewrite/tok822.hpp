// tok822.hpp: the RFC 822 token lists that address rewriting and resolving
// work on, with the exact behaviour of Postfix's tok822 module, because
// the strings that trivial-rewrite sends back (and so every address in the
// queue) depend on its details.
//
// An address is a flat list of tokens: atoms, quoted strings, domain
// literals, comments, and one-character operators (the RFC 822 specials
// plus % ! and |; "." is an operator).  scan() reads the external (quoted)
// form; externalize() writes it back, quoting where needed; internalize()
// writes the internal (unquoted) form.  Both insert a space between two
// adjacent non-operator tokens ("first last"), except after a token that
// was added to an emptied list (Postfix's "owned" tokens, see below).
//
// quote_local() is Postfix's quote_822_local() (8-bit clean): the local part
// of an internal address becomes a quoted string unless it is a valid
// dot-string; a leading source route ("@a,@b:") is left alone.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mta::rewrite {

// Token types.  Operators use their character value (< 256).
enum TokenType : int {
  kAtom = 256,
  kQuoted,
  kLiteral,  // [domain literal], text without the brackets
  kComment,  // text is the whole "(...)", as Postfix stores it
};

struct Token {
  int type = kAtom;
  std::string text;  // empty for operators
  // Postfix links tokens into trees and only inserts spaces after tokens
  // that have no owner; tokens that land in an empty address list get one.
  // This flag reproduces that.
  bool owned = false;

  static Token op(char c, bool owned_flag = false) { return Token{static_cast<unsigned char>(c), {}, owned_flag}; }
  bool is(int t) const { return type == t; }
};

using TokenList = std::vector<Token>;
inline constexpr size_t kNone = static_cast<size_t>(-1);

// tok822_scan: external form to tokens.  limit > 0 caps the token count.
TokenList scan(std::string_view external, size_t limit = 0);
// tok822_externalize / tok822_internalize of a whole list.
std::string externalize(const TokenList& tokens);
std::string internalize(const TokenList& tokens, size_t from = 0);

// Index of the last token of the type (tok822_rfind_type from the tail),
// or kNone.
size_t rfind_type(const TokenList& tokens, int type);
// Index of the first token of the type at or after `from`, or kNone.
size_t find_type(const TokenList& tokens, int type, size_t from = 0);

// tok822_sub_append / tok822_sub_prepend: insert tokens at the end or the
// front; they inherit the ownership of their neighbour, or become owned
// when the list was empty.
void sub_append(TokenList& tree, TokenList tokens);
void sub_prepend(TokenList& tree, TokenList tokens);

// quote_822_local with Postfix's default flags (8-bit clean); with
// bare_localpart the whole input is a local part (no @domain).
std::string quote_local(std::string_view internal, bool bare_localpart = false);

// RFC 822 specials plus Postfix's extra operators.
bool is_operator_char(int c);

}  // namespace mta::rewrite
