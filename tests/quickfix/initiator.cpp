// A stock QuickFIX (C++) initiator trading on Atlas, for tests/quickfix.rs.
//
// Usage: initiator HOST PORT KEY SECRET PASSPHRASE WORKDIR
//
// Logs on with the Coinbase-style signed Logon (553/554/95/96, signed in
// toAdmin over the SendingTime QuickFIX put in the header), then: a limit buy
// (expects ExecType New), a replace of it (Replaced), a cancel (Canceled), a
// market sell against an order the test rests (Trade, Filled), its status
// (OrderStatusRequest: Filled), the open orders (OrderMassStatusRequest:
// none), an unknown symbol (Rejected); logs out. Prints one line per report, "quickfix: all
// checks passed" at the end, and exits non-zero on any surprise or timeout.

#include <quickfix/Application.h>
#include <quickfix/FileStore.h>
#include <quickfix/Log.h>
#include <quickfix/MessageCracker.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketInitiator.h>
#include <quickfix/fix44/ExecutionReport.h>
#include <quickfix/fix44/NewOrderSingle.h>
#include <quickfix/fix44/OrderCancelReject.h>
#include <quickfix/fix44/OrderCancelReplaceRequest.h>
#include <quickfix/fix44/OrderCancelRequest.h>
#include <quickfix/fix44/OrderMassStatusRequest.h>
#include <quickfix/fix44/OrderStatusRequest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// QuickFIX 1.15 (Debian's) declares dynamic exception specifications; newer
// releases spell them EXCEPT(...). Built with -std=c++11 for the former.
#ifndef EXCEPT
#define EXCEPT(...) throw(__VA_ARGS__)
#endif

static std::string b64decode(const std::string& in) {
  std::vector<unsigned char> out(in.size());
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(in.data()), in.size());
  if (n < 0) return "";
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad++;
  if (in.size() > 1 && in[in.size() - 2] == '=') pad++;
  return std::string(reinterpret_cast<char*>(out.data()), n - pad);
}

static std::string b64encode(const unsigned char* data, size_t len) {
  std::vector<unsigned char> out(4 * ((len + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), data, len);
  return std::string(reinterpret_cast<char*>(out.data()), n);
}

struct Report {
  std::string msgType, execType, ordStatus, clOrdId, orderId, text;
};

class App : public FIX::Application {
 public:
  App(std::string key, std::string secret, std::string passphrase)
      : key_(key), secret_(b64decode(secret)), passphrase_(passphrase) {}

  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& id) override {
    std::lock_guard<std::mutex> g(m_);
    session_ = id;
    loggedOn_ = true;
    cv_.notify_all();
  }
  void onLogout(const FIX::SessionID&) override {
    std::lock_guard<std::mutex> g(m_);
    loggedOn_ = false;
    loggedOut_ = true;
    cv_.notify_all();
  }
  void toAdmin(FIX::Message& message, const FIX::SessionID&) override {
    FIX::MsgType type;
    message.getHeader().getField(type);
    if (type != FIX::MsgType_Logon) return;
    std::string sendingTime = message.getHeader().getField(FIX::FIELD::SendingTime);
    std::string seq = message.getHeader().getField(FIX::FIELD::MsgSeqNum);
    std::string pre = sendingTime + '\x01' + "A" + '\x01' + seq + '\x01' + key_ + '\x01' + "ATLAS" + '\x01' + passphrase_;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int macLen = 0;
    HMAC(EVP_sha256(), secret_.data(), secret_.size(), reinterpret_cast<const unsigned char*>(pre.data()), pre.size(),
         mac, &macLen);
    std::string sig = b64encode(mac, macLen);
    message.setField(553, key_);
    message.setField(554, passphrase_);
    message.setField(FIX::RawDataLength(sig.size()));
    message.setField(FIX::RawData(sig));
  }
  void toApp(FIX::Message&, const FIX::SessionID&) EXCEPT(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message& m, const FIX::SessionID&)
      EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {
    FIX::MsgType type;
    m.getHeader().getField(type);
    if (type == "3" || type == "5") {
      std::string text = m.isSetField(58) ? m.getField(58) : "";
      std::cout << "admin " << type.getValue() << " " << text << std::endl;
    }
  }
  void fromApp(const FIX::Message& m, const FIX::SessionID&)
      EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    Report r;
    FIX::MsgType type;
    m.getHeader().getField(type);
    r.msgType = type.getValue();
    auto get = [&](int tag) { return m.isSetField(tag) ? m.getField(tag) : std::string(); };
    r.execType = get(150);
    r.ordStatus = get(39);
    r.clOrdId = get(11);
    r.orderId = get(37);
    r.text = get(58);
    std::cout << "report " << r.msgType << " 150=" << r.execType << " 39=" << r.ordStatus << " 11=" << r.clOrdId
              << " 37=" << r.orderId << (r.text.empty() ? "" : " 58=" + r.text) << std::endl;
    std::lock_guard<std::mutex> g(m_);
    reports_.push_back(r);
    cv_.notify_all();
  }

  bool waitLogon() {
    std::unique_lock<std::mutex> l(m_);
    return cv_.wait_for(l, std::chrono::seconds(15), [&] { return loggedOn_; });
  }
  bool waitLogout() {
    std::unique_lock<std::mutex> l(m_);
    return cv_.wait_for(l, std::chrono::seconds(15), [&] { return loggedOut_; });
  }
  // The next report about clOrdId with this ExecType.
  bool expect(const std::string& clOrdId, const std::string& execType, Report* out = nullptr) {
    std::unique_lock<std::mutex> l(m_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (true) {
      for (auto it = reports_.begin(); it != reports_.end(); ++it) {
        if (it->clOrdId == clOrdId && it->execType == execType) {
          if (out) *out = *it;
          reports_.erase(it);
          return true;
        }
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout) {
        std::cout << "timed out waiting for 11=" << clOrdId << " 150=" << execType << std::endl;
        return false;
      }
    }
  }
  FIX::SessionID session() {
    std::lock_guard<std::mutex> g(m_);
    return session_;
  }

 private:
  std::string key_, secret_, passphrase_;
  std::mutex m_;
  std::condition_variable cv_;
  bool loggedOn_ = false, loggedOut_ = false;
  FIX::SessionID session_;
  std::deque<Report> reports_;
};

static bool run(App& app) {
  FIX::SessionID s = app.session();
  FIX44::NewOrderSingle buy(FIX::ClOrdID("qf-1"), FIX::Side(FIX::Side_BUY), FIX::TransactTime(),
                            FIX::OrdType(FIX::OrdType_LIMIT));
  buy.set(FIX::Symbol("ACME"));
  buy.set(FIX::OrderQty(10));
  buy.set(FIX::Price(9.5));
  buy.set(FIX::TimeInForce(FIX::TimeInForce_GOOD_TILL_CANCEL));
  FIX::Session::sendToTarget(buy, s);
  Report n;
  if (!app.expect("qf-1", "0", &n)) return false;

  FIX44::OrderCancelReplaceRequest rep(FIX::OrigClOrdID("qf-1"), FIX::ClOrdID("qf-2"), FIX::Side(FIX::Side_BUY),
                                       FIX::TransactTime(), FIX::OrdType(FIX::OrdType_LIMIT));
  rep.set(FIX::Symbol("ACME"));
  rep.set(FIX::OrderQty(5));
  rep.set(FIX::Price(9.25));
  FIX::Session::sendToTarget(rep, s);
  if (!app.expect("qf-2", "5")) return false;

  FIX44::OrderCancelRequest cxl(FIX::OrigClOrdID("qf-2"), FIX::ClOrdID("qf-3"), FIX::Side(FIX::Side_BUY),
                                FIX::TransactTime());
  cxl.set(FIX::Symbol("ACME"));
  cxl.set(FIX::OrderID(n.orderId));
  FIX::Session::sendToTarget(cxl, s);
  if (!app.expect("qf-3", "4")) return false;

  // The test rests a buy of 3 at 10.00 before starting this program.
  FIX44::NewOrderSingle sell(FIX::ClOrdID("qf-4"), FIX::Side(FIX::Side_SELL), FIX::TransactTime(),
                             FIX::OrdType(FIX::OrdType_MARKET));
  sell.set(FIX::Symbol("ACME"));
  sell.set(FIX::OrderQty(3));
  FIX::Session::sendToTarget(sell, s);
  Report fill;
  if (!app.expect("qf-4", "F", &fill)) return false;
  if (fill.ordStatus != "2") {
    std::cout << "the market sell should be filled, got 39=" << fill.ordStatus << std::endl;
    return false;
  }

  // Its status, asked for: filled. Then the open orders: none.
  FIX44::OrderStatusRequest status(FIX::ClOrdID("qf-4"), FIX::Side(FIX::Side_SELL));
  status.set(FIX::Symbol("ACME"));
  FIX::Session::sendToTarget(status, s);
  Report st;
  if (!app.expect("qf-4", "I", &st)) return false;
  if (st.ordStatus != "2" || st.orderId != fill.orderId) {
    std::cout << "the status should be the filled order's, got 39=" << st.ordStatus << " 37=" << st.orderId
              << std::endl;
    return false;
  }
  FIX44::OrderMassStatusRequest mass(FIX::MassStatusReqID("qf-mass"),
                                     FIX::MassStatusReqType(FIX::MassStatusReqType_STATUS_FOR_ALL_ORDERS));
  FIX::Session::sendToTarget(mass, s);
  Report none;
  if (!app.expect("", "I", &none)) return false;
  if (none.orderId != "NONE") {
    std::cout << "no order should be open, got 37=" << none.orderId << std::endl;
    return false;
  }

  FIX44::NewOrderSingle bad(FIX::ClOrdID("qf-5"), FIX::Side(FIX::Side_BUY), FIX::TransactTime(),
                            FIX::OrdType(FIX::OrdType_LIMIT));
  bad.set(FIX::Symbol("NOPE"));
  bad.set(FIX::OrderQty(1));
  bad.set(FIX::Price(1));
  FIX::Session::sendToTarget(bad, s);
  return app.expect("qf-5", "8");
}

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: initiator HOST PORT KEY SECRET PASSPHRASE WORKDIR" << std::endl;
    return 2;
  }
  std::string host = argv[1], port = argv[2], key = argv[3], secret = argv[4], pass = argv[5], dir = argv[6];
  std::stringstream cfg;
  cfg << "[DEFAULT]\n"
      << "ConnectionType=initiator\nReconnectInterval=1\nFileStorePath=" << dir << "/store\n"
      << "FileLogPath=" << dir << "/log\nStartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=N\n"
      << "ResetOnLogon=Y\nHeartBtInt=30\n"
      << "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=" << key << "\nTargetCompID=ATLAS\n"
      << "SocketConnectHost=" << host << "\nSocketConnectPort=" << port << "\n";
  try {
    FIX::SessionSettings settings(cfg);
    App app(key, secret, pass);
    FIX::FileStoreFactory store(settings);
    FIX::ScreenLogFactory log(false, false, false);
    FIX::SocketInitiator initiator(app, store, settings, log);
    initiator.start();
    if (!app.waitLogon()) {
      std::cout << "no logon" << std::endl;
      initiator.stop(true);
      return 1;
    }
    bool ok = run(app);
    initiator.stop();
    if (ok) std::cout << "quickfix: all checks passed" << std::endl;
    return ok ? 0 : 1;
  } catch (std::exception& e) {
    std::cout << "error: " << e.what() << std::endl;
    return 1;
  }
}
