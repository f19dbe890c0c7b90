// Errors the core raises; the bindings turn each kind into the matching Python exception.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace gemmacpp {

struct ValueError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct TypeError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct NotImplementedError : std::logic_error { using std::logic_error::logic_error; };
// Python's MemoryError, with a message that says how much was asked for (std::bad_alloc has none).
struct MemoryError : std::runtime_error { using std::runtime_error::runtime_error; };

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace gemmacpp

// GC_CHECK(cond, ErrorType, message pieces...): throw ErrorType(concatenated message) unless cond.
#define GC_CHECK(cond, Err, ...) \
  do { if (!(cond)) throw ::gemmacpp::Err(::gemmacpp::str_cat(__VA_ARGS__)); } while (0)
