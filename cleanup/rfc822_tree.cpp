// rfc822_tree.cpp: see rfc822_tree.hpp.  The grouping walks the token list
// from right to left with two sentinel nodes, as Postfix's tok822_parse, so
// that odd input comes out the same way.
#include "cleanup/rfc822_tree.hpp"

#include <cstring>

namespace mta::rfc822 {
namespace {

constexpr std::string_view kOperators = "|%!()<>@,;:\\\".[]";  // tok822's operators
constexpr int kDoWord = 1 << 0;
constexpr int kDoGroup = 1 << 1;

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_operator(unsigned char c) { return kOperators.find(static_cast<char>(c)) != std::string_view::npos; }
bool is_control(unsigned char c) { return c < 32 || c == 127; }

bool non_operator(int type) {
  return type == kAtom || type == kQuotedString || type == kComment || type == kDomainLiteral || type == kAddress;
}

// Text up to the first NUL: tok822 works on C strings.
std::string_view c_string(std::string_view text) {
  size_t nul = text.find('\0');
  return nul == std::string_view::npos ? text : text.substr(0, nul);
}

void copy_quoted(std::string& out, std::string_view text, std::string_view quote_set) {
  for (char c : text) {
    if (quote_set.find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
}

}  // namespace

int Tree::alloc(int type, std::string text) {
  Node n;
  n.type = type;
  n.text = std::move(text);
  nodes_.push_back(std::move(n));
  return static_cast<int>(nodes_.size() - 1);
}

int Tree::append(int t1, int t2) {
  int next = nodes_[t1].next;
  int owner = nodes_[t1].owner;
  nodes_[t1].next = t2;
  nodes_[t2].prev = t1;
  nodes_[t2].owner = owner;
  while (nodes_[t2].next >= 0) {
    t2 = nodes_[t2].next;
    nodes_[t2].owner = owner;
  }
  nodes_[t2].next = next;
  if (next >= 0) nodes_[next].prev = t2;
  return t2;
}

int Tree::prepend(int t1, int t2) {
  int prev = nodes_[t1].prev;
  int owner = nodes_[t1].owner;
  if (prev >= 0) nodes_[prev].next = t2;
  nodes_[t2].prev = prev;
  nodes_[t2].owner = owner;
  while (nodes_[t2].next >= 0) {
    t2 = nodes_[t2].next;
    nodes_[t2].owner = owner;
  }
  nodes_[t2].next = t1;
  nodes_[t1].prev = t2;
  return t2;
}

int Tree::cut_before(int t) {
  int prev = nodes_[t].prev;
  if (prev >= 0) {
    nodes_[prev].next = -1;
    nodes_[t].prev = -1;
  }
  return prev;
}

int Tree::unlink(int t) {
  int prev = nodes_[t].prev, next = nodes_[t].next;
  if (prev >= 0) nodes_[prev].next = next;
  if (next >= 0) nodes_[next].prev = prev;
  nodes_[t].prev = nodes_[t].next = -1;
  return prev;
}

int Tree::sub_append(int t1, int t2) {
  if (nodes_[t1].head >= 0) return nodes_[t1].tail = append(nodes_[t1].tail, t2);
  nodes_[t1].head = t2;
  nodes_[t2].owner = t1;
  while (nodes_[t2].next >= 0) {
    t2 = nodes_[t2].next;
    nodes_[t2].owner = t1;
  }
  return nodes_[t1].tail = t2;
}

// Clusters the tokens strictly between LEFT and RIGHT under a new node of
// TYPE, with an optional resynchronizing token (a missing comma) in front.
int Tree::group(int type, int left, int right, int sync_type) {
  if (left == right) return left;
  int first = nodes_[left].next;
  if (first == right) return left;
  cut_before(right);
  cut_before(first);
  int g = alloc(type);
  sub_append(g, first);
  // Splice the group node in where its tokens were.  (tok822_group appends
  // the rest of the list after it, walking it to the end each time: a
  // quadratic parse of a long address list, such as a table result with
  // 100,000 addresses.)
  nodes_[g].owner = nodes_[left].owner;
  nodes_[left].next = g;
  nodes_[g].prev = left;
  nodes_[g].next = right;
  nodes_[right].prev = g;
  if (sync_type) append(left, alloc(sync_type));
  return left;
}

int Tree::scan_into(std::string_view input, int limit, int* tail_out) {
  std::string_view s = c_string(input);
  size_t i = 0;
  int head = -1, tail = -1, count = 0;
  // Collects characters while COND holds; a backslash takes the next
  // character whatever it is; white space becomes a blank.
  auto collect = [&](int node, auto cond) {
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '\\') {
        if (++i >= s.size()) break;
        c = static_cast<unsigned char>(s[i]);
      } else if (!cond(c)) {
        break;
      }
      nodes_[node].text += is_space(c) ? ' ' : static_cast<char>(c);
      ++i;
    }
  };
  while (i < s.size()) {
    auto ch = static_cast<unsigned char>(s[i++]);
    if (is_space(ch)) continue;
    int tp;
    if (ch == '(') {
      tp = alloc(kComment, "(");
      int level = 1;
      while (i < s.size()) {
        char c = s[i++];
        nodes_[tp].text += c;
        if (c == '(') {
          ++level;
        } else if (c == ')') {
          if (--level == 0) break;
        } else if (c == '\\') {
          if (i >= s.size()) break;
          nodes_[tp].text += s[i++];
        }
      }
    } else if (ch == '[') {
      tp = alloc(kDomainLiteral);
      collect(tp, [](unsigned char c) { return c != ']'; });
      if (i < s.size()) ++i;
    } else if (ch == '"') {
      tp = alloc(kQuotedString);
      collect(tp, [](unsigned char c) { return c != '"'; });
      if (i < s.size()) ++i;
    } else if (ch != '\\' && is_operator(ch)) {
      tp = alloc(ch);
    } else {
      tp = alloc(kAtom);
      --i;  // a backslash may come first
      collect(tp, [](unsigned char c) { return !is_space(c) && !is_operator(c); });
      // An atom that would need quotes becomes a quoted string.
      for (char c : nodes_[tp].text) {
        auto u = static_cast<unsigned char>(c);
        if (u == ' ' || is_control(u) || is_operator(u)) {
          nodes_[tp].type = kQuotedString;
          break;
        }
      }
    }
    if (head < 0)
      head = tail = tp;
    else
      tail = append(tail, tp);
    if (limit > 0 && ++count >= limit) break;
  }
  if (tail_out) *tail_out = tail;
  return head;
}

Tree Tree::scan(std::string_view text, int limit) {
  Tree t;
  t.first_ = t.scan_into(text, limit, nullptr);
  return t;
}

Tree Tree::parse(std::string_view text, int limit) {
  Tree t;
  auto& n = t.nodes_;
  int last = -1;
  int first = t.scan_into(text, limit, &last);
  if (first < 0) return t;
  int head = t.alloc(0);
  n[head].next = first;
  n[first].prev = head;
  int tail = t.alloc(0);
  n[last].next = tail;
  n[tail].prev = last;

  // Right to left: the address lies between tp and right.
  int state = kDoWord;
  int right = tail;
  int tp = n[tail].prev;
  auto type = [&n](int x) { return n[x].type; };
  while (type(tp)) {
    int ty = type(tp);
    if (ty == kComment) {  // move comments to the side
      int prev = t.unlink(tp);
      right = t.prepend(right, tp);
      tp = prev;
      continue;
    } else if (ty == ';') {  // right-hand side of a named group
      right = t.group(kAddress, tp, right, ',');
      state = kDoGroup | kDoWord;
    } else if (ty == ':' && (state & kDoGroup) != 0) {
      n[tp].type = kStartGroup;
      t.group(kAddress, tp, right, 0);
      while (type(tp) && type(tp) != ',') tp = n[tp].prev;
      right = tp;
      continue;
    } else if (ty == '>') {  // right-hand side of <route>
      right = t.group(kAddress, tp, right, ',');
      while (type(tp) && type(tp) != '<') {
        if (type(tp) == kComment) {
          int prev = t.unlink(tp);
          right = t.prepend(right, tp);
          tp = prev;
          continue;
        }
        tp = n[tp].prev;
      }
      t.group(kAddress, tp, right, 0);
      while (type(tp) && (type(tp) > 0xff || std::strchr(">;,:", type(tp)) == nullptr)) tp = n[tp].prev;
      right = tp;
      state |= kDoWord;
      continue;
    } else if (ty == kAtom || ty == kQuotedString || ty == kDomainLiteral) {
      if ((state & kDoWord) == 0) right = n[t.group(kAddress, tp, right, ',')].next;
      state &= ~kDoWord;
    } else if (ty == ',') {
      right = t.group(kAddress, tp, right, 0);
      state |= kDoWord;
    } else {
      state |= kDoWord;
    }
    tp = n[tp].prev;
  }
  t.group(kAddress, tp, right, 0);

  // Drop the sentinels.
  t.first_ = n[head].next != tail ? n[head].next : -1;
  t.cut_before(n[head].next);
  t.cut_before(tail);
  return t;
}

std::vector<int> Tree::addresses() const {
  std::vector<int> out;
  for (int t = first_; t >= 0; t = nodes_[t].next)
    if (nodes_[t].type == kAddress) out.push_back(t);
  return out;
}

bool Tree::append_space(int t) const {
  if (t < 0) return false;
  int next = nodes_[t].next;
  if (next < 0 || nodes_[t].owner >= 0) return false;
  int ty = nodes_[t].type;
  if (ty == ',' || ty == kStartGroup || nodes_[next].type == '<') return true;
  return non_operator(ty) && non_operator(nodes_[next].type);
}

std::string Tree::internalize_list(int first, bool one_per_line) const {
  std::string out;
  for (int t = first; t >= 0; t = nodes_[t].next) {
    const Node& n = nodes_[t];
    switch (n.type) {
      case ',':
        out += ',';
        if (one_per_line) {
          out += '\n';
          continue;
        }
        break;
      case kAddress: out += internalize_list(n.head, false); break;
      case kComment:
      case kAtom:
      case kQuotedString: out += n.text; break;
      case kDomainLiteral: out += '[' + n.text + ']'; break;
      case kStartGroup: out += ':'; break;
      default: out += static_cast<char>(n.type);
    }
    if (append_space(t)) out += ' ';
  }
  return out;
}

std::string Tree::externalize_list(int first, bool one_per_line) const {
  std::string out;
  for (int t = first; t >= 0; t = nodes_[t].next) {
    const Node& n = nodes_[t];
    switch (n.type) {
      case ',':
        out += ',';
        if (one_per_line) {
          out += '\n';
          continue;
        }
        break;
      case kAddress: out += quote_local(internalize_list(n.head, false)); break;
      case kAtom:
      case kComment: out += n.text; break;
      case kQuotedString:
        out += '"';
        copy_quoted(out, n.text, "\"\\\r\n");
        out += '"';
        break;
      case kDomainLiteral:
        out += '[';
        copy_quoted(out, n.text, "\\\r\n");
        out += ']';
        break;
      case kStartGroup: out += ':'; break;
      default: out += static_cast<char>(n.type);
    }
    if (append_space(t)) out += ' ';
  }
  return out;
}

std::string Tree::internalize_address(int node) const { return internalize_list(nodes_[node].head, false); }
std::string Tree::externalize_address(int node) const { return externalize_list(nodes_[node].head, false); }

void Tree::replace_address(int node, std::string_view text) {
  // As cleanup_rewrite_tree: the new tokens replace the old ones as they
  // come from the scanner (they do not record their owner).
  int tail = -1;
  int head = scan_into(text, 0, &tail);
  nodes_[node].head = head;
  nodes_[node].tail = tail;
}

std::string quote_local(std::string_view mbox) {
  mbox = c_string(mbox);
  size_t start = 0;
  if (!mbox.empty() && mbox[0] == '@') {
    size_t colon = mbox.find(':');
    if (colon != std::string_view::npos) start = colon + 1;
  }
  size_t end = mbox.rfind('@');
  if (end == std::string_view::npos || end < start) end = mbox.size();
  std::string_view local = mbox.substr(start, end - start);
  bool dot_string = !local.empty() && local[0] != '.' && local.back() != '.';
  for (size_t i = 0; dot_string && i < local.size(); ++i) {
    auto c = static_cast<unsigned char>(local[i]);
    if (c == '.' && i + 1 < local.size() && local[i + 1] == '.') dot_string = false;
    if (c == ' ' || is_control(c) || std::strchr("()<>@,;:\\\"[]", c) != nullptr) dot_string = false;
  }
  if (dot_string) return std::string(mbox);
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

std::string unquote_local(std::string_view mbox) {
  mbox = c_string(mbox);
  std::string out;
  size_t start = 0;
  if (!mbox.empty() && mbox[0] == '@') {
    size_t colon = mbox.find(':');
    if (colon != std::string_view::npos) {
      start = colon + 1;
      out = std::string(mbox.substr(0, start));
    }
  }
  bool in_quote = false;
  for (size_t i = start; i < mbox.size(); ++i) {
    char c = mbox[i];
    if (c == '"') {
      in_quote = !in_quote;
      continue;
    }
    if (c == '@' && !in_quote) {
      out += mbox.substr(i);
      break;
    }
    if (c == '\\') {
      if (i + 1 >= mbox.size()) continue;
      c = mbox[++i];
    }
    out += c;
  }
  return out;
}

std::string first_address(std::string_view text, int* count) {
  Tree tree = Tree::parse(text);
  std::string first;
  int n = 0;
  for (int node : tree.addresses())
    if (n++ == 0) first = tree.internalize_address(node);
  if (count) *count = n;
  return first;
}

std::vector<std::string> address_list(std::string_view text, int limit) {
  Tree tree = Tree::parse(text, limit);
  std::vector<std::string> out;
  for (int node : tree.addresses()) out.push_back(tree.internalize_address(node));
  return out;
}

}  // namespace mta::rfc822
