#include "arch/x86/aml.h"

#include <cassert>

namespace atl::vmm::x86::aml {
namespace {

// Opcodes and prefixes (ACPI 6.5, 20.3 "AML Byte Stream Byte Values").
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kParentPrefixChar = '^';
constexpr uint8_t kLocal0Op = 0x60;
constexpr uint8_t kArg0Op = 0x68;
constexpr uint8_t kReturnOp = 0xa4;

// Resource descriptor tags (6.4.2 small, 6.4.3 large).
constexpr uint8_t kIrqNoFlagsTag = 0x22;   // small item 0x4, length 2
constexpr uint8_t kIoPortTag = 0x47;       // small item 0x8, length 7
constexpr uint8_t kEndTag = 0x79;          // small item 0xF, length 1
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint8_t kDWordAddressTag = 0x87;
constexpr uint8_t kWordAddressTag = 0x88;
constexpr uint8_t kQWordAddressTag = 0x8a;

// Address space descriptor fields (6.4.3.5).
constexpr uint8_t kResourceTypeMemory = 0;
constexpr uint8_t kResourceTypeIo = 1;
constexpr uint8_t kResourceTypeBusNumber = 2;
// General flags: producer (bit 0 = 0), positive decode (bit 1 = 0), _MIF, _MAF.
constexpr uint8_t kProducerFixedWindow = (1u << 2) | (1u << 3);
constexpr uint8_t kIoEntireRange = 0x3;  // _RNG: ISA and non-ISA ranges
constexpr uint8_t kMemoryReadWrite = 0x1;

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

template <class T>
void append_le(Bytes& out, T value) {
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
}

Bytes name_segment(std::string_view segment) {
    assert(!segment.empty() && segment.size() <= 4);
    Bytes out(segment.begin(), segment.end());
    out.resize(4, '_');
    return out;
}

// opcode(s) PkgLength contents
Bytes with_pkg_length(Bytes opcode, const Bytes& contents) {
    append(opcode, pkg_length(contents.size()));
    append(opcode, contents);
    return opcode;
}

Bytes join(const std::vector<Bytes>& terms) {
    Bytes out;
    for (const auto& term : terms) append(out, term);
    return out;
}

Bytes named_block(Bytes opcode, std::string_view path, const std::vector<Bytes>& terms) {
    Bytes contents = name_string(path);
    append(contents, join(terms));
    return with_pkg_length(std::move(opcode), contents);
}

}  // namespace

Bytes pkg_length(size_t content_bytes) {
    // One byte holds totals up to 63; with n following bytes the first byte
    // keeps only the low nibble and bits 7-6 say n (20.2.4).
    if (content_bytes + 1 <= 0x3f) return {static_cast<uint8_t>(content_bytes + 1)};
    for (size_t following = 1; following <= 3; ++following) {
        const size_t total = content_bytes + 1 + following;
        if (total < (size_t{1} << (4 + 8 * following))) {
            Bytes out{static_cast<uint8_t>((following << 6) | (total & 0xf))};
            for (size_t i = 0; i < following; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
            return out;
        }
    }
    return {};
}

Bytes name_string(std::string_view path) {
    Bytes out;
    while (!path.empty() && (path.front() == kRootChar || path.front() == kParentPrefixChar)) {
        out.push_back(static_cast<uint8_t>(path.front()));
        path.remove_prefix(1);
    }
    std::vector<std::string_view> segments;
    while (!path.empty()) {
        const size_t dot = path.find('.');
        segments.push_back(path.substr(0, dot));
        path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    }
    if (segments.empty()) {
        out.push_back(0x00);  // NullName
    } else if (segments.size() == 2) {
        out.push_back(kDualNamePrefix);
    } else if (segments.size() > 2) {
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<uint8_t>(segments.size()));
    }
    for (auto segment : segments) append(out, name_segment(segment));
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) return {kZeroOp};
    if (value == 1) return {kOneOp};
    if (value <= 0xff) return byte_integer(static_cast<uint8_t>(value));
    if (value <= 0xffff) return word_integer(static_cast<uint16_t>(value));
    if (value <= 0xffff'ffff) return dword_integer(static_cast<uint32_t>(value));
    return qword_integer(value);
}

Bytes byte_integer(uint8_t value) { return {kBytePrefix, value}; }

Bytes word_integer(uint16_t value) {
    Bytes out{kWordPrefix};
    append_le(out, value);
    return out;
}

Bytes dword_integer(uint32_t value) {
    Bytes out{kDWordPrefix};
    append_le(out, value);
    return out;
}

Bytes qword_integer(uint64_t value) {
    Bytes out{kQWordPrefix};
    append_le(out, value);
    return out;
}

Bytes string(std::string_view text) {
    Bytes out{kStringPrefix};
    out.insert(out.end(), text.begin(), text.end());
    out.push_back(0);
    return out;
}

Bytes eisa_id(std::string_view id) {
    assert(id.size() == 7);
    auto letter = [&](size_t i) { return static_cast<uint32_t>(id[i] - 0x40) & 0x1f; };
    auto hex = [&](size_t i) {
        const char c = id[i];
        return static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10) & 0xf;
    };
    // Big-endian: byte 0 holds the first letter and two bits of the second.
    const uint32_t big_endian = (letter(0) << 26) | (letter(1) << 21) | (letter(2) << 16) | (hex(3) << 12) |
                                (hex(4) << 8) | (hex(5) << 4) | hex(6);
    return dword_integer(__builtin_bswap32(big_endian));
}

Bytes package(const std::vector<Bytes>& elements) {
    assert(elements.size() <= 255);
    Bytes contents{static_cast<uint8_t>(elements.size())};
    append(contents, join(elements));
    return with_pkg_length({kPackageOp}, contents);
}

Bytes buffer(std::span<const uint8_t> bytes) {
    Bytes contents = integer(bytes.size());
    contents.insert(contents.end(), bytes.begin(), bytes.end());
    return with_pkg_length({kBufferOp}, contents);
}

Bytes name(std::string_view path, const Bytes& value) {
    Bytes out{kNameOp};
    append(out, name_string(path));
    append(out, value);
    return out;
}

Bytes scope(std::string_view path, const std::vector<Bytes>& terms) { return named_block({kScopeOp}, path, terms); }

Bytes device(std::string_view path, const std::vector<Bytes>& terms) {
    return named_block({kExtOpPrefix, kDeviceOp}, path, terms);
}

Bytes method(std::string_view path, unsigned arg_count, bool serialized, const std::vector<Bytes>& terms) {
    assert(arg_count <= 7);
    // MethodFlags: bits 2-0 ArgCount, bit 3 SerializeFlag, bits 7-4 SyncLevel (0).
    const uint8_t flags = static_cast<uint8_t>((arg_count & 0x7) | (serialized ? 0x8 : 0));
    Bytes contents = name_string(path);
    contents.push_back(flags);
    append(contents, join(terms));
    return with_pkg_length({kMethodOp}, contents);
}

Bytes return_value(const Bytes& value) {
    Bytes out{kReturnOp};
    append(out, value);
    return out;
}

Bytes arg(unsigned index) {
    assert(index <= 6);
    return {static_cast<uint8_t>(kArg0Op + index)};
}

Bytes local(unsigned index) {
    assert(index <= 7);
    return {static_cast<uint8_t>(kLocal0Op + index)};
}

ResourceTemplate& ResourceTemplate::io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
    descriptors_.push_back(kIoPortTag);
    descriptors_.push_back(0x01);  // decodes 16 address bits
    append_le(descriptors_, min);
    append_le(descriptors_, max);
    descriptors_.push_back(alignment);
    descriptors_.push_back(length);
    return *this;
}

ResourceTemplate& ResourceTemplate::irq_no_flags(std::initializer_list<unsigned> irqs) {
    uint16_t mask = 0;
    for (unsigned irq : irqs) {
        assert(irq < 16);
        mask = static_cast<uint16_t>(mask | (1u << irq));
    }
    descriptors_.push_back(kIrqNoFlagsTag);
    append_le(descriptors_, mask);
    return *this;
}

ResourceTemplate& ResourceTemplate::memory32_fixed(uint32_t base, uint32_t length, bool writable) {
    descriptors_.push_back(kMemory32FixedTag);
    append_le(descriptors_, uint16_t{9});
    descriptors_.push_back(writable ? 1 : 0);
    append_le(descriptors_, base);
    append_le(descriptors_, length);
    return *this;
}

namespace {

// Word, DWord and QWord Address Space Descriptors (6.4.3.5.1-3) share one
// layout with fields of width sizeof(T): granularity, min, max, translation, length.
template <class T>
void address_space(Bytes& out, uint8_t tag, uint8_t resource_type, uint8_t type_flags, T min, T max) {
    out.push_back(tag);
    append_le(out, static_cast<uint16_t>(3 + 5 * sizeof(T)));
    out.push_back(resource_type);
    out.push_back(kProducerFixedWindow);
    out.push_back(type_flags);
    append_le(out, T{0});  // granularity
    append_le(out, min);
    append_le(out, max);
    append_le(out, T{0});  // translation offset
    append_le(out, static_cast<T>(max - min + 1));
}

uint8_t memory_flags(ResourceTemplate::Cacheability cacheability) {
    return static_cast<uint8_t>(kMemoryReadWrite | (static_cast<uint8_t>(cacheability) << 1));
}

}  // namespace

ResourceTemplate& ResourceTemplate::word_bus_number(uint16_t min, uint16_t max) {
    address_space<uint16_t>(descriptors_, kWordAddressTag, kResourceTypeBusNumber, 0, min, max);
    return *this;
}

ResourceTemplate& ResourceTemplate::word_io(uint16_t min, uint16_t max) {
    address_space<uint16_t>(descriptors_, kWordAddressTag, kResourceTypeIo, kIoEntireRange, min, max);
    return *this;
}

ResourceTemplate& ResourceTemplate::dword_memory(uint32_t min, uint32_t max, Cacheability cacheability) {
    address_space<uint32_t>(descriptors_, kDWordAddressTag, kResourceTypeMemory, memory_flags(cacheability), min, max);
    return *this;
}

ResourceTemplate& ResourceTemplate::qword_memory(uint64_t min, uint64_t max, Cacheability cacheability) {
    address_space<uint64_t>(descriptors_, kQWordAddressTag, kResourceTypeMemory, memory_flags(cacheability), min, max);
    return *this;
}

Bytes ResourceTemplate::to_buffer() const {
    Bytes bytes = descriptors_;
    bytes.push_back(kEndTag);
    bytes.push_back(0);  // checksum 0: "treat as if the checksum is correct" (6.4.2.9)
    return buffer(bytes);
}

}  // namespace atl::vmm::x86::aml
