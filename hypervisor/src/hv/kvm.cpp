// KVM implementation of the hypervisor abstraction (Documentation/virt/kvm/api.rst).
#include "hv/hypervisor.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

namespace atl::vmm::hv {
namespace {

// The kernel headers declare kvm_cpuid2, kvm_msrs and kvm_irq_routing with
// __DECLARE_FLEX_ARRAY, which g++ 12 in C++ mode sizes wrongly (an empty struct
// member takes a byte), so both the ioctl numbers and the entry offsets would be
// wrong. These headers are the kernel's layout: 8 bytes, then the entries.
struct FlexHeader {
    uint32_t count;
    uint32_t padding_or_flags;
};
static_assert(sizeof(FlexHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, FlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, FlexHeader);
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, FlexHeader);

// A header followed by `count` entries, laid out as the kernel expects.
template <class Entry>
class FlexArray {
public:
    explicit FlexArray(size_t count) : storage_(sizeof(FlexHeader) + count * sizeof(Entry)) {
        header()->count = static_cast<uint32_t>(count);
    }
    FlexHeader* header() { return reinterpret_cast<FlexHeader*>(storage_.data()); }
    Entry* entries() { return reinterpret_cast<Entry*>(storage_.data() + sizeof(FlexHeader)); }
    void* data() { return storage_.data(); }

private:
    std::vector<uint8_t> storage_;
};

Error errno_error(const std::string& what) { return make_error(what + ": " + strerror(errno)); }

int ioctl_retry(int fd, unsigned long request, auto argument) {
    int result;
    do {
        result = ioctl(fd, request, argument);
    } while (result < 0 && errno == EINTR);
    return result;
}

class FileDescriptor {
public:
    explicit FileDescriptor(int fd = -1) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) close(fd_);
    }
    FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    FileDescriptor(const FileDescriptor&) = delete;
    int get() const { return fd_; }
    int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_;
};

kvm_segment to_kvm(const Segment& s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.avl = s.avl;
    k.unusable = s.unusable;
    return k;
}

Segment from_kvm(const kvm_segment& k) {
    Segment s;
    s.base = k.base;
    s.limit = k.limit;
    s.selector = k.selector;
    s.type = k.type;
    s.present = k.present;
    s.dpl = k.dpl;
    s.db = k.db;
    s.s = k.s;
    s.l = k.l;
    s.g = k.g;
    s.avl = k.avl;
    s.unusable = k.unusable;
    return s;
}

class KvmVcpu final : public Vcpu {
public:
    KvmVcpu(unsigned index, int fd, kvm_run* run, size_t run_size)
        : index_(index), fd_(fd), run_(run), run_size_(run_size) {}
    ~KvmVcpu() override { munmap(run_, run_size_); }

    unsigned index() const override { return index_; }

    Result<VcpuExit> run() override {
        if (ioctl(fd_.get(), KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                run_->immediate_exit = 0;
                VcpuExit exit;
                exit.kind = VcpuExit::Kind::Interrupted;
                return exit;
            }
            return errno_error("KVM_RUN");
        }
        VcpuExit exit;
        switch (run_->exit_reason) {
        case KVM_EXIT_IO:
            exit.kind = VcpuExit::Kind::PortIo;
            exit.address = run_->io.port;
            exit.size = run_->io.size;
            exit.is_write = run_->io.direction == KVM_EXIT_IO_OUT;
            // String I/O (rep ins/outs) delivers count > 1; we handle one element
            // at a time by exposing the first and letting the caller loop.
            exit.count = run_->io.count;
            exit.data = reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
            break;
        case KVM_EXIT_MMIO:
            exit.kind = VcpuExit::Kind::Mmio;
            exit.address = run_->mmio.phys_addr;
            exit.size = run_->mmio.len;
            exit.is_write = run_->mmio.is_write;
            exit.data = run_->mmio.data;
            break;
        case KVM_EXIT_HLT:
            exit.kind = VcpuExit::Kind::Halt;
            break;
        case KVM_EXIT_SHUTDOWN:
            exit.kind = VcpuExit::Kind::Shutdown;
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run_->system_event.type == KVM_SYSTEM_EVENT_RESET) exit.kind = VcpuExit::Kind::SystemReset;
            else if (run_->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) exit.kind = VcpuExit::Kind::SystemShutdown;
            else exit.kind = VcpuExit::Kind::Other;
            exit.reason = run_->system_event.type;
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            exit.kind = VcpuExit::Kind::InternalError;
            exit.reason = run_->internal.suberror;
            break;
        case KVM_EXIT_FAIL_ENTRY:
            exit.kind = VcpuExit::Kind::FailEntry;
            exit.reason = run_->fail_entry.hardware_entry_failure_reason;
            break;
        case KVM_EXIT_INTR:
            exit.kind = VcpuExit::Kind::Interrupted;
            break;
        default:
            exit.kind = VcpuExit::Kind::Other;
            exit.reason = run_->exit_reason;
            break;
        }
        return exit;
    }

    void request_exit() override { __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST); }
    void clear_exit_request() override { __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST); }

    Result<Registers> registers() override {
        kvm_regs k{};
        if (ioctl(fd_.get(), KVM_GET_REGS, &k) < 0) return errno_error("KVM_GET_REGS");
        Registers r{k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8, k.r9,
                    k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
        return r;
    }

    Result<void> set_registers(const Registers& r) override {
        kvm_regs k{r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9,
                   r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags};
        if (ioctl(fd_.get(), KVM_SET_REGS, &k) < 0) return errno_error("KVM_SET_REGS");
        return {};
    }

    Result<SpecialRegisters> special_registers() override {
        kvm_sregs k{};
        if (ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) return errno_error("KVM_GET_SREGS");
        SpecialRegisters s;
        s.cs = from_kvm(k.cs);
        s.ds = from_kvm(k.ds);
        s.es = from_kvm(k.es);
        s.fs = from_kvm(k.fs);
        s.gs = from_kvm(k.gs);
        s.ss = from_kvm(k.ss);
        s.tr = from_kvm(k.tr);
        s.ldt = from_kvm(k.ldt);
        s.gdt = {k.gdt.base, k.gdt.limit};
        s.idt = {k.idt.base, k.idt.limit};
        s.cr0 = k.cr0;
        s.cr2 = k.cr2;
        s.cr3 = k.cr3;
        s.cr4 = k.cr4;
        s.cr8 = k.cr8;
        s.efer = k.efer;
        s.apic_base = k.apic_base;
        return s;
    }

    Result<void> set_special_registers(const SpecialRegisters& s) override {
        // Start from the current state so fields we do not model (the pending
        // interrupt bitmap) keep their values.
        kvm_sregs k{};
        if (ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) return errno_error("KVM_GET_SREGS");
        k.cs = to_kvm(s.cs);
        k.ds = to_kvm(s.ds);
        k.es = to_kvm(s.es);
        k.fs = to_kvm(s.fs);
        k.gs = to_kvm(s.gs);
        k.ss = to_kvm(s.ss);
        k.tr = to_kvm(s.tr);
        k.ldt = to_kvm(s.ldt);
        k.gdt.base = s.gdt.base;
        k.gdt.limit = s.gdt.limit;
        k.idt.base = s.idt.base;
        k.idt.limit = s.idt.limit;
        k.cr0 = s.cr0;
        k.cr2 = s.cr2;
        k.cr3 = s.cr3;
        k.cr4 = s.cr4;
        k.cr8 = s.cr8;
        k.efer = s.efer;
        k.apic_base = s.apic_base;
        if (ioctl(fd_.get(), KVM_SET_SREGS, &k) < 0) return errno_error("KVM_SET_SREGS");
        return {};
    }

    Result<void> set_cpuid(std::span<const CpuidEntry> entries) override {
        FlexArray<kvm_cpuid_entry2> cpuid(entries.size());
        for (size_t i = 0; i < entries.size(); ++i) {
            auto& k = cpuid.entries()[i];
            k = {};
            k.function = entries[i].function;
            k.index = entries[i].index;
            k.flags = entries[i].flags;
            k.eax = entries[i].eax;
            k.ebx = entries[i].ebx;
            k.ecx = entries[i].ecx;
            k.edx = entries[i].edx;
        }
        if (ioctl(fd_.get(), kSetCpuid2, cpuid.data()) < 0) return errno_error("KVM_SET_CPUID2");
        return {};
    }

    Result<void> set_msrs(std::span<const MsrEntry> entries) override {
        FlexArray<kvm_msr_entry> msrs(entries.size());
        for (size_t i = 0; i < entries.size(); ++i) {
            msrs.entries()[i] = {};
            msrs.entries()[i].index = entries[i].index;
            msrs.entries()[i].data = entries[i].data;
        }
        const int set = ioctl(fd_.get(), kSetMsrs, msrs.data());
        if (set < 0) return errno_error("KVM_SET_MSRS");
        if (static_cast<size_t>(set) != entries.size())
            return make_error("KVM_SET_MSRS: MSR " + std::to_string(entries[set].index) + " was refused");
        return {};
    }

    Result<void> reset_fpu() override {
        kvm_fpu fpu{};
        fpu.fcw = 0x37f;
        fpu.mxcsr = 0x1f80;
        if (ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0) return errno_error("KVM_SET_FPU");
        return {};
    }

    Result<void> configure_local_apic_lints() override {
        kvm_lapic_state lapic{};
        if (ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) return errno_error("KVM_GET_LAPIC");
        // LVT LINT0 at 0x350, LINT1 at 0x360; delivery mode in bits 8-10 (SDM vol. 3, 11.5.1).
        auto set_delivery = [&](size_t offset, uint32_t mode) {
            uint32_t value;
            std::memcpy(&value, lapic.regs + offset, 4);
            value = (value & ~0x700u) | (mode << 8);
            std::memcpy(lapic.regs + offset, &value, 4);
        };
        set_delivery(0x350, 0x7);  // ExtINT
        set_delivery(0x360, 0x4);  // NMI
        if (ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) return errno_error("KVM_SET_LAPIC");
        return {};
    }

private:
    unsigned index_;
    FileDescriptor fd_;
    kvm_run* run_;
    size_t run_size_;
};

class KvmVm final : public Vm {
public:
    KvmVm(int kvm_fd, int vm_fd) : kvm_fd_(kvm_fd), fd_(vm_fd) {}

    Result<void> map_memory(uint32_t slot, uint64_t guest_address, uint64_t size_bytes, void* host,
                            bool track_dirty) override {
        kvm_userspace_memory_region region{};
        region.slot = slot;
        region.flags = track_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
        region.guest_phys_addr = guest_address;
        region.memory_size = size_bytes;
        region.userspace_addr = reinterpret_cast<uint64_t>(host);
        if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
            return errno_error("KVM_SET_USER_MEMORY_REGION");
        return {};
    }

    Result<std::vector<uint64_t>> dirty_log(uint32_t slot, uint64_t size_bytes) override {
        const uint64_t pages = (size_bytes + 4095) / 4096;
        std::vector<uint64_t> bitmap((pages + 63) / 64);
        kvm_dirty_log log{};
        log.slot = slot;
        log.dirty_bitmap = bitmap.data();
        if (ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) return errno_error("KVM_GET_DIRTY_LOG");
        return bitmap;
    }

    Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) override {
        const int vcpu_fd = ioctl(fd_.get(), KVM_CREATE_VCPU, index);
        if (vcpu_fd < 0) return errno_error("KVM_CREATE_VCPU " + std::to_string(index));
        const int run_size = ioctl(kvm_fd_, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (run_size < 0) {
            close(vcpu_fd);
            return errno_error("KVM_GET_VCPU_MMAP_SIZE");
        }
        void* run = mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
        if (run == MAP_FAILED) {
            close(vcpu_fd);
            return errno_error("mmap kvm_run");
        }
        return std::unique_ptr<Vcpu>(new KvmVcpu(index, vcpu_fd, static_cast<kvm_run*>(run), run_size));
    }

    Result<void> create_interrupt_controller() override {
        // The TSS and identity map must sit in guest-physical space that is not
        // RAM and not MMIO: just below the IOAPIC, inside our 32-bit hole.
        if (ioctl(fd_.get(), KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) return errno_error("KVM_SET_TSS_ADDR");
        uint64_t identity_map = 0xfffbc000ul;
        if (ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
            return errno_error("KVM_SET_IDENTITY_MAP_ADDR");
        if (ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return errno_error("KVM_CREATE_IRQCHIP");
        // The MADT says ISA IRQ 0 (the PIT) arrives on IOAPIC pin 2, as on PC
        // chipsets, but KVM's default routes send GSI 0 to pin 0. Our table: GSI
        // 0-15 to the PICs (except the cascade, 2), and GSI N to IOAPIC pin N
        // except GSI 0, which goes to pin 2 (pin 2 has no other source).
        for (uint32_t gsi = 0; gsi < 24; ++gsi) {
            kvm_irq_routing_entry entry{};
            entry.gsi = gsi;
            entry.type = KVM_IRQ_ROUTING_IRQCHIP;
            if (gsi < 16 && gsi != 2) {
                entry.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
                entry.u.irqchip.pin = gsi % 8;
                routes_.push_back(entry);
            }
            if (gsi == 2) continue;
            entry.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
            entry.u.irqchip.pin = gsi == 0 ? 2 : gsi;
            routes_.push_back(entry);
        }
        ATOLL_TRY(commit_routes());
        next_gsi_ = 24;
        return {};
    }

    Result<void> create_timer() override {
        kvm_pit_config pit{};
        pit.flags = KVM_PIT_SPEAKER_DUMMY;
        if (ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) < 0) return errno_error("KVM_CREATE_PIT2");
        return {};
    }

    Result<void> set_irq_line(uint32_t gsi, bool level) override {
        kvm_irq_level irq{};
        irq.irq = gsi;
        irq.level = level ? 1 : 0;
        if (ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) return errno_error("KVM_IRQ_LINE");
        return {};
    }

    Result<void> signal_msi(uint64_t address, uint32_t data) override {
        kvm_msi msi{};
        msi.address_lo = static_cast<uint32_t>(address);
        msi.address_hi = static_cast<uint32_t>(address >> 32);
        msi.data = data;
        if (ioctl_retry(fd_.get(), KVM_SIGNAL_MSI, &msi) < 0) return errno_error("KVM_SIGNAL_MSI");
        return {};
    }

    Result<uint32_t> allocate_msi_route() override {
        std::lock_guard lock(routes_mutex_);
        return next_gsi_++;
    }

    Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data, bool masked) override {
        std::lock_guard lock(routes_mutex_);
        std::erase_if(routes_, [gsi](const kvm_irq_routing_entry& e) { return e.gsi == gsi; });
        if (!masked) {
            kvm_irq_routing_entry entry{};
            entry.gsi = gsi;
            entry.type = KVM_IRQ_ROUTING_MSI;
            entry.u.msi.address_lo = static_cast<uint32_t>(address);
            entry.u.msi.address_hi = static_cast<uint32_t>(address >> 32);
            entry.u.msi.data = data;
            routes_.push_back(entry);
        }
        return commit_routes();
    }

    Result<void> attach_irqfd(int eventfd, uint32_t gsi) override {
        kvm_irqfd irqfd{};
        irqfd.fd = static_cast<uint32_t>(eventfd);
        irqfd.gsi = gsi;
        if (ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) return errno_error("KVM_IRQFD");
        return {};
    }

    Result<void> detach_irqfd(int eventfd, uint32_t gsi) override {
        kvm_irqfd irqfd{};
        irqfd.fd = static_cast<uint32_t>(eventfd);
        irqfd.gsi = gsi;
        irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
        if (ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) return errno_error("KVM_IRQFD deassign");
        return {};
    }

    Result<void> attach_ioeventfd(int eventfd, IoSpace space, uint64_t address, uint32_t size_bytes) override {
        kvm_ioeventfd io{};
        io.addr = address;
        io.len = size_bytes;
        io.fd = eventfd;
        io.flags = space == IoSpace::Port ? KVM_IOEVENTFD_FLAG_PIO : 0;
        if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) return errno_error("KVM_IOEVENTFD");
        return {};
    }

    Result<void> detach_ioeventfd(int eventfd, IoSpace space, uint64_t address, uint32_t size_bytes) override {
        kvm_ioeventfd io{};
        io.addr = address;
        io.len = size_bytes;
        io.fd = eventfd;
        io.flags = KVM_IOEVENTFD_FLAG_DEASSIGN | (space == IoSpace::Port ? KVM_IOEVENTFD_FLAG_PIO : 0);
        if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) return errno_error("KVM_IOEVENTFD deassign");
        return {};
    }

private:
    Result<void> commit_routes() {
        FlexArray<kvm_irq_routing_entry> routing(routes_.size());
        routing.header()->padding_or_flags = 0;
        std::memcpy(routing.entries(), routes_.data(), routes_.size() * sizeof(kvm_irq_routing_entry));
        if (ioctl(fd_.get(), kSetGsiRouting, routing.data()) < 0) return errno_error("KVM_SET_GSI_ROUTING");
        return {};
    }

    int kvm_fd_;
    FileDescriptor fd_;
    std::mutex routes_mutex_;
    std::vector<kvm_irq_routing_entry> routes_;
    uint32_t next_gsi_ = 24;
};

class Kvm final : public Hypervisor {
public:
    Kvm(int fd, unsigned max_vcpus) : fd_(fd), max_vcpus_(max_vcpus) {}

    Result<std::unique_ptr<Vm>> create_vm() override {
        int vm_fd;
        do {
            vm_fd = ioctl(fd_.get(), KVM_CREATE_VM, 0);
        } while (vm_fd < 0 && errno == EINTR);
        if (vm_fd < 0) return errno_error("KVM_CREATE_VM");
        return std::unique_ptr<Vm>(new KvmVm(fd_.get(), vm_fd));
    }

    unsigned max_vcpus() const override { return max_vcpus_; }

    Result<std::vector<CpuidEntry>> supported_cpuid() override {
        for (uint32_t count = 128; count <= 4096; count *= 2) {
            FlexArray<kvm_cpuid_entry2> cpuid(count);
            if (ioctl(fd_.get(), kGetSupportedCpuid, cpuid.data()) < 0) {
                if (errno == E2BIG) continue;
                return errno_error("KVM_GET_SUPPORTED_CPUID");
            }
            std::vector<CpuidEntry> entries;
            for (uint32_t i = 0; i < cpuid.header()->count; ++i) {
                const auto& k = cpuid.entries()[i];
                entries.push_back({k.function, k.index, k.flags, k.eax, k.ebx, k.ecx, k.edx});
            }
            return entries;
        }
        return make_error("KVM_GET_SUPPORTED_CPUID: too many entries");
    }

private:
    FileDescriptor fd_;
    unsigned max_vcpus_;
};

}  // namespace

Result<std::unique_ptr<Hypervisor>> open_kvm(const char* device_path) {
    const int fd = open(device_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return make_error(std::string(device_path) + ": not found (is the kvm module loaded and virtualization enabled in the firmware?)");
        if (errno == EACCES)
            return make_error(std::string(device_path) + ": permission denied (add your user to the kvm group)");
        return errno_error(device_path);
    }
    FileDescriptor guard(fd);
    const int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return make_error(std::string(device_path) + ": unusable (KVM API version " + std::to_string(version) + ", need 12)");
    // What the VMM relies on; all present since Linux 4.x.
    const struct {
        int capability;
        const char* name;
    } required[] = {
        {KVM_CAP_IRQCHIP, "in-kernel irqchip"},     {KVM_CAP_USER_MEMORY, "user memory"},
        {KVM_CAP_IRQFD, "irqfd"},                   {KVM_CAP_IOEVENTFD, "ioeventfd"},
        {KVM_CAP_SIGNAL_MSI, "MSI injection"},      {KVM_CAP_IRQ_ROUTING, "IRQ routing"},
        {KVM_CAP_PIT2, "in-kernel PIT"},            {KVM_CAP_EXT_CPUID, "extended CPUID"},
        {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"}, {KVM_CAP_SET_TSS_ADDR, "TSS address"},
    };
    for (const auto& cap : required) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, cap.capability) <= 0)
            return make_error(std::string(device_path) + ": unusable (KVM lacks " + cap.name + ")");
    }
    int max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0) max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max_vcpus <= 0) max_vcpus = 4;
    return std::unique_ptr<Hypervisor>(new Kvm(guard.release(), static_cast<unsigned>(max_vcpus)));
}

}  // namespace atl::vmm::hv
