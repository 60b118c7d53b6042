// tcp_rendezvous: ranks as threads of this process on a free loopback port.
#include "kernels/comm/tcp_rendezvous.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>

#include "common/error.h"

namespace smol::comm {
namespace {

// A port nobody listens on now (bound to 0, read back, closed): no fixed port, so concurrent
// test runs do not collide.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t length = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::vector<char> id_bytes() {
  std::vector<char> id(128);
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(i * 7 + 3);
  return id;
}

// Runs rendezvous on a thread; the future holds the payload or the Error's message.
std::future<std::string> start(Rendezvous where, std::vector<char> payload) {
  return std::async(std::launch::async, [where, payload] {
    try {
      const auto got = tcp_rendezvous(where, payload);
      return std::string(got.begin(), got.end());
    } catch (const Error& e) {
      return std::string("error: ") + e.what();
    }
  });
}

TEST(TcpRendezvous, EveryRankGetsRankZerosPayload) {
  const int port = free_port();
  const auto id = id_bytes();
  const std::vector<char> blank(id.size(), 0);
  // Clients start first: they must retry until rank 0 listens.
  auto r1 = start({"127.0.0.1", port, 1, 3, 10}, blank);
  auto r2 = start({"localhost", port, 2, 3, 10}, blank);
  auto r0 = start({"127.0.0.1", port, 0, 3, 10}, id);
  const std::string expected(id.begin(), id.end());
  EXPECT_EQ(r0.get(), expected);
  EXPECT_EQ(r1.get(), expected);
  EXPECT_EQ(r2.get(), expected);
}

TEST(TcpRendezvous, MismatchedWorldSizeIsAnErrorOnBothSides) {
  const int port = free_port();
  auto r0 = start({"127.0.0.1", port, 0, 2, 10}, id_bytes());
  auto r1 = start({"127.0.0.1", port, 1, 3, 10}, std::vector<char>(128));
  const std::string e0 = r0.get(), e1 = r1.get();
  EXPECT_NE(e0.find("rank 1 says world size 3 but rank 0 has world size 2"), std::string::npos)
      << e0;
  EXPECT_NE(e1.find("rank 0 refused this rank"), std::string::npos) << e1;
}

TEST(TcpRendezvous, DuplicateRankIsAnError) {
  const int port = free_port();
  auto r0 = start({"127.0.0.1", port, 0, 3, 10}, id_bytes());
  auto a = start({"127.0.0.1", port, 1, 3, 10}, std::vector<char>(128));
  auto b = start({"127.0.0.1", port, 1, 3, 10}, std::vector<char>(128));
  const std::string e0 = r0.get();
  EXPECT_NE(e0.find("rank 1 connected twice"), std::string::npos) << e0;
  EXPECT_EQ(a.get().rfind("error: ", 0), 0u);
  EXPECT_EQ(b.get().rfind("error: ", 0), 0u);
}

TEST(TcpRendezvous, NoRankZeroTimesOut) {
  const int port = free_port();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = start({"127.0.0.1", port, 1, 2, 0.5}, std::vector<char>(128)).get();
  EXPECT_NE(e.find("could not reach rank 0 within 0.5 s"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace smol::comm
