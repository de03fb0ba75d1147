// A small ACPI Machine Language encoder: the subset Atoll's DSDT needs
// (ACPI 6.5, chapter 20 "ACPI Machine Language Specification", and 6.4
// "Resource Data Types for ACPI"). Every function returns the encoded bytes
// of one term; terms nest by passing bytes to their parents.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace atl::vmm::x86::aml {

using Bytes = std::vector<uint8_t>;

// PkgLength (20.2.4) for a package whose contents after the PkgLength are
// `content_bytes` long: 1 to 4 bytes, counting itself. Lengths above 2^28 - 1
// cannot be encoded; the result is then empty.
Bytes pkg_length(size_t content_bytes);

// A NameString (20.2.2): "\_SB.PCI0", "^CP00", "_HID". Segments shorter than
// four characters are padded with '_'.
Bytes name_string(std::string_view path);

// --- Data objects (20.2.3) ---
Bytes integer(uint64_t value);  // ZeroOp, OneOp, or the narrowest prefix
Bytes byte_integer(uint8_t value);
Bytes word_integer(uint16_t value);
Bytes dword_integer(uint32_t value);
Bytes qword_integer(uint64_t value);
Bytes string(std::string_view text);  // ASCII, without NUL bytes
// EISA ID "PNP0A08" compressed into a DWORD (6.1.5, _HID): three letters of 5
// bits each and four hex digits, stored big-endian.
Bytes eisa_id(std::string_view id);
Bytes package(const std::vector<Bytes>& elements);  // at most 255 elements
Bytes buffer(std::span<const uint8_t> bytes);

// --- Named objects and statements (20.2.5) ---
Bytes name(std::string_view path, const Bytes& value);
Bytes scope(std::string_view path, const std::vector<Bytes>& terms);
Bytes device(std::string_view path, const std::vector<Bytes>& terms);
Bytes method(std::string_view path, unsigned arg_count, bool serialized, const std::vector<Bytes>& terms);
Bytes return_value(const Bytes& value);
Bytes arg(unsigned index);    // Arg0..Arg6
Bytes local(unsigned index);  // Local0..Local7

// A resource template (6.4): descriptors in order, finished by to_buffer()
// with an End Tag, as a Buffer object for _CRS. Address space descriptors
// are for a bridge's windows: ResourceProducer, MinFixed, MaxFixed,
// PosDecode, no translation, length = max - min + 1.
class ResourceTemplate {
public:
    enum class Cacheability : uint8_t { NonCacheable = 0, Cacheable = 1, WriteCombining = 2, Prefetchable = 3 };

    ResourceTemplate& io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);  // Decode16
    ResourceTemplate& irq_no_flags(std::initializer_list<unsigned> irqs);               // edge, active high
    ResourceTemplate& memory32_fixed(uint32_t base, uint32_t length, bool writable = true);
    ResourceTemplate& word_bus_number(uint16_t min, uint16_t max);
    ResourceTemplate& word_io(uint16_t min, uint16_t max);
    ResourceTemplate& dword_memory(uint32_t min, uint32_t max, Cacheability cacheability = Cacheability::NonCacheable);
    ResourceTemplate& qword_memory(uint64_t min, uint64_t max, Cacheability cacheability = Cacheability::NonCacheable);

    Bytes to_buffer() const;

private:
    Bytes descriptors_;
};

}  // namespace atl::vmm::x86::aml
