// delivered_to.hpp: the Delivered-To: headers of a queued message, for the
// mail loop checks of local(8) and pipe(8) (Postfix's delivered_hdr(3)):
// the values of every Delivered-To: in the primary header, case-folded.
// The header ends at the first line that is neither a header nor a
// continuation, as Postfix's is_header() decides.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>

namespace mta::deliver {

std::unordered_set<std::string> read_delivered_to(int queue_fd, const std::string& queue_path, long data_offset);
// ASCII lower case, as the set holds the values.
std::string fold_case(std::string_view text);

}  // namespace mta::deliver
