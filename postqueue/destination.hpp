// destination.hpp: what postqueue checks before it asks for a flush, and
// who may ask: Postfix's valid_hostname(), valid_mailhost_literal(),
// mail_queue_id_ok(), its domain lists (fast_flush_domains) and its user
// access lists (authorized_mailq_users, authorized_flush_users).
#pragma once

#include <string>
#include <string_view>

namespace mta::postqueue {

// A host name: labels of letters, digits, '_' and inner '-' of at most 63
// characters, separated by single dots, at most 255 characters, not all
// digits.
bool valid_hostname(std::string_view name);
// "[1.2.3.4]" or "[IPv6:...]": an address literal as in an email address.
bool valid_mailhost_literal(std::string_view text);
// What "postqueue -s" accepts.
bool valid_flush_destination(std::string_view site);

enum class ListMatch { match, no_match, error };

// Postfix's domain_list_match() on a list such as fast_flush_domains:
// "domain" (and, with parent_style, its subdomains), ".domain"
// (subdomains), "!pattern" (a match says no), "type:table" (the domain and
// its parent domains looked up), "/file" (patterns in a file); the first
// pattern that matches decides.
ListMatch domain_list_match(std::string_view title, std::string_view list, std::string_view domain,
                            bool parent_style);

// Postfix's check_user_acl_byuid(): empty when USER may do it, else the
// name to complain about ("unknown" for a uid without a name).  A list
// that starts with "static:" permits everyone without looking further.
std::string check_user_acl(std::string_view title, std::string_view acl, unsigned uid);

}  // namespace mta::postqueue
