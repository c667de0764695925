#include "http/header_map.h"

namespace cachalot::http {

using namespace std::string_view_literals;

std::string to_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = ascii_lower(c);
  return r;
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  Slot s;
  s.name_off = static_cast<uint32_t>(buf_.size());
  s.name_len = static_cast<uint32_t>(name.size());
  buf_.append(name);
  s.value_off = static_cast<uint32_t>(buf_.size());
  s.value_len = static_cast<uint32_t>(value.size());
  buf_.append(value);
  slots_.push_back(s);
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  // `name`/`value` may point into buf_; copy before mutating.
  std::string n(name), v(value);
  remove(n);
  add(n, v);
}

std::size_t HeaderMap::remove(std::string_view name) {
  std::size_t removed = 0;
  std::size_t out = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (iequals(std::string_view(buf_).substr(s.name_off, s.name_len), name)) {
      dead_bytes_ += s.name_len + s.value_len;
      ++removed;
      continue;
    }
    slots_[out++] = s;
  }
  slots_.resize(out);
  if (dead_bytes_ > 4096 && dead_bytes_ > buf_.size() / 2) compact();
  return removed;
}

void HeaderMap::compact() {
  std::string nb;
  nb.reserve(buf_.size() - dead_bytes_);
  for (Slot& s : slots_) {
    uint32_t no = static_cast<uint32_t>(nb.size());
    nb.append(buf_, s.name_off, s.name_len);
    uint32_t vo = static_cast<uint32_t>(nb.size());
    nb.append(buf_, s.value_off, s.value_len);
    s.name_off = no;
    s.value_off = vo;
  }
  buf_.swap(nb);
  dead_bytes_ = 0;
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const noexcept {
  for (const Slot& s : slots_) {
    if (iequals(std::string_view(buf_).substr(s.name_off, s.name_len), name))
      return std::string_view(buf_).substr(s.value_off, s.value_len);
  }
  return std::nullopt;
}

std::string HeaderMap::get_combined(std::string_view name) const {
  std::string r;
  bool first = true;
  for (const Slot& s : slots_) {
    if (!iequals(std::string_view(buf_).substr(s.name_off, s.name_len), name)) continue;
    if (!first) r.append(", "sv);
    r.append(buf_, s.value_off, s.value_len);
    first = false;
  }
  return r;
}

std::size_t HeaderMap::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (const Slot& s : slots_)
    if (iequals(std::string_view(buf_).substr(s.name_off, s.name_len), name)) ++n;
  return n;
}

void HeaderMap::serialize(std::string& out) const {
  const std::string_view b(buf_);
  for (const Slot& s : slots_) append_field(out, b.substr(s.name_off, s.name_len), b.substr(s.value_off, s.value_len));
}

}  // namespace cachalot::http
