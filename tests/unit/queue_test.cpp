// lib/queue: queue IDs, records, queue files (ours and the real Postfix's),
// maildrop files, the directory tree.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "config/config.hpp"
#include "queue/maildrop_file.hpp"
#include "queue/queue_dirs.hpp"
#include "queue/queue_file.hpp"
#include "queue/queue_id.hpp"
#include "queue/record.hpp"

using namespace mta::queue;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("mta-queue-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

std::string data_file(const std::string& name) { return std::string(MTA_TEST_DATA) + "/queue/" + name; }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_all(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::vector<Record> read_records(const std::string& bytes, RecordReader::Options options = {}) {
  auto in = RecordReader::from_buffer(bytes, "test", options);
  std::vector<Record> out;
  Record r;
  ReadStatus status;
  while ((status = in.next(r)) == ReadStatus::ok) out.push_back(r);
  REQUIRE(status == ReadStatus::eof);
  return out;
}

// The status and message of reading BYTES to the end.
std::pair<ReadStatus, std::string> read_until_end(const std::string& bytes, RecordReader::Options options = {}) {
  auto in = RecordReader::from_buffer(bytes, "f", options);
  Record r;
  for (int i = 0; i < 100000; ++i) {
    ReadStatus status = in.next(r);
    if (status != ReadStatus::ok) return {status, in.error()};
  }
  FAIL("the reader did not stop");
  return {};
}

// A small message written with the writer; returns its path.
std::string write_sample(const QueueLayout& layout, bool long_id = false) {
  CreateOptions options;
  options.long_queue_id = long_id;
  std::string error;
  auto w = QueueFileWriter::create(layout, options, &error);
  REQUIRE(w);
  w->put_size_placeholder();
  w->put_time(timeval{1700000000, 123456});
  w->put_attribute("create_time", "1700000000");
  w->put_attribute("rewrite_context", "local");
  w->put_sender("alice@example.org");
  w->put_warn_time(1700003600);
  w->put_recipient("bob@example.net", "Bob@example.net");
  w->put_recipient("carol@example.net", "carol@example.net", "rfc822;carol@example.net", 2 | 8);
  w->begin_content();
  w->put_line("Subject: hello");
  w->put_line("\tfolded");
  w->put_line("");
  w->put_line(std::string(5000, 'x'));
  w->put_line("end");
  w->begin_extracted();
  w->put_recipient("dave@example.com", "dave@example.com");
  w->put_end();
  std::string path = w->path();
  REQUIRE(w->finish(&error));
  return path;
}

}  // namespace

// ---------------------------------------------------------------- queue IDs

TEST_CASE("short queue IDs are the microseconds and the inode in upper-case hex") {
  // The real Postfix named the file with inode 0xA7224A, made at .504750 s, 7B3AEA7224A.
  CHECK(short_queue_id(504750, 0xA7224A) == "7B3AEA7224A");
  CHECK(short_queue_id(5, 0x1F) == "000051F");
  CHECK(make_queue_id(false, timeval{1, 504750}, 0xA7224A) == "7B3AEA7224A");
  CHECK(queue_id_inode("7B3AEA7224A") == 0xA7224Aul);
  CHECK(queue_id_hash_key("7B3AEA7224A") == "7B3AEA7224A");
}

TEST_CASE("long queue IDs: base-52 seconds and microseconds, 'z', base-51 inode") {
  // From the real Postfix: log_ident 4jXRbR5Yc2z1bY3G for inode 10952978,
  // file made at 1795346771.783122 s (0xBF312 microseconds; the T record says
  // .782699, when smtpd began); postsuper renamed it BF312A72112 when long IDs
  // were turned off.
  std::string id = long_queue_id(1795346771, 783122, 10952978);
  CHECK(id == "4jXRbR5Yc2z1bY3G");
  CHECK(make_queue_id(true, timeval{1795346771, 783122}, 10952978) == id);
  CHECK(queue_id_inode(id) == 10952978ul);
  CHECK(queue_id_hash_key(id) == "BF312");
  CHECK(short_queue_id(783122, 10952978) == "BF312A72112");
  // Small numbers are padded to six and four digits; the inode is not.
  CHECK(long_queue_id(1, 2, 3) == "000001" "0002" "z" "3");
  CHECK(safe_ultostr(51, 52, 0) == "z");
  CHECK(safe_ultostr(51, 51, 0) == "10");
  CHECK(safe_strtoul("z", 52) == 51ul);
  CHECK_FALSE(safe_strtoul("z", 51));
  CHECK_FALSE(safe_strtoul("a", 52));  // a vowel: not in the alphabet
  CHECK_FALSE(safe_strtoul("", 52));
  CHECK_FALSE(safe_strtoul("zzzzzzzzzzzzzzzzzzzzzz", 52));  // overflow
}

TEST_CASE("queue IDs are validated in both forms") {
  CHECK(is_valid_queue_id("7B3AEA7224A"));
  CHECK(is_short_queue_id("7B3AEA7224A"));
  CHECK(is_valid_queue_id("4jXRbR5Yc2z1bY3G"));
  CHECK(is_long_queue_id("4jXRbR5Yc2z1bY3G"));
  CHECK_FALSE(is_short_queue_id("4jXRbR5Yc2z1bY3G"));
  CHECK_FALSE(is_long_queue_id("7B3AEA7224A"));
  // The microseconds may themselves contain 'z': the last one separates.
  CHECK(is_long_queue_id("4jXRbR5Yczz1bY3G"));
  CHECK(queue_id_inode("4jXRbR5Yczz1bY3G") == queue_id_inode("4jXRbR5Yc2z1bY3G"));
  for (const char* bad : {"", "7B3AE", "7b3aea7224a", "7B3AEA7224G", "7B3AE.1234", "../7B3AEA72",
                          "4jXRbR5Ycz1bY3G" /* separator too early */, "4jXRbR5Yc2z" /* no inode */,
                          "4jXRbR5Yc2z1bY3a" /* vowel */, "4jXRbR5Yc2z1bY-G"}) {
    INFO(bad);
    CHECK_FALSE(is_valid_queue_id(bad));
    CHECK_FALSE(queue_id_inode(bad));
  }
  CHECK(is_queue_file_name("example_com"));  // a flush log
  CHECK_FALSE(is_queue_file_name("12345.678"));  // a file being created
  CHECK_FALSE(is_queue_file_name(std::string(256, 'A')));
}

TEST_CASE("hash directories follow Postfix's dir_forest") {
  CHECK(queue_id_hash_dirs("7B3AEA7224A", 1) == "7/");
  CHECK(queue_id_hash_dirs("7B3AEA7224A", 2) == "7/B/");
  // Where the real Postfix put its long-ID file with hash_queue_depth = 2.
  CHECK(queue_id_hash_dirs("4jXRQ74KH9z1bYK8", 2) == "9/4/");
  CHECK(queue_id_hash_dirs("4jXRbR5Yc2z1bY3G", 3) == "B/F/3/");
  CHECK(dir_forest("AB", 3) == "A/B/_/");
  CHECK(dir_forest("A.B", 2).empty());
  CHECK(dir_forest("AB", 0).empty());
}

// ---------------------------------------------------------------- records

TEST_CASE("records are a type byte, a base-128 length, the payload") {
  CHECK(encode_record('N', "hello") == std::string("N\x05hello"));
  CHECK(encode_record('M', "") == std::string("M\0", 2));
  std::string p127(127, 'a'), p128(128, 'a'), p16384(16384, 'a');
  CHECK(encode_record('N', p127).substr(0, 2) == std::string("N\x7f"));
  CHECK(encode_record('N', p128).substr(0, 3) == std::string("N\x80\x01"));
  CHECK(encode_record('N', p16384).substr(0, 4) == std::string("N\x80\x80\x01"));
  CHECK(record_header_size(0) == 2);
  CHECK(record_header_size(127) == 2);
  CHECK(record_header_size(128) == 3);
  CHECK(record_header_size(16384) == 4);
  std::string bytes = encode_record('N', "hello") + encode_record('L', p16384) + encode_record('E', "");
  auto records = read_records(bytes);
  REQUIRE(records.size() == 3);
  CHECK(records[0].type == 'N');
  CHECK(records[0].data == "hello");
  CHECK(records[0].offset == 0);
  CHECK(records[1].data == p16384);
  CHECK(records[1].offset == 7);
  CHECK(records[2].type == 'E');
  CHECK(records[2].offset == static_cast<off_t>(7 + 4 + 16384));
}

TEST_CASE("a truncated or malformed record is an error with a message") {
  std::string good = encode_record('N', "hello");
  CHECK(read_until_end(std::string("N")) ==
        std::make_pair(ReadStatus::error, std::string("f: unexpected EOF reading length, record type 78")));
  CHECK(read_until_end(good.substr(0, 4)) ==
        std::make_pair(ReadStatus::error, std::string("f: unexpected EOF in data, record type 78 length 5")));
  CHECK(read_until_end(std::string("N\x80\x80\x80\x80\x80\x01")) ==
        std::make_pair(ReadStatus::error, std::string("f: too many length bits, record type 78")));
  RecordReader::Options limited;
  limited.max_length = 4;
  CHECK(read_until_end(good, limited) ==
        std::make_pair(ReadStatus::error, std::string("f: illegal length 5, record type 78")));
  CHECK(read_until_end("").first == ReadStatus::eof);
  // A huge claimed length costs no memory: the data is not there.
  CHECK(read_until_end(std::string("N\xff\xff\xff\xff\x07") + "abc").first == ReadStatus::error);
}

TEST_CASE("random bytes never crash or hang the reader") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    auto [status, message] = read_until_end(bytes);
    CHECK(status != ReadStatus::ok);
    if (status == ReadStatus::error) CHECK_FALSE(message.empty());
  }
}

TEST_CASE("records read from a file in chunks: in place and copied, whole and cut short") {
  // Records of every size class around the reader's chunks (4 KB, doubling
  // to 64 KB), so that headers and data fall across reads; read with
  // next(Record&) and with next(RecordView&), which must agree.
  std::mt19937 rng(4242);
  std::vector<std::pair<char, std::string>> want;
  std::string bytes;
  for (int i = 0; i < 400; ++i) {
    size_t size = (i % 7 == 0) ? rng() % 20000 : (i % 3 == 0) ? rng() % 300 : rng() % 90;
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>('a' + rng() % 26);
    char type = "NLM"[i % 3];
    want.emplace_back(type, data);
    bytes += encode_record(type, data);
  }
  std::string path = std::filesystem::temp_directory_path() / ("records." + std::to_string(::getpid()));
  auto read_file = [&](const std::string& content, bool view, std::vector<std::pair<char, std::string>>& got) {
    { std::ofstream(path, std::ios::binary) << content; }
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    RecordReader in(fd, "f");
    got.clear();
    ReadStatus st;
    for (;;) {
      if (view) {
        RecordView r;
        if ((st = in.next(r)) != ReadStatus::ok) break;
        got.emplace_back(r.type, std::string(r.data));
      } else {
        Record r;
        if ((st = in.next(r)) != ReadStatus::ok) break;
        got.emplace_back(r.type, r.data);
      }
    }
    ::close(fd);
    return st;
  };
  std::vector<std::pair<char, std::string>> got;
  for (bool view : {false, true}) {
    CHECK(read_file(bytes, view, got) == ReadStatus::eof);
    CHECK(got == want);
  }
  // Cut anywhere: the records before the cut, then an error.
  for (size_t cut : {size_t{1}, size_t{4095}, size_t{4097}, bytes.size() / 3, bytes.size() - 1}) {
    std::vector<std::pair<char, std::string>> copied, viewed;
    ReadStatus a = read_file(bytes.substr(0, cut), false, copied);
    ReadStatus b = read_file(bytes.substr(0, cut), true, viewed);
    CHECK(a == b);
    CHECK(copied == viewed);
    CHECK(copied.size() < want.size());
  }
  std::filesystem::remove(path);
}

TEST_CASE("pointer records are followed, padding is skipped, loops are caught") {
  // N a | p -> X | w padding | N skipped | X: N b | p 0 (dummy) | N c
  std::string a = encode_record('N', "a");
  std::string skipped = encode_record('N', "skipped");
  std::string head = a + encode_record('p', format_fixed_number(0)) /* placeholder */;
  std::string pad = encode_record('w', "   ");
  off_t target = static_cast<off_t>(head.size() + pad.size() + skipped.size());
  std::string bytes = a + encode_record('p', format_fixed_number(target)) + pad + skipped +
                      encode_record('N', "b") + encode_record('p', format_fixed_number(0)) + encode_record('N', "c");
  auto records = read_records(bytes);
  REQUIRE(records.size() == 3);
  CHECK(records[0].data == "a");
  CHECK(records[1].data == "b");
  CHECK(records[1].offset == target);  // where it lies, not where the pointer was
  CHECK(records[2].data == "c");

  RecordReader::Options raw;
  raw.follow_pointers = false;
  raw.skip_padding = false;
  auto all = read_records(bytes, raw);
  REQUIRE(all.size() == 7);
  CHECK(all[1].type == 'p');
  CHECK(all[2].type == 'w');

  // N at offset 0, then at offset 2 a pointer to itself.
  std::string loop = encode_record('N', "") + encode_record('p', format_fixed_number(2));
  CHECK(read_until_end(loop) == std::make_pair(ReadStatus::error, std::string("f: too many reverse jump records")));
  CHECK(read_until_end(encode_record('p', "12x")).second == "f: malformed pointer record value: 12x");
}

TEST_CASE("record type names are postcat's") {
  CHECK(record_type_name('C') == "message_size");
  CHECK(record_type_name('T') == "message_arrival_time");
  CHECK(record_type_name('S') == "sender");
  CHECK(record_type_name('R') == "recipient");
  CHECK(record_type_name('D') == "done_recipient");
  CHECK(record_type_name('O') == "original_recipient");
  CHECK(record_type_name('A') == "named_attribute");
  CHECK(record_type_name('L') == "content_filter");  // shares its byte with unterminated text
  CHECK(record_type_name('N') == "regular_text");
  CHECK(record_type_name('W') == "warning_message_time");
  CHECK(record_type_name('E') == "message_end");
  CHECK(record_type_name('Q') == "unknown_record_type");
  CHECK(attribute_record_type("dsn_orig_rcpt") == rec::kDsnOrcpt);
  CHECK(attribute_record_type("notify_flags") == rec::kDsnNotify);
  CHECK(attribute_record_type("envelope_id") == rec::kDsnEnvid);
  CHECK(attribute_record_type("ret_flags") == rec::kDsnRet);
  CHECK(attribute_record_type("create_time") == rec::kCreateTime);
  CHECK(attribute_record_type("log_ident") == 0);
}

TEST_CASE("size, time and fixed-width records") {
  SizeRecord s;
  s.message_size = 5376;
  s.data_offset = 746;
  s.rcpt_count = 2;
  s.content_length = 5376;
  // Byte for byte what the real cleanup wrote.
  std::string text = format_size_record(s);
  CHECK(text ==
        "           5376             746               2               0            5376               0");
  CHECK(text.size() == 95);
  auto parsed = parse_size_record(text);
  REQUIRE(parsed);
  CHECK(parsed->fields == 6);
  CHECK(parsed->data_offset == 746);
  CHECK(parsed->content_length == 5376);
  auto old = parse_size_record("  100 20 3 1");
  REQUIRE(old);
  CHECK(old->fields == 4);
  CHECK(old->qmgr_flags == 1);
  CHECK(parse_size_record("100")->fields == 1);
  CHECK_FALSE(parse_size_record(""));
  CHECK_FALSE(parse_size_record("1 2 x"));
  CHECK_FALSE(parse_size_record("1 2 3 4 5 6 7"));

  CHECK(format_time_record(timeval{1795346193, 497162}) == "1795346193 497162");
  auto tv = parse_time_record("1795346193 497162");
  REQUIRE(tv);
  CHECK(tv->tv_sec == 1795346193);
  CHECK(tv->tv_usec == 497162);
  CHECK(parse_time_record("1795346193")->tv_usec == 0);
  CHECK_FALSE(parse_time_record("abc"));
  CHECK(format_fixed_number(1795349887) == "     1795349887");
  CHECK(parse_number("     1795349887") == 1795349887);

  std::string_view name, value;
  REQUIRE(split_attribute("  name = some value  ", &name, &value));
  CHECK(name == "name");
  CHECK(value == "some value");
  REQUIRE(split_attribute("dsn_orig_rcpt=rfc822;a=b@example", &name, &value));
  CHECK(value == "rfc822;a=b@example");
  CHECK_FALSE(split_attribute("=value", &name, &value));
  CHECK_FALSE(split_attribute("name value", &name, &value));
  CHECK(qmgr_flag::from_dsn_notify(2 | 4) == qmgr_flag::kNotifySuccess + qmgr_flag::kNotifyFailure);
}

TEST_CASE("records are changed in place only where the expected record is") {
  TempDir d;
  std::string path = d.str() + "/f";
  write_all(path, encode_record('R', "a@b") + encode_record('W', format_fixed_number(100)));
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  std::string error;
  CHECK(update_record_type(fd, 0, 'D', "R", &error));
  CHECK_FALSE(update_record_type(fd, 0, 'D', "R", &error));  // already done
  CHECK(error == "record at offset 0 has type 68, not one of \"R\"");
  off_t w = 5;
  CHECK(update_record_payload(fd, w, 'W', format_fixed_number(200), &error));
  CHECK_FALSE(update_record_payload(fd, w, 'W', "200", &error));  // not the same length
  CHECK_FALSE(update_record_payload(fd, 0, 'W', format_fixed_number(1), &error));  // not a W
  CHECK_FALSE(update_record_type(fd, 1000, 'D', "R", &error));  // past the end
  ::close(fd);
  CHECK(read_all(path) == encode_record('D', "a@b") + encode_record('W', format_fixed_number(200)));
}

TEST_CASE("RecordWriter tracks offsets across flushes and reports write errors") {
  TempDir d;
  std::string path = d.str() + "/f";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  RecordWriter w(fd);
  std::string big(100000, 'z');
  CHECK(w.put('N', "a") == 0);
  CHECK(w.put('L', big) == 3);
  off_t e = w.put('E', "");
  CHECK(e == static_cast<off_t>(3 + 4 + big.size()));
  CHECK(w.flush());
  ::close(fd);
  CHECK(read_all(path).size() == static_cast<size_t>(e + 2));
  int ro = ::open(path.c_str(), O_RDONLY);
  RecordWriter bad(ro);
  bad.put('N', "x");
  CHECK_FALSE(bad.flush());
  CHECK(bad.error().rfind("write: ", 0) == 0);
  ::close(ro);
}

// ---------------------------------------------------------------- queue files

TEST_CASE("the writer makes a file the way cleanup does") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  std::string error;
  auto w = QueueFileWriter::create(layout, CreateOptions{}, &error);
  REQUIRE(w);
  // The ID is made from the inode and the time in it; the file is 0600 while written.
  struct stat st {};
  REQUIRE(::fstat(w->fd(), &st) == 0);
  CHECK(is_short_queue_id(w->id()));
  CHECK(queue_id_inode(w->id()) == static_cast<unsigned long>(st.st_ino));
  CHECK(w->id() == short_queue_id(w->create_time().tv_usec, st.st_ino));
  CHECK(w->path() == d.str() + "/incoming/" + w->id());
  CHECK(file_mode(w->path()) == 0600);
  // Nothing else is left in the queue: the temporary name is gone.
  CHECK(std::distance(fs::directory_iterator(d.path / "incoming"), fs::directory_iterator()) == 1);
  w.reset();  // never finished: removed
  CHECK(fs::is_empty(d.path / "incoming"));

  std::string path = write_sample(layout);
  CHECK(file_mode(path) == 0700);
  auto records = read_records(read_all(path));
  std::string types;
  for (const Record& r : records) types += r.type;
  CHECK(types == "CTAASWORAAORMNNNLLNNXORE");
  auto size = parse_size_record(records[0].data);
  REQUIRE(size);
  CHECK(records[0].data.size() == 95);
  CHECK(size->data_offset == records[12].offset + 2);  // right after M
  CHECK(size->message_size == records[20].offset - size->data_offset);  // up to X
  CHECK(size->rcpt_count == 3);
  CHECK(size->qmgr_flags == (qmgr_flag::kNotifySuccess | qmgr_flag::kNotifyDelay));
  CHECK(size->content_length == size->message_size);
  CHECK(records[16].data == std::string(2048, 'x'));
  CHECK(records[17].data == std::string(2048, 'x'));
  CHECK(records[18].data == std::string(5000 - 4096, 'x'));
  CHECK(records[8].data == "notify_flags=10");
  CHECK(records[9].data == "dsn_orig_rcpt=rfc822;carol@example.net");
}

TEST_CASE("the writer marks recipients mixed with other records, and long IDs") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  CreateOptions options;
  options.long_queue_id = true;
  options.extra_mode = 0044;
  std::string error;
  auto w = QueueFileWriter::create(layout, options, &error);
  REQUIRE(w);
  CHECK(is_long_queue_id(w->id()));
  w->put_size_placeholder();
  w->put_time(timeval{1, 0});
  w->put_sender("");
  w->put_recipient("a@b", "a@b");
  w->put_attribute("log_ident", "x");  // after a recipient
  w->begin_content();
  w->put_line("x");
  w->begin_extracted();
  w->put_end();
  std::string path = w->path();
  REQUIRE(w->finish(QueueFileWriter::Finish{}, &error));
  CHECK(file_mode(path) == 0744);
  QueueMessage m;
  REQUIRE(load_queue_file(path, &m, &error));
  CHECK(m.envelope.size->qmgr_flags == qmgr_flag::kMixedRcptOther);
}

TEST_CASE("finish refuses an incomplete file and removes it") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  std::string error;
  auto w = QueueFileWriter::create(layout, CreateOptions{}, &error);
  REQUIRE(w);
  w->put_size_placeholder();
  w->put_time(timeval{1, 0});
  std::string path = w->path();
  CHECK_FALSE(w->finish(&error));
  CHECK(error == path + ": no end record");
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(w->finish(&error));

  CHECK_FALSE(QueueFileWriter::create(QueueLayout(d.str() + "/missing"), CreateOptions{}, &error));
  CHECK(error.find("create file " + d.str() + "/missing/incoming/") == 0);
  CreateOptions bad;
  bad.queue = "../etc";
  CHECK_FALSE(QueueFileWriter::create(layout, bad, &error));
  CHECK(error == "bad queue name: ../etc");
}

TEST_CASE("the reader gives back what the writer wrote, and updates it in place") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  std::string path = write_sample(layout);
  QueueMessage m;
  std::string error;
  REQUIRE(load_queue_file(path, &m, &error));
  const Envelope& e = m.envelope;
  CHECK(e.arrival->tv_sec == 1700000000);
  CHECK(e.arrival->tv_usec == 123456);
  CHECK(e.create_time == 1700000000);
  CHECK(e.sender == "alice@example.org");
  CHECK(e.warn_time == 1700003600);
  REQUIRE(e.attributes.size() == 2);
  CHECK(e.attributes[1].name == "rewrite_context");
  CHECK(e.find_attribute("rewrite_context")->value == "local");
  REQUIRE(e.recipients.size() == 3);
  CHECK(e.recipients[0].address == "bob@example.net");
  CHECK(e.recipients[0].original == "Bob@example.net");
  CHECK(e.recipients[1].dsn_notify == 10);
  CHECK(e.recipients[1].dsn_orcpt == "rfc822;carol@example.net");
  CHECK_FALSE(e.recipients[1].extracted);
  CHECK(e.recipients[2].extracted);
  CHECK(e.pending_recipients() == 3);
  REQUIRE(m.lines.size() == 5);
  CHECK(m.lines[1] == "\tfolded");
  CHECK(m.lines[3] == std::string(5000, 'x'));
  CHECK(m.header_lines == 2);

  auto reader = QueueFileReader::open(path, true, &error);
  REQUIRE(reader);
  REQUIRE(reader->lock(LockMode::exclusive, false, &error));
  CHECK(reader->mark_done(e.recipients[1], &error));
  CHECK_FALSE(reader->mark_done(e.recipients[1], &error));  // it is a D now
  CHECK(reader->update_warn_time(e, 1700007200, &error));
  // Another descriptor cannot take the lock while this one holds it.
  auto other = QueueFileReader::open(path, false, &error);
  REQUIRE(other);
  CHECK_FALSE(other->lock(LockMode::shared, false, &error));
  reader.reset();
  CHECK(other->lock(LockMode::shared, false, &error));

  QueueMessage after;
  REQUIRE(load_queue_file(path, &after, &error));
  CHECK(after.envelope.recipients[1].status == rec::kDone);
  CHECK(after.envelope.pending_recipients() == 2);
  CHECK(after.envelope.warn_time == 1700007200);
}

TEST_CASE("every truncation of a queue file is an error, never a crash") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  std::string whole = read_all(write_sample(layout));
  std::string path = d.str() + "/cut";
  QueueMessage m;
  std::string error;
  for (size_t n = 0; n < whole.size(); n += (n < 400 ? 1 : 97)) {
    write_all(path, whole.substr(0, n));
    INFO("cut at " << n);
    CHECK_FALSE(load_queue_file(path, &m, &error));
    CHECK_FALSE(error.empty());
  }
  write_all(path, whole);
  CHECK(load_queue_file(path, &m, &error));
}

TEST_CASE("damaged queue files are rejected with a reason") {
  TempDir d;
  QueueLayout layout(d.str());
  fs::create_directories(d.path / "incoming");
  std::string whole = read_all(write_sample(layout));
  std::string path = d.str() + "/bad";
  QueueMessage m;
  std::string error;

  write_all(path, encode_record('T', "1 0") + whole);
  CHECK_FALSE(load_queue_file(path, &m, &error));
  CHECK(error == path + ": first record is not a size record");

  std::string bad_type = whole;
  bad_type[97] = 'Q';  // the T record after the 95-byte size record
  write_all(path, bad_type);
  CHECK_FALSE(load_queue_file(path, &m, &error));
  CHECK(error == path + ": unexpected record type 81 in envelope");

  std::string bad_size = whole;
  bad_size.replace(2, 15, format_fixed_number(999999));
  write_all(path, bad_size);
  CHECK_FALSE(load_queue_file(path, &m, &error));
  CHECK(error.find(": invalid size record:") != std::string::npos);

  std::string off_by_one = whole;
  auto size = *parse_size_record(whole.substr(2, 95));
  off_by_one.replace(2, 15, format_fixed_number(size.message_size - 1));
  write_all(path, off_by_one);
  CHECK_FALSE(load_queue_file(path, &m, &error));
  CHECK(error.find(": no extracted segment at offset ") != std::string::npos);

  write_all(path, whole + "garbage");  // bytes after the end record are not read
  CHECK(load_queue_file(path, &m, &error));
}

TEST_CASE("queue files written by the real Postfix are read") {
  QueueMessage m;
  std::string error;
  SECTION("a long line, an original recipient per recipient") {
    REQUIRE(load_queue_file(data_file("real-long-line"), &m, &error));
    const Envelope& e = m.envelope;
    CHECK(e.size->data_offset == 763);
    CHECK(e.size->message_size == 5376);
    CHECK(e.size->rcpt_count == 2);
    CHECK(e.sender == "alice@example.org");
    CHECK(e.find_attribute("log_ident")->value == "9DF2AA72020");
    CHECK(e.find_attribute("client_address")->value == "127.0.0.1");
    REQUIRE(e.recipients.size() == 2);
    CHECK(e.recipients[0].address == "bob@example.net");
    CHECK(e.recipients[0].original == "bob@example.net");
    CHECK(e.recipients[0].dsn_orcpt == "rfc822;bob@example.net");
    CHECK(e.recipients[0].offset == 666);
    CHECK(e.recipients[1].address == "carol@example.net");
    CHECK(e.warn_time.has_value());
    CHECK(e.data_offset == 763);
    CHECK(e.xtra_offset == 763 + 5376);
    REQUIRE(m.lines.size() == 14);
    CHECK(m.lines[0] == "Received: from client.example (localhost [127.0.0.1])");
    CHECK(m.lines[11] == "..dotline");
    CHECK(m.lines[12] == "long: " + std::string(5000, 'X'));
    CHECK(m.lines[13] == "end");
    CHECK(m.header_lines == 8);
  }
  SECTION("done recipients and a null sender") {
    REQUIRE(load_queue_file(data_file("real-done-recipients"), &m, &error));
    const Envelope& e = m.envelope;
    CHECK(e.sender == "");
    REQUIRE(e.recipients.size() == 3);
    CHECK(e.recipients[0].status == rec::kDone);
    CHECK(e.recipients[1].status == rec::kRcpt);
    CHECK(e.recipients[1].address == "y@example.net");
    CHECK(e.recipients[2].status == rec::kDone);
    CHECK(e.pending_recipients() == 1);
    CHECK_FALSE(e.warn_time);  // none for a null sender
  }
  SECTION("DSN parameters and a long queue ID in the log ident") {
    REQUIRE(load_queue_file(data_file("real-dsn"), &m, &error));
    const Envelope& e = m.envelope;
    CHECK(e.find_attribute("log_ident")->value == "4jXRbR5Yc2z1bY3G");
    CHECK(e.dsn_envid == "abc123");
    CHECK(e.dsn_ret == 2);
    CHECK(e.size->qmgr_flags == (qmgr_flag::kNotifySuccess | qmgr_flag::kNotifyFailure));
    CHECK(e.warn_time == 1795350371);
    CHECK(e.warn_offset == 628);
    REQUIRE(e.recipients.size() == 1);
    CHECK(e.recipients[0].dsn_notify == 6);
    CHECK(e.recipients[0].dsn_orcpt == "rfc822;orig@example.net");
    CHECK(m.lines.back() == " body starts");
  }
  CHECK(error.empty());
}

TEST_CASE("marking a real Postfix file done changes exactly one byte") {
  TempDir d;
  std::string path = d.str() + "/copy";
  std::string before = read_all(data_file("real-done-recipients"));
  write_all(path, before);
  auto reader = QueueFileReader::open(path, true, nullptr);
  REQUIRE(reader);
  Envelope e;
  std::string error;
  REQUIRE(reader->read_envelope(&e, &error));
  REQUIRE(reader->mark_done(e.recipients[1], &error));
  reader.reset();
  std::string after = read_all(path);
  REQUIRE(after.size() == before.size());
  size_t changed = 0;
  for (size_t i = 0; i < before.size(); ++i) changed += before[i] != after[i];
  CHECK(changed == 1);
  CHECK(after[static_cast<size_t>(e.recipients[1].offset)] == 'D');
}

TEST_CASE("pointer records in a queue file are followed; recipients found through them keep their offset") {
  // What cleanup makes when a milter adds a recipient: a dummy pointer after
  // the recipients is overwritten to point at the new records after E, which
  // end with a pointer back.
  std::string head;
  append_record(head, 'C', format_size_record(SizeRecord{}));
  append_record(head, 'T', "1 0");
  append_record(head, 'S', "s@example");
  append_record(head, 'O', "a@example");
  append_record(head, 'R', "a@example");
  size_t ptr_at = head.size();
  append_record(head, 'p', format_fixed_number(0));
  size_t after_ptr = head.size();
  append_record(head, 'M', "");
  size_t data = head.size();
  append_record(head, 'N', "Subject: x");
  size_t xtra = head.size();
  append_record(head, 'X', "");
  append_record(head, 'E', "");
  size_t heap = head.size();
  append_record(head, 'O', "b@example");
  size_t b_at = head.size();
  append_record(head, 'R', "b@example");
  append_record(head, 'p', format_fixed_number(static_cast<long>(after_ptr)));
  SizeRecord s;
  s.message_size = static_cast<long>(xtra - data);
  s.data_offset = static_cast<long>(data);
  s.rcpt_count = 2;
  head.replace(2, 95, format_size_record(s));
  head.replace(ptr_at + 2, 15, format_fixed_number(static_cast<long>(heap)));
  TempDir d;
  std::string path = d.str() + "/f";
  write_all(path, head);
  QueueMessage m;
  std::string error;
  REQUIRE(load_queue_file(path, &m, &error));
  REQUIRE(m.envelope.recipients.size() == 2);
  CHECK(m.envelope.recipients[1].address == "b@example");
  CHECK(m.envelope.recipients[1].offset == static_cast<off_t>(b_at));
  CHECK(m.lines == std::vector<std::string>{"Subject: x"});
}

// ---------------------------------------------------------------- maildrop

TEST_CASE("a maildrop file made by the real postdrop is read as pickup reads it") {
  MaildropFile f;
  std::string error;
  REQUIRE(load_maildrop_file(data_file("real-maildrop"), &f, &error));
  CHECK(f.info.sender == "sender@example.org");
  CHECK(f.info.recipients == 2);
  std::string types;
  for (const Record& r : f.envelope) types += r.type;
  CHECK(types == "TAFSVARAR");
  CHECK(f.envelope[2].data == "Full Name");
  CHECK(f.envelope[4].data == "+=");
  CHECK(f.envelope[5].data == "notify_flags=10");
  REQUIRE(f.content.size() == 4);
  CHECK(f.content[0].data == "Subject: via sendmail");
  CHECK(f.extracted.empty());
}

TEST_CASE("maildrop files: pickup's limits and checks") {
  TempDir d;
  std::string path = d.str() + "/m";
  auto file = [](const std::string& envelope, const std::string& content, const std::string& extracted) {
    return envelope + encode_record('M', "") + content + encode_record('X', "") + extracted + encode_record('E', "");
  };
  std::string env = encode_record('T', "1 0") + encode_record('S', "a@b") + encode_record('R', "c@d");
  MaildropFile f;
  std::string error;

  write_all(path, file(env, encode_record('N', "hi"), encode_record('R', "e@f")));
  REQUIRE(load_maildrop_file(path, &f, &error));
  CHECK(f.info.recipients == 2);
  CHECK(f.extracted.size() == 1);

  write_all(path, file(encode_record('T', "1 0") + encode_record('R', "c@d"), "", ""));
  CHECK_FALSE(load_maildrop_file(path, &f, &error));
  CHECK(error == path + ": no envelope sender");

  write_all(path, file(env + encode_record('Q', "x"), "", ""));
  CHECK_FALSE(load_maildrop_file(path, &f, &error));
  CHECK(error == path + ": unexpected record type 81");

  write_all(path, file(env, encode_record('S', "x"), ""));  // a sender in the content
  CHECK_FALSE(load_maildrop_file(path, &f, &error));

  write_all(path, file(env, encode_record('N', std::string(2049, 'x')), ""));
  CHECK_FALSE(load_maildrop_file(path, &f, &error));
  CHECK(error == path + ": illegal length 2049, record type 78");
  MaildropOptions wide;
  wide.line_limit = 4096;
  CHECK(load_maildrop_file(path, &f, &error, wide));

  write_all(path, env + encode_record('M', ""));
  CHECK_FALSE(load_maildrop_file(path, &f, &error));
  CHECK(error == path + ": premature end of file, no end record");

  write_all(path, file(env, "", ""));
  fs::create_symlink(path, d.path / "link");
  CHECK_FALSE(load_maildrop_file(d.str() + "/link", &f, &error));
  fs::create_hard_link(path, d.path / "hard");
  CHECK_FALSE(load_maildrop_file(path, &f, &error));
  CHECK(error == path + ": file has 2 hard links");

  struct stat st {};
  st.st_uid = 101;
  st.st_mode = S_IFREG | 0700;
  CHECK(is_requeued_maildrop_file(st, 101));
  st.st_mode = S_IFREG | 0744;
  CHECK_FALSE(is_requeued_maildrop_file(st, 101));
  CHECK_FALSE(is_requeued_maildrop_file(st, 102));
}

// ---------------------------------------------------------------- directories

TEST_CASE("queue file paths hash only the hashed queues") {
  QueueLayout layout("/var/spool/postfix/", {"deferred", "Defer"}, 2);
  CHECK(layout.queue_directory() == "/var/spool/postfix");
  CHECK(layout.is_hashed("deferred"));
  CHECK(layout.is_hashed("defer"));  // names compare without case
  CHECK_FALSE(layout.is_hashed("incoming"));
  CHECK(layout.relative_path("deferred", "7B3AEA7224A") == "deferred/7/B/7B3AEA7224A");
  CHECK(layout.relative_path("incoming", "7B3AEA7224A") == "incoming/7B3AEA7224A");
  CHECK(layout.path("defer", "4jXRbR5Yc2z1bY3G") == "/var/spool/postfix/defer/B/F/4jXRbR5Yc2z1bY3G");
  CHECK(layout.dir("active", "7B3AEA7224A") == "/var/spool/postfix/active/");
  CHECK(QueueLayout("/q", {}, 0).hash_depth() == 1);
  CHECK(is_valid_queue_name("deferred"));
  CHECK_FALSE(is_valid_queue_name("de/ferred"));
  CHECK_FALSE(is_valid_queue_name(""));
  CHECK(is_ready_queue_file(S_IFREG | 0700));
  CHECK(is_ready_queue_file(S_IFREG | 0744));
  CHECK_FALSE(is_ready_queue_file(S_IFREG | 0600));
  CHECK_FALSE(is_ready_queue_file(S_IFDIR | 0700));
}

TEST_CASE("the layout comes from main.cf") {
  TempDir d;
  std::ofstream(d.path / "main.cf") << "queue_directory = " << d.str() << "/spool\n"
                                    << "hash_queue_depth = 2\nhash_queue_names = hold, deferred\n";
  auto config = mta::config::Config::load(d.str());
  QueueLayout layout = QueueLayout::from_config(config);
  CHECK(layout.queue_directory() == d.str() + "/spool");
  CHECK(layout.hash_depth() == 2);
  CHECK(layout.is_hashed("hold"));
  CHECK_FALSE(layout.is_hashed("defer"));
}

TEST_CASE("files move between queues, into hash directories made on demand, and are found by a scan") {
  TempDir d;
  QueueLayout layout(d.str(), {"deferred"}, 2);
  fs::create_directories(d.path / "incoming");
  fs::create_directories(d.path / "active");
  std::string path = write_sample(layout);
  std::string id = fs::path(path).filename();
  std::string error;
  REQUIRE(layout.move(id, "incoming", "deferred", &error));
  CHECK(fs::exists(layout.path("deferred", id)));
  CHECK(file_mode(layout.path("deferred", id)) == 0700);
  CHECK(file_mode(layout.dir("deferred", id)) == 0700);
  CHECK_FALSE(layout.move(id, "incoming", "active", &error));  // not there any more
  CHECK(error.find("rename " + d.str() + "/incoming/" + id + " to ") == 0);

  // A scan finds files at any hash depth, skips temporary names.
  fs::create_directories(d.path / "deferred" / "A");
  write_all(d.str() + "/deferred/A/ABCDE123", "x");
  write_all(d.str() + "/deferred/12345.678", "x");
  std::set<std::string> found;
  REQUIRE(layout.scan("deferred", [&](std::string_view name, const std::string& p) {
    found.insert(std::string(name));
    CHECK(fs::exists(p));
  }, &error));
  CHECK(found == std::set<std::string>{id, "ABCDE123"});
  found.clear();
  CHECK(layout.scan("hold", [&](std::string_view name, const std::string&) { found.insert(std::string(name)); },
                    &error));  // a missing queue is empty
  CHECK(found.empty());
  REQUIRE(layout.remove("deferred", id, &error));
  CHECK_FALSE(layout.remove("deferred", id, &error));
}

TEST_CASE("the queue directory tree gets postfix-files' modes") {
  TempDir d;
  QueueLayout layout(d.str() + "/spool/postfix");
  QueueOwners owners;  // no owner changes
  std::vector<std::string> changes;
  std::string error;
  REQUIRE(setup_queue_directories(layout, owners, DirSetup::create, &changes, &error));
  std::string q = layout.queue_directory();
  CHECK(file_mode(q) == 0755);
  CHECK(file_mode(d.str() + "/spool") == 0755);  // made on the way, traversable
  CHECK(file_mode(q + "/maildrop") == 0730);
  CHECK(file_mode(q + "/public") == 0710);
  CHECK(file_mode(q + "/pid") == 0755);
  for (const char* name : {"incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace",
                           "flush", "saved", "private"})
    CHECK(file_mode(q + "/" + name) == 0700);
  CHECK(changes.size() == queue_directory_specs().size());
  CHECK(changes[0] == q + ": created");

  // A hash directory and a queue file in it; modes gone wrong.
  fs::create_directories(q + "/deferred/A");
  write_all(q + "/deferred/A/ABCDE123", "x");
  ::chmod((q + "/deferred/A/ABCDE123").c_str(), 0700);
  ::chmod((q + "/deferred/A").c_str(), 0755);
  ::chmod((q + "/maildrop").c_str(), 0777);
  changes.clear();
  REQUIRE(setup_queue_directories(layout, owners, DirSetup::create, &changes, &error));
  CHECK(changes.empty());  // "create" leaves existing directories alone
  CHECK(file_mode(q + "/maildrop") == 0777);
  REQUIRE(setup_queue_directories(layout, owners, DirSetup::set_permissions, &changes, &error));
  CHECK(changes == std::vector<std::string>{q + "/maildrop: mode 777 -> 730"});
  CHECK(file_mode(q + "/maildrop") == 0730);
  CHECK(file_mode(q + "/deferred/A") == 0700);          // subdirectories follow
  CHECK(file_mode(q + "/deferred/A/ABCDE123") == 0700);  // files keep their mode

  write_all(d.str() + "/spool/postfix/bounce-file", "");
  fs::remove(q + "/bounce");
  fs::create_symlink(d.str() + "/spool/postfix/bounce-file", q + "/bounce");
  CHECK_FALSE(setup_queue_directories(layout, owners, DirSetup::create, nullptr, &error));
  CHECK(error == "use " + q + "/bounce: Not a directory");
}

TEST_CASE("as root, owners follow postfix-files") {
  if (::geteuid() != 0) {
    WARN("not root: owner changes are not tested");
    return;
  }
  TempDir d;
  QueueLayout layout(d.str() + "/q");
  QueueOwners owners;
  owners.change_owners = true;
  owners.mail_owner_uid = 65534;
  owners.setgid_gid = 65533;
  std::string error;
  REQUIRE(setup_queue_directories(layout, owners, DirSetup::create, nullptr, &error));
  fs::create_directories(d.str() + "/q/deferred/A");
  write_all(d.str() + "/q/deferred/A/ABCDE123", "x");
  REQUIRE(setup_queue_directories(layout, owners, DirSetup::set_permissions, nullptr, &error));
  auto owner = [](const std::string& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return std::make_pair(st.st_uid, st.st_gid);
  };
  gid_t my_gid = ::getegid();
  CHECK(owner(d.str() + "/q") == std::make_pair(uid_t{0}, my_gid));
  CHECK(owner(d.str() + "/q/pid").first == 0);
  CHECK(owner(d.str() + "/q/incoming") == std::make_pair(uid_t{65534}, my_gid));  // group left alone
  CHECK(owner(d.str() + "/q/maildrop") == std::make_pair(uid_t{65534}, gid_t{65533}));
  CHECK(owner(d.str() + "/q/public") == std::make_pair(uid_t{65534}, gid_t{65533}));
  CHECK(owner(d.str() + "/q/deferred/A/ABCDE123").first == 65534);  // recursive
}
