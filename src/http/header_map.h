// HeaderMap: an ordered, case-insensitive list of header fields.
//
// Invariants: all names and values live in one contiguous std::string (`buf_`),
// fields are (offset, length) pairs into it, so clear() keeps capacity and a
// connection that reuses its HeaderMap allocates nothing in steady state.
// Views returned by get()/fields are valid until the next mutation.
#pragma once

#include <cstdint>
#include <optional>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::http {

inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// ASCII case-insensitive equality (field names are ASCII tokens, RFC 9110 §5.1).
// Inline: it runs for every header lookup on the hit path.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}
std::string to_lower(std::string_view s);
// Trim optional whitespace (SP / HTAB) at both ends (RFC 9110 §5.6.3).
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Appends "name: value\r\n" with one resize and two copies (four appends
// cost twice as much; heads are built field by field on every request).
inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  const std::size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

class HeaderMap {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };

  void clear() noexcept {
    buf_.clear();
    slots_.clear();
    dead_bytes_ = 0;  // a reused map must not carry the count of bytes it no longer holds
  }
  bool empty() const noexcept { return slots_.empty(); }
  std::size_t size() const noexcept { return slots_.size(); }

  // Appends a field (duplicates are kept, in order).
  void add(std::string_view name, std::string_view value);
  // Replaces every field called `name` with one field (appended at the end).
  void set(std::string_view name, std::string_view value);
  // Removes every field called `name`; returns how many were removed.
  std::size_t remove(std::string_view name);
  // Removes every field for which pred(Field) is true, in one pass; returns how many.
  template <class Pred>
  std::size_t remove_if(Pred&& pred) {
    std::size_t out = 0, removed = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (pred(at(i))) {
        dead_bytes_ += slots_[i].name_len + slots_[i].value_len;
        ++removed;
        continue;
      }
      slots_[out++] = slots_[i];
    }
    slots_.resize(out);
    if (dead_bytes_ > 4096 && dead_bytes_ > buf_.size() / 2) compact();
    return removed;
  }

  // The first value of `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  bool has(std::string_view name) const noexcept { return get(name).has_value(); }
  // All values of `name` joined with ", " (RFC 9110 §5.3 list combination).
  std::string get_combined(std::string_view name) const;
  std::size_t count(std::string_view name) const noexcept;

  Field at(std::size_t i) const noexcept {
    const Slot& s = slots_[i];
    return {std::string_view(buf_).substr(s.name_off, s.name_len),
            std::string_view(buf_).substr(s.value_off, s.value_len)};
  }

  // Range-for support.
  class Iterator {
   public:
    Iterator(const HeaderMap* m, std::size_t i) : m_(m), i_(i) {}
    Field operator*() const noexcept { return m_->at(i_); }
    Iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    bool operator!=(const Iterator& o) const noexcept { return i_ != o.i_; }

   private:
    const HeaderMap* m_;
    std::size_t i_;
  };
  Iterator begin() const noexcept { return {this, 0}; }
  Iterator end() const noexcept { return {this, slots_.size()}; }

  // Appends "Name: value\r\n" for every field to `out`.
  void serialize(std::string& out) const;
  // Bytes used by names and values (for memory accounting).
  std::size_t byte_size() const noexcept { return buf_.capacity() + slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint32_t name_off, name_len, value_off, value_len;
  };
  void compact();
  std::string buf_;
  std::vector<Slot> slots_;
  std::size_t dead_bytes_ = 0;
};

}  // namespace cachalot::http
