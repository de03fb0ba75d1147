#include "devices/legacy/reset_port.h"

#include <cstring>

namespace atl::vmm {

ResetControlPort::ResetControlPort(ResetHandler on_reset) : on_reset_(std::move(on_reset)) {}

void ResetControlPort::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i == 0 ? value_ : 0xff;
}

void ResetControlPort::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset != 0 || data.empty()) return;
    const uint8_t value = data[0];
    {
        std::lock_guard lock(mutex_);
        // RST_CPU is self-clearing: it starts the reset and reads back 0.
        value_ = static_cast<uint8_t>(value & (kSystemReset | kFullReset));
    }
    if ((value & kResetCpu) && on_reset_) on_reset_();
}

I8042ResetStub::I8042ResetStub(ResetHandler on_reset) : on_reset_(std::move(on_reset)) {}

void I8042ResetStub::read(uint64_t, std::span<uint8_t> data) {
    // Status 0: output buffer empty, input buffer empty (ready for a command).
    std::memset(data.data(), 0, data.size());
}

void I8042ResetStub::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset == 0 && !data.empty() && data[0] == kPulseResetCommand && on_reset_) on_reset_();
}

namespace {

class PciConfigWithReset final : public BusDevice {
public:
    PciConfigWithReset(std::shared_ptr<BusDevice> pci, std::shared_ptr<ResetControlPort> reset)
        : pci_(std::move(pci)), reset_(std::move(reset)) {}

    void read(uint64_t offset, std::span<uint8_t> data) override {
        if (is_reset_register(offset, data.size())) reset_->read(0, data);
        else pci_->read(offset, data);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        if (is_reset_register(offset, data.size())) reset_->write(0, data);
        else pci_->write(offset, data);
    }

private:
    // Offset 1 from 0xCF8.
    static bool is_reset_register(uint64_t offset, size_t size) { return offset == 1 && size == 1; }

    std::shared_ptr<BusDevice> pci_;
    std::shared_ptr<ResetControlPort> reset_;
};

}  // namespace

std::shared_ptr<BusDevice> combine_pci_config_and_reset(std::shared_ptr<BusDevice> pci_config_ports,
                                                        std::shared_ptr<ResetControlPort> reset) {
    return std::make_shared<PciConfigWithReset>(std::move(pci_config_ports), std::move(reset));
}

}  // namespace atl::vmm
