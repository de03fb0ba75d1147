// Fuzz target for what a D-Bus client feeds DefineVM: the VM definition's JSON
// parser and validator (dom0/src/vm_definition.cpp). Properties checked:
//  - nothing crashes, hangs or recurses without bound, whatever the input;
//  - every refusal is an InvalidArgument with a message of bounded size in
//    valid UTF-8 (it travels as a D-Bus string);
//  - an accepted definition validates, and its canonical JSON parses back to
//    the same canonical JSON (what atolld stores and shows is what it took).
#include <atoll/dom0/vm_definition.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace atl::dom0;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_vm_definition(text);
    if (!parsed) {
        if (parsed.error().kind != ErrorKind::InvalidArgument || parsed.error().message.empty() ||
            parsed.error().message.size() > 1024 || !valid_utf8(parsed.error().message)) {
            std::fprintf(stderr, "bad refusal: kind %s, %zu bytes of message\n", error_kind_name(parsed.error().kind),
                         parsed.error().message.size());
            std::abort();
        }
        return 0;
    }
    if (!validate_vm_definition(*parsed)) std::abort();
    const std::string canonical = vm_definition_to_json(*parsed);
    if (!valid_utf8(canonical)) std::abort();
    auto again = parse_vm_definition(canonical);
    if (!again) {
        std::fprintf(stderr, "canonical form refused: %s\n%s\n", again.error().message.c_str(), canonical.c_str());
        std::abort();
    }
    if (vm_definition_to_json(*again) != canonical) {
        std::fprintf(stderr, "canonical form changed on the way back:\n%s\n", canonical.c_str());
        std::abort();
    }
    return 0;
}
