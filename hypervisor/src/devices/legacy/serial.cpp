#include "devices/legacy/serial.h"

namespace atl::vmm {
namespace {

// Register offsets and bits (National Semiconductor PC16550D datasheet).
constexpr uint8_t kLineControlDlab = 0x80;
constexpr uint8_t kInterruptEnableReceive = 0x01;
constexpr uint8_t kInterruptEnableTransmit = 0x02;
constexpr uint8_t kIdentNone = 0x01;
constexpr uint8_t kIdentTransmitEmpty = 0x02;
constexpr uint8_t kIdentReceiveData = 0x04;
constexpr uint8_t kIdentFifosEnabled = 0xc0;
constexpr uint8_t kLineStatusDataReady = 0x01;
constexpr uint8_t kLineStatusTransmitEmpty = 0x20 | 0x40;
constexpr uint8_t kModemControlLoop = 0x10;
constexpr uint8_t kModemStatusDefault = 0xb0;  // DCD, DSR, CTS

}  // namespace

Serial::Serial(std::shared_ptr<CharBackend> backend, IrqLine irq_line)
    : backend_(std::move(backend)), irq_line_(std::move(irq_line)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (auto& byte : data) byte = read_register(offset);
    update_interrupt();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (uint8_t byte : data) write_register(offset, byte);
    update_interrupt();
}

void Serial::receive(std::span<const uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    for (uint8_t byte : bytes) {
        if (input_.size() >= kInputLimit) break;
        input_.push_back(byte);
    }
    update_interrupt();
}

uint8_t Serial::read_register(uint64_t offset) {
    const bool dlab = line_control_ & kLineControlDlab;
    switch (offset) {
    case 0:
        if (dlab) return divisor_low_;
        if (input_.empty()) return 0;
        {
            const uint8_t byte = input_.front();
            input_.pop_front();
            return byte;
        }
    case 1: return dlab ? divisor_high_ : interrupt_enable_;
    case 2: {
        uint8_t ident = kIdentNone;
        if ((interrupt_enable_ & kInterruptEnableReceive) && !input_.empty()) {
            ident = kIdentReceiveData;
        } else if ((interrupt_enable_ & kInterruptEnableTransmit) && transmit_interrupt_pending_) {
            ident = kIdentTransmitEmpty;
            // Reading IIR with THRE as the cause clears it.
            transmit_interrupt_pending_ = false;
        }
        return ident | ((fifo_control_ & 1) ? kIdentFifosEnabled : 0);
    }
    case 3: return line_control_;
    case 4: return modem_control_;
    case 5: return kLineStatusTransmitEmpty | (input_.empty() ? 0 : kLineStatusDataReady);
    case 6:
        if (modem_control_ & kModemControlLoop) {
            // Loopback: outputs RTS, DTR, OUT1, OUT2 appear as CTS, DSR, RI, DCD.
            return static_cast<uint8_t>(((modem_control_ & 0x02) << 3) | ((modem_control_ & 0x01) << 5) |
                                        ((modem_control_ & 0x04) << 4) | ((modem_control_ & 0x08) << 4));
        }
        return kModemStatusDefault;
    case 7: return scratch_;
    default: return 0xff;
    }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
    const bool dlab = line_control_ & kLineControlDlab;
    switch (offset) {
    case 0:
        if (dlab) {
            divisor_low_ = value;
        } else if (modem_control_ & kModemControlLoop) {
            if (input_.size() < kInputLimit) input_.push_back(value);
            transmit_interrupt_pending_ = true;
        } else {
            backend_->write(std::span(&value, 1));
            transmit_interrupt_pending_ = true;
        }
        break;
    case 1:
        if (dlab) {
            divisor_high_ = value;
        } else {
            // Enabling THRE interrupts with an empty transmitter raises one at once.
            if ((value & kInterruptEnableTransmit) && !(interrupt_enable_ & kInterruptEnableTransmit))
                transmit_interrupt_pending_ = true;
            interrupt_enable_ = value & 0x0f;
        }
        break;
    case 2:
        fifo_control_ = value;
        if (value & 0x02) input_.clear();
        break;
    case 3: line_control_ = value; break;
    case 4: modem_control_ = value & 0x1f; break;
    case 7: scratch_ = value; break;
    default: break;
    }
}

void Serial::update_interrupt() {
    const bool level = ((interrupt_enable_ & kInterruptEnableReceive) && !input_.empty()) ||
                       ((interrupt_enable_ & kInterruptEnableTransmit) && transmit_interrupt_pending_);
    if (level == irq_level_) return;
    irq_level_ = level;
    if (irq_line_) irq_line_(level);
}

}  // namespace atl::vmm
