// A hypervisor VM that records what device models ask of it, for unit tests
// of code that needs a Vm but no guest (MSI-X, the virtio PCI transport).
#pragma once

#include "hv/hypervisor.h"

#include <map>
#include <tuple>
#include <vector>

namespace atl::vmm::testing {

class FakeVm final : public hv::Vm {
public:
    struct Route {
        uint64_t address;
        uint32_t data;
        bool masked;
    };

    Result<void> map_memory(uint32_t, uint64_t, uint64_t, void*, bool) override { return {}; }
    Result<std::vector<uint64_t>> dirty_log(uint32_t, uint64_t) override { return std::vector<uint64_t>{}; }
    Result<std::unique_ptr<hv::Vcpu>> create_vcpu(unsigned) override { return make_error("fake VM has no vCPUs"); }
    Result<void> create_interrupt_controller() override { return {}; }
    Result<void> create_timer() override { return {}; }
    Result<void> set_irq_line(uint32_t gsi, bool level) override {
        irq_lines[gsi] = level;
        return {};
    }
    Result<void> signal_msi(uint64_t, uint32_t) override { return {}; }
    Result<uint32_t> allocate_msi_route() override { return next_gsi++; }
    Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data, bool masked) override {
        routes[gsi] = {address, data, masked};
        return {};
    }
    Result<void> attach_irqfd(int eventfd, uint32_t gsi) override {
        irqfds[gsi] = eventfd;
        return {};
    }
    Result<void> detach_irqfd(int, uint32_t gsi) override {
        irqfds.erase(gsi);
        return {};
    }
    Result<void> attach_ioeventfd(int eventfd, hv::IoSpace, uint64_t address, uint32_t) override {
        ioeventfds[address] = eventfd;
        return {};
    }
    Result<void> detach_ioeventfd(int, hv::IoSpace, uint64_t address, uint32_t) override {
        ioeventfds.erase(address);
        return {};
    }

    uint32_t next_gsi = 24;
    std::map<uint32_t, Route> routes;
    std::map<uint32_t, int> irqfds;
    std::map<uint64_t, int> ioeventfds;
    std::map<uint32_t, bool> irq_lines;
};

}  // namespace atl::vmm::testing
