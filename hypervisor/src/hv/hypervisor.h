// The hypervisor abstraction: what the VMM needs from the CPU's virtualization
// extensions. KVM implements it (hv/kvm.cpp); device models never see ioctls.
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace atl::vmm::hv {

// x86 register state in our own types, so callers need no <linux/kvm.h>.
struct Registers {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0, avl = 0;
    uint8_t unusable = 0;
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

struct SpecialRegisters {
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
    uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0, apic_base = 0;
};

struct CpuidEntry {
    uint32_t function = 0, index = 0, flags = 0;
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

struct MsrEntry {
    uint32_t index = 0;
    uint64_t data = 0;
};

// Why a vCPU stopped running guest code.
struct VcpuExit {
    enum class Kind {
        PortIo,          // port, size, is_write, data
        Mmio,            // address, size, is_write, data
        Halt,
        Shutdown,        // triple fault
        SystemReset,     // guest asked for a reset (e.g. through ACPI)
        SystemShutdown,  // guest asked to power off
        InternalError,   // the hypervisor could not emulate an instruction
        FailEntry,       // the hardware refused the vCPU state
        Interrupted,     // a signal kicked the vCPU out (see Vcpu::kick)
        Other,
    };
    Kind kind = Kind::Other;
    uint64_t address = 0;  // port number or guest physical address
    uint32_t size = 0;
    bool is_write = false;
    // For writes: the guest's bytes. For reads: the device fills these in and
    // they reach the guest on the next run().
    uint8_t* data = nullptr;
    // String port I/O (rep ins/outs): `count` elements of `size` bytes back to back in `data`.
    uint32_t count = 1;
    uint64_t reason = 0;  // raw code for InternalError/FailEntry/Other
};

class Vcpu {
public:
    virtual ~Vcpu() = default;
    virtual unsigned index() const = 0;

    // Runs guest code until something needs the VMM.
    virtual Result<VcpuExit> run() = 0;
    // Makes a concurrent or the next run() return Interrupted. Signal-safe.
    virtual void request_exit() = 0;
    virtual void clear_exit_request() = 0;

    virtual Result<Registers> registers() = 0;
    virtual Result<void> set_registers(const Registers&) = 0;
    virtual Result<SpecialRegisters> special_registers() = 0;
    virtual Result<void> set_special_registers(const SpecialRegisters&) = 0;
    virtual Result<void> set_cpuid(std::span<const CpuidEntry>) = 0;
    virtual Result<void> set_msrs(std::span<const MsrEntry>) = 0;
    // FPU to its power-on state (FCW 0x37f, MXCSR 0x1f80).
    virtual Result<void> reset_fpu() = 0;
    // LINT0 as ExtINT and LINT1 as NMI, as firmware leaves them for Linux.
    virtual Result<void> configure_local_apic_lints() = 0;
};

enum class IoSpace { Port, Memory };

class Vm {
public:
    virtual ~Vm() = default;

    // Maps host memory at a guest physical address. `track_dirty` enables the
    // dirty log for this slot (for live migration).
    virtual Result<void> map_memory(uint32_t slot, uint64_t guest_address, uint64_t size_bytes,
                                    void* host, bool track_dirty) = 0;
    // One bit per 4 KiB page of the slot, cleared as it is read.
    virtual Result<std::vector<uint64_t>> dirty_log(uint32_t slot, uint64_t size_bytes) = 0;

    virtual Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) = 0;

    // In-kernel interrupt controllers (PIC, IOAPIC, LAPICs) and PIT.
    virtual Result<void> create_interrupt_controller() = 0;
    virtual Result<void> create_timer() = 0;

    virtual Result<void> set_irq_line(uint32_t gsi, bool level) = 0;
    virtual Result<void> signal_msi(uint64_t address, uint32_t data) = 0;

    // Interrupt routes for MSI through eventfds: the kernel injects the MSI
    // when the eventfd is written, without a trip to user space.
    virtual Result<uint32_t> allocate_msi_route() = 0;
    virtual Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data, bool masked) = 0;
    virtual Result<void> attach_irqfd(int eventfd, uint32_t gsi) = 0;
    virtual Result<void> detach_irqfd(int eventfd, uint32_t gsi) = 0;

    // Guest writes to `address` signal the eventfd instead of exiting to user space.
    virtual Result<void> attach_ioeventfd(int eventfd, IoSpace space, uint64_t address,
                                          uint32_t size_bytes) = 0;
    virtual Result<void> detach_ioeventfd(int eventfd, IoSpace space, uint64_t address,
                                          uint32_t size_bytes) = 0;
};

class Hypervisor {
public:
    virtual ~Hypervisor() = default;
    virtual Result<std::unique_ptr<Vm>> create_vm() = 0;
    virtual unsigned max_vcpus() const = 0;
    virtual Result<std::vector<CpuidEntry>> supported_cpuid() = 0;
};

// Opens /dev/kvm (or `device_path`) and checks the API version and the
// capabilities Atoll depends on.
Result<std::unique_ptr<Hypervisor>> open_kvm(const char* device_path = "/dev/kvm");

}  // namespace atl::vmm::hv
