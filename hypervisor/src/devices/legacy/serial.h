// A 16550A UART (the PC's COM1): early boot messages and the serial console.
#pragma once

#include "devices/bus.h"
#include "devices/char_backend.h"

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace atl::vmm {

class Serial final : public BusDevice {
public:
    using IrqLine = std::function<void(bool level)>;
    Serial(std::shared_ptr<CharBackend> backend, IrqLine irq_line);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Bytes from the host for the guest (the back-end's input handler).
    void receive(std::span<const uint8_t> bytes);

    static constexpr size_t kInputLimit = 64 * 1024;

private:
    uint8_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint8_t value);
    void update_interrupt();

    std::shared_ptr<CharBackend> backend_;
    IrqLine irq_line_;
    std::mutex mutex_;
    std::deque<uint8_t> input_;
    uint8_t interrupt_enable_ = 0;
    uint8_t line_control_ = 0x03;
    uint8_t modem_control_ = 0x08;
    uint8_t scratch_ = 0;
    uint8_t divisor_low_ = 0x0c;
    uint8_t divisor_high_ = 0;
    uint8_t fifo_control_ = 0;
    bool transmit_interrupt_pending_ = false;
    bool irq_level_ = false;
};

}  // namespace atl::vmm
