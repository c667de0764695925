// TLS contexts (OpenSSL via asio::ssl) for listeners and the upstream.
#pragma once

#include <memory>
#include <string>

#include <asio.hpp>
#include <asio/ssl.hpp>

namespace cachalot::net {

// A server context: TLS 1.2+, the certificate chain and key from PEM files,
// ALPN answering "http/1.1". Throws std::runtime_error naming the file.
std::shared_ptr<asio::ssl::context> make_server_tls(const std::string& cert_file, const std::string& key_file);

// A client context for an https:// origin: TLS 1.2+, peer verification on
// unless `verify` is false, the system CA store plus `ca_file` if given.
std::shared_ptr<asio::ssl::context> make_client_tls(bool verify, const std::string& ca_file);

}  // namespace cachalot::net
