// What every fuzz target here needs: an oracle check that stops libFuzzer (and
// the corpus replay) at the failing line, and a reader that turns the input into
// fields. The reader never fails: past the input's end it yields zeros, so every
// input, however short, is a complete test case.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

// A trap, not abort(): libFuzzer and the sanitizers report it with the stack.
#define FUZZ_CHECK(condition)               \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

namespace atl::fuzz {

class FuzzInput {
public:
    FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    bool empty() const { return offset_ >= size_; }

    uint8_t byte() { return take<uint8_t>(); }

    // A little-endian (host order) value of sizeof(T) bytes.
    template <class T>
    T take() {
        T value{};
        const size_t n = std::min(sizeof(T), available());
        if (n > 0) std::memcpy(&value, data_ + offset_, n);
        offset_ += sizeof(T);
        return value;
    }

    std::vector<uint8_t> bytes(size_t count) {
        std::vector<uint8_t> out(count, 0);
        const size_t n = std::min(count, available());
        if (n > 0) std::memcpy(out.data(), data_ + offset_, n);
        offset_ += count;
        return out;
    }

private:
    size_t available() const { return offset_ < size_ ? size_ - offset_ : 0; }

    const uint8_t* data_;
    size_t size_;
    size_t offset_ = 0;
};

}  // namespace atl::fuzz
