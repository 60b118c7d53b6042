// tcp_rendezvous (tcp_rendezvous.h): blocking sockets with poll() deadlines, so no step waits
// longer than the rendezvous timeout.
//
// Wire format (all integers 32-bit big-endian):
//   client → rank 0: magic 'SMOL', rank, world size, payload length
//   rank 0 → client: status (0 ok, 1 refused), message length, message, then on ok the payload
#include "kernels/comm/tcp_rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "common/error.h"

namespace smol::comm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x534d4f4c;  // "SMOL"

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string where_str(const Rendezvous& w) {
  return "tcp rendezvous (rank " + std::to_string(w.rank) + " of " + std::to_string(w.world_size) +
         ", " + w.host + ":" + std::to_string(w.port) + ")";
}

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

// Waits until `fd` is ready for `events`; false when the deadline passed first.
bool ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t bytes, Clock::time_point deadline,
              const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    SMOL_CHECK(ready(fd, POLLOUT, deadline), what, ": timed out sending");
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    SMOL_CHECK(n > 0, what, ": send failed: ", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void recv_all(int fd, void* data, size_t bytes, Clock::time_point deadline,
              const std::string& what) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    SMOL_CHECK(ready(fd, POLLIN, deadline), what, ": timed out waiting for the peer");
    const ssize_t n = ::recv(fd, p, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    SMOL_CHECK(n != 0, what, ": the peer closed the connection");
    SMOL_CHECK(n > 0, what, ": recv failed: ", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void send_u32s(int fd, std::initializer_list<uint32_t> values, Clock::time_point deadline,
               const std::string& what) {
  std::vector<uint32_t> wire;
  for (uint32_t v : values) wire.push_back(htonl(v));
  send_all(fd, wire.data(), wire.size() * 4, deadline, what);
}
uint32_t recv_u32(int fd, Clock::time_point deadline, const std::string& what) {
  uint32_t v = 0;
  recv_all(fd, &v, 4, deadline, what);
  return ntohl(v);
}

void send_reply(int fd, const std::string& refusal, const std::vector<char>& payload,
                Clock::time_point deadline, const std::string& what) {
  send_u32s(fd, {refusal.empty() ? 0u : 1u, static_cast<uint32_t>(refusal.size())}, deadline, what);
  send_all(fd, refusal.data(), refusal.size(), deadline, what);
  if (refusal.empty()) send_all(fd, payload.data(), payload.size(), deadline, what);
}

std::vector<char> serve(const Rendezvous& w, const std::vector<char>& payload,
                        Clock::time_point deadline) {
  const std::string what = where_str(w);
  Fd listener(::socket(AF_INET6, SOCK_STREAM, 0));
  bool v6 = listener.get() >= 0;
  if (!v6) listener = Fd(::socket(AF_INET, SOCK_STREAM, 0));
  SMOL_CHECK(listener.get() >= 0, what, ": socket failed: ", std::strerror(errno));
  const int one = 1, zero = 0;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int bound = -1;
  if (v6) {
    ::setsockopt(listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // v4 too
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(static_cast<uint16_t>(w.port));
    bound = ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(w.port));
    bound = ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  SMOL_CHECK(bound == 0, what, ": rank 0 cannot listen on port ", w.port, ": ",
             std::strerror(errno), " (is MASTER_PORT in use by another job?)");
  SMOL_CHECK(::listen(listener.get(), w.world_size) == 0, what,
             ": listen failed: ", std::strerror(errno));

  std::set<int> seen;
  std::vector<Fd> clients;
  while (static_cast<int>(seen.size()) < w.world_size - 1) {
    SMOL_CHECK(ready(listener.get(), POLLIN, deadline), what, ": only ", seen.size(), " of ",
               w.world_size - 1, " other ranks connected before the timeout");
    Fd client(::accept(listener.get(), nullptr, nullptr));
    if (client.get() < 0) continue;
    const std::string peer = what + ": a connecting rank";
    const uint32_t magic = recv_u32(client.get(), deadline, peer);
    SMOL_CHECK(magic == kMagic, what, ": something other than a smolengine rank connected to port ",
               w.port);
    const int rank = static_cast<int>(recv_u32(client.get(), deadline, peer));
    const int world = static_cast<int>(recv_u32(client.get(), deadline, peer));
    const uint32_t length = recv_u32(client.get(), deadline, peer);
    std::string refusal;
    if (world != w.world_size)
      refusal = "rank " + std::to_string(rank) + " says world size " + std::to_string(world) +
                " but rank 0 has world size " + std::to_string(w.world_size) +
                " (WORLD_SIZE must be the same on every rank)";
    else if (rank <= 0 || rank >= w.world_size)
      refusal = "a rank " + std::to_string(rank) + " connected, outside [1, " +
                std::to_string(w.world_size) + ")";
    else if (seen.count(rank))
      refusal = "rank " + std::to_string(rank) +
                " connected twice (two processes with RANK=" + std::to_string(rank) + ")";
    else if (length != payload.size())
      refusal = "rank " + std::to_string(rank) + " expects " + std::to_string(length) +
                " bytes, rank 0 sends " + std::to_string(payload.size());
    if (!refusal.empty()) {
      try {
        send_reply(client.get(), refusal, payload, deadline, what);
      } catch (const Error&) {
        // The refused peer may be gone already; rank 0's own error below is what matters.
      }
      throw_error(what, ": ", refusal);
    }
    seen.insert(rank);
    clients.push_back(std::move(client));
  }
  for (const Fd& c : clients) send_reply(c.get(), "", payload, deadline, what);
  return payload;
}

// Connects to host:port, retrying (rank 0 may not listen yet) until the deadline.
Fd connect_with_retries(const Rendezvous& w, Clock::time_point deadline) {
  const std::string what = where_str(w);
  std::string last_error = "no attempt";
  while (Clock::now() < deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(w.port);
    const int status = ::getaddrinfo(w.host.c_str(), port.c_str(), &hints, &found);
    if (status != 0) {
      last_error = std::string("cannot resolve MASTER_ADDR: ") + ::gai_strerror(status);
    } else {
      for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
        if (fd.get() < 0) continue;
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
          ::freeaddrinfo(found);
          return fd;
        }
        last_error = std::string("connect: ") + std::strerror(errno);
      }
      ::freeaddrinfo(found);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
  throw_error(what, ": could not reach rank 0 within ", w.timeout_seconds, " s (", last_error, ")");
}

std::vector<char> join(const Rendezvous& w, size_t length, Clock::time_point deadline) {
  const std::string what = where_str(w);
  Fd fd = connect_with_retries(w, deadline);
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  send_u32s(fd.get(),
            {kMagic, static_cast<uint32_t>(w.rank), static_cast<uint32_t>(w.world_size),
             static_cast<uint32_t>(length)},
            deadline, what);
  const uint32_t status = recv_u32(fd.get(), deadline, what);
  const uint32_t message_length = recv_u32(fd.get(), deadline, what);
  SMOL_CHECK(message_length < (1u << 16), what, ": garbled reply from rank 0");
  std::string message(message_length, '\0');
  recv_all(fd.get(), message.data(), message.size(), deadline, what);
  SMOL_CHECK(status == 0, what, ": rank 0 refused this rank: ", message);
  std::vector<char> payload(length);
  recv_all(fd.get(), payload.data(), payload.size(), deadline, what);
  return payload;
}

}  // namespace

std::vector<char> tcp_rendezvous(const Rendezvous& where, const std::vector<char>& payload) {
  SMOL_CHECK(where.world_size >= 1 && where.rank >= 0 && where.rank < where.world_size,
             where_str(where), ": rank outside the world");
  SMOL_CHECK(where.port > 0 && where.port < 65536, where_str(where), ": MASTER_PORT ", where.port,
             " is not a port number");
  if (where.world_size == 1) return payload;
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(std::min(where.timeout_seconds, 1e9)));
  return where.rank == 0 ? serve(where, payload, deadline) : join(where, payload.size(), deadline);
}

}  // namespace smol::comm
