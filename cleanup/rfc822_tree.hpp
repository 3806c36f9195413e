// rfc822_tree.hpp: RFC 822 address lists as Postfix's tok822 sees them.
//
// Postfix parses every address it takes from a header or a command line
// with one permissive parser (tok822): it tokenizes the text, then groups
// the tokens from right to left into addresses, adding the commas that are
// missing, and throws nothing away.  Our sendmail extracts recipients and
// our cleanup rewrites header addresses with the same algorithm, so that
// "To: Bob Smith <bob>, carol" becomes exactly what Postfix makes of it
// ("To: Bob Smith <bob@example.com>, carol@example.com"), odd input
// included ("<<a@b" stays one address, as in Postfix).
//
// A Tree holds the tokens of one parse.  Operators are tokens whose type is
// the character itself ('<', '@', ',' ...); the others are atoms, quoted
// strings, comments (kept in their external form), domain literals,
// addresses (a node whose children are the address tokens) and the ':' that
// starts a group.  The text forms are:
//   internal  unquoted, as tables and delivery see it (john doe@example.com)
//   external  quoted where needed, as in headers ("john doe"@example.com)
// and externalize(..., one_per_line) puts a newline after each comma, for
// cleanup's header folding.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mta::rfc822 {

enum TokenType : int {
  kAtom = 256,
  kQuotedString,
  kComment,
  kDomainLiteral,
  kAddress,
  kStartGroup,
};

class Tree {
 public:
  // Tokenizes and groups TEXT (tok822_parse); LIMIT > 0 bounds the number of
  // tokens (token_limit), the rest of the text is then ignored.
  static Tree parse(std::string_view text, int limit = 0);
  // Tokenizes only (tok822_scan): a flat list, no address nodes.
  static Tree scan(std::string_view text, int limit = 0);

  bool empty() const { return first_ < 0; }
  // The address nodes at the top level, in order (tok822_grep).
  std::vector<int> addresses() const;

  // The whole list, or the children of address node NODE.
  std::string internalize() const { return internalize_list(first_, false); }
  std::string externalize(bool one_per_line = false) const { return externalize_list(first_, one_per_line); }
  std::string internalize_address(int node) const;
  std::string externalize_address(int node) const;  // the address tokens, no spaces added

  // Replaces the tokens of address node NODE by the tokens of the external
  // address TEXT, as cleanup does after trivial-rewrite answered.
  void replace_address(int node, std::string_view text);

 private:
  struct Node {
    int type = 0;
    std::string text;
    int prev = -1, next = -1;  // siblings
    int head = -1, tail = -1;  // children (address nodes)
    int owner = -1;            // the address node this token belongs to
  };

  int alloc(int type, std::string text = {});
  int scan_into(std::string_view text, int limit, int* tail);
  // List surgery, as tok822_tree.c.
  int append(int t1, int t2);
  int prepend(int t1, int t2);
  int cut_before(int t);
  int unlink(int t);
  int sub_append(int t1, int t2);
  int group(int type, int left, int right, int sync_type);
  bool append_space(int t) const;
  std::string internalize_list(int first, bool one_per_line) const;
  std::string externalize_list(int first, bool one_per_line) const;

  std::vector<Node> nodes_;
  int first_ = -1;
};

// Quotes the local part of an internal address when it is not an RFC 822
// dot-string (quote_822_local, 8-bit clean): john doe@x -> "john doe"@x.
std::string quote_local(std::string_view internal);
// The reverse (unquote_822_local): "john doe"@x -> john doe@x.
std::string unquote_local(std::string_view external);

// The first address of TEXT in internal form, and how many addresses TEXT
// holds (sendmail -f: more than one is warned about).
std::string first_address(std::string_view text, int* count = nullptr);
// Every address of TEXT in internal form (a header value, a command-line
// recipient).
std::vector<std::string> address_list(std::string_view text, int limit = 0);

}  // namespace mta::rfc822
