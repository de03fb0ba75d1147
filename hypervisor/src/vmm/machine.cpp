#include "vmm/machine.h"

#include "arch/x86/acpi.h"
#include "arch/x86/boot_cpu.h"
#include "arch/x86/bzimage.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "devices/audio_backend.h"
#include "devices/char_backend.h"
#include "devices/display_link.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/reset_port.h"
#include "devices/legacy/serial.h"
#include "devices/net_backend.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/entropy.h"
#include "devices/virtio/gpu.h"
#include "devices/virtio/input.h"
#include "devices/virtio/net.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/sound.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <fstream>

namespace atl::vmm {
namespace {

// vCPU threads are kicked out of KVM_RUN with this signal; its handler does nothing.
constexpr int kKickSignal = SIGUSR1;

void install_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_handler = [](int) {};
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
        sigaction(kKickSignal, &action, nullptr);
    });
}

// What the host can give: available memory plus free swap.
uint64_t host_available_mib() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t value = 0, available_kib = 0, swap_kib = 0;
    std::string unit;
    while (meminfo >> key >> value) {
        std::getline(meminfo, unit);
        if (key == "MemAvailable:") available_kib = value;
        if (key == "SwapFree:") swap_kib = value;
    }
    return (available_kib + swap_kib) / 1024;
}

// A locally administered address that stays the same for the same VM, unless configured.
virtio::MacAddress mac_for(const std::string& vm_name, size_t index, const std::string& configured) {
    if (!configured.empty()) {
        if (auto parsed = virtio::parse_mac_address(configured)) return *parsed;
    }
    const size_t hash = std::hash<std::string>{}(vm_name) + index;
    virtio::MacAddress mac;
    mac.bytes = {0x52, 0x54, 0xa7, static_cast<uint8_t>(hash >> 16), static_cast<uint8_t>(hash >> 8),
                 static_cast<uint8_t>(hash)};
    return mac;
}

Result<std::shared_ptr<CharBackend>> make_char_backend(EventLoop& loop, const ConsoleConfig& console) {
    switch (console.mode) {
    case ConsoleConfig::Mode::Stdio: return make_stdio_char_backend(loop);
    case ConsoleConfig::Mode::Socket: return make_socket_char_backend(loop, console.socket_path);
    case ConsoleConfig::Mode::None: return make_null_char_backend();
    }
    return make_null_char_backend();
}

}  // namespace

Result<Consoles> open_consoles(const VmConfig& config, EventLoop& loop) {
    Consoles consoles;
    auto serial = make_char_backend(loop, config.serial);
    if (!serial) return make_error("serial console: " + serial.error().message);
    consoles.serial = std::move(*serial);
    if (config.virtio_console.mode != ConsoleConfig::Mode::None) {
        auto console = make_char_backend(loop, config.virtio_console);
        if (!console) return make_error("virtio console: " + console.error().message);
        consoles.virtio_console = std::move(*console);
    }
    return consoles;
}

std::shared_ptr<DisplayConnection> make_display_connection(const VmConfig& config) {
    if (!config.display.enabled()) return nullptr;
    DisplayConnection::Options options;
    options.socket_path = config.display.socket;
    options.vm_name = config.name;
    options.scanouts = config.display.scanouts;
    return std::make_shared<DisplayConnection>(options);
}

Result<std::unique_ptr<Machine>> Machine::build(const VmConfig& config, hv::Hypervisor& hypervisor,
                                                const Consoles& consoles, std::shared_ptr<AudioBackend> audio,
                                                std::shared_ptr<DisplayConnection> display) {
    ATOLL_TRY(validate_vm_config(config));
    if (config.vcpus > hypervisor.max_vcpus())
        return make_error(fmt::format("vcpus: {} is more than KVM allows on this host ({})", config.vcpus,
                                      hypervisor.max_vcpus()));
    const uint64_t available = host_available_mib();
    if (available && config.memory_mib > available)
        return make_error(fmt::format("memory_mib: {} MiB is more than the host can give ({} MiB available)",
                                      config.memory_mib, available));
    std::unique_ptr<Machine> machine(new Machine(config));
    ATOLL_TRY(machine->create_platform(hypervisor));
    ATOLL_TRY(machine->load_guest());
    ATOLL_TRY(machine->create_devices(consoles, std::move(audio), std::move(display)));
    return machine;
}

Machine::Machine(const VmConfig& config) : config_(config) {}

Machine::~Machine() {
    request_stop(StopReason::PowerOff);
    for (auto& thread : vcpu_threads_)
        if (thread.joinable()) thread.join();
    if (io_thread_.joinable()) {
        loop_.stop();
        io_thread_.join();
    }
}

Result<void> Machine::create_platform(hv::Hypervisor& hypervisor) {
    auto vm = hypervisor.create_vm();
    if (!vm) return vm.error();
    vm_ = std::move(*vm);

    const auto regions = x86::guest_ram_regions(config_.memory_mib << 20);
    auto memory = GuestMemory::create(regions);
    if (!memory) return make_error("guest RAM: " + memory.error().message);
    memory_ = std::move(*memory);
    uint32_t slot = 0;
    for (const auto& region : memory_->regions())
        ATOLL_TRY(vm_->map_memory(slot++, region.guest_base, region.size_bytes, region.host, false));

    ATOLL_TRY(vm_->create_interrupt_controller());
    ATOLL_TRY(vm_->create_timer());

    auto supported = hypervisor.supported_cpuid();
    if (!supported) return supported.error();
    for (unsigned index = 0; index < config_.vcpus; ++index) {
        auto vcpu = vm_->create_vcpu(index);
        if (!vcpu) return vcpu.error();
        ATOLL_TRY((*vcpu)->set_cpuid(x86::build_cpuid(*supported, index, config_.vcpus)));
        vcpus_.push_back(std::move(*vcpu));
    }
    return {};
}

Result<void> Machine::load_guest() {
    x86::AcpiSpec acpi;
    acpi.vcpu_count = config_.vcpus;
    acpi.ram_bytes = config_.memory_mib << 20;
    auto rsdp = x86::write_acpi_tables(*memory_, acpi);
    if (!rsdp) return rsdp.error();

    x86::LinuxBootSpec spec;
    spec.kernel_path = config_.kernel;
    if (!config_.initrd.empty()) spec.initrd_path = config_.initrd;
    spec.cmdline = config_.cmdline;
    spec.acpi_rsdp_address = *rsdp;
    auto boot = x86::load_linux(*memory_, spec);
    if (!boot) return boot.error();

    for (auto& vcpu : vcpus_) ATOLL_TRY(x86::setup_boot_vcpu(*vcpu, *memory_, *boot));
    return {};
}

Result<void> Machine::create_devices(const Consoles& consoles, std::shared_ptr<AudioBackend> audio,
                                     std::shared_ptr<DisplayConnection> display) {
    // Legacy platform devices.
    auto serial_view = make_boot_view(consoles.serial, loop_);
    auto serial = std::make_shared<Serial>(serial_view, [vm = vm_.get()](bool level) {
        (void)vm->set_irq_line(x86::kCom1Irq, level);
    });
    serial_view->set_input_handler([weak = std::weak_ptr<Serial>(serial)](std::span<const uint8_t> bytes) {
        if (auto serial = weak.lock()) serial->receive(bytes);
    });
    keep_alive_.push_back(serial_view);
    ATOLL_TRY(port_bus_.insert(x86::kCom1Port, x86::kCom1PortCount, serial));

    power_management_ = std::make_shared<AcpiPmDevice>([this] { request_stop(StopReason::PowerOff); },
                                                [vm = vm_.get()](bool level) { (void)vm->set_irq_line(x86::kSciIrq, level); });
    ATOLL_TRY(port_bus_.insert(x86::kAcpiPmPortBase, x86::kAcpiPmPortCount, power_management_));
    auto reset = std::make_shared<ResetControlPort>([this] { request_stop(StopReason::Reset); });
    auto keyboard = std::make_shared<I8042ResetStub>([this] { request_stop(StopReason::Reset); });
    ATOLL_TRY(port_bus_.insert(x86::kI8042CommandPort, 1, keyboard));

    // PCI.
    pci_root_ = std::make_shared<pci::PciRoot>(mmio_bus_, x86::kPciMmio32Start, x86::kPciMmio32SizeBytes);
    ATOLL_TRY(port_bus_.insert(x86::kPciConfigPortBase, x86::kPciConfigPortCount, combine_pci_config_and_reset(pci_root_->port_access(), reset)));
    ATOLL_TRY(mmio_bus_.insert(x86::kPcieEcamStart, x86::kPcieEcamBytesPerBus * (x86::kPciLastBus + 1),
                               pci_root_->ecam_access()));

    auto plug = [&](std::unique_ptr<virtio::Device> device) -> Result<void> {
        auto transport = virtio::PciTransport::create(std::move(device), *vm_, loop_, memory_);
        if (!transport) return transport.error();
        auto slot = pci_root_->add_device(*transport);
        if (!slot) return slot.error();
        return {};
    };

    for (size_t index = 0; index < config_.disks.size(); ++index) {
        const auto& disk = config_.disks[index];
        const std::string serial_id = disk.serial.empty() ? fmt::format("atoll-disk{}", index) : disk.serial;
        auto block = virtio::BlockDevice::open(disk.path, disk.read_only, serial_id);
        if (!block) return block.error();
        ATOLL_TRY(plug(std::move(*block)));
    }
    for (size_t index = 0; index < config_.nets.size(); ++index) {
        const auto& net = config_.nets[index];
        Result<std::shared_ptr<NetBackend>> backend = make_error("unreachable");
        if (net.mode == NetConfig::Mode::Tap) {
            backend = make_tap_backend(loop_, net.tap_name);
        } else {
            SlirpOptions options;
            options.host_forwards = net.host_forwards;
            backend = make_slirp_backend(loop_, options);
        }
        if (!backend) return make_error(fmt::format("nets[{}]: {}", index, backend.error().message));
        virtio::NetDeviceConfig device_config;
        device_config.id = fmt::format("net{}", index);
        device_config.mac = mac_for(config_.name, index, net.mac);
        ATOLL_TRY(plug(std::make_unique<virtio::NetDevice>(device_config, *backend)));
    }
    if (consoles.virtio_console)
        ATOLL_TRY(plug(std::make_unique<virtio::ConsoleDevice>(make_boot_view(consoles.virtio_console, loop_))));
    if (config_.entropy) ATOLL_TRY(plug(std::make_unique<virtio::EntropyDevice>()));
    if (audio) {
        virtio::SoundDevice::Config sound_config;
        sound_config.vm_name = config_.name;
        ATOLL_TRY(plug(std::make_unique<virtio::SoundDevice>(std::move(audio), sound_config)));
    }
    if (config_.display.enabled()) {
        // The devices live in their transports (owned by the PCI root); the
        // link keeps plain pointers and is destroyed first.
        virtio::GpuDeviceConfig gpu_config;
        gpu_config.scanouts = config_.display.scanouts;
        gpu_config.width = config_.display.width;
        gpu_config.height = config_.display.height;
        auto gpu = std::make_unique<virtio::GpuDevice>(gpu_config);
        auto keyboard = std::make_unique<virtio::InputDevice>(virtio::InputDevice::Kind::Keyboard);
        auto tablet = std::make_unique<virtio::InputDevice>(virtio::InputDevice::Kind::Tablet);
        auto mouse = std::make_unique<virtio::InputDevice>(virtio::InputDevice::Kind::Mouse);
        const DisplayLink::Devices devices{gpu.get(), keyboard.get(), tablet.get(), mouse.get()};
        ATOLL_TRY(plug(std::move(gpu)));
        ATOLL_TRY(plug(std::move(keyboard)));
        ATOLL_TRY(plug(std::move(tablet)));
        ATOLL_TRY(plug(std::move(mouse)));
        if (!display) display = make_display_connection(config_);  // a machine on its own (tests)
        display_link_ = std::make_unique<DisplayLink>(loop_, std::move(display), devices);
        // Connects (or takes over the previous boot's connection) once the I/O
        // thread runs; a missing server only delays the picture.
        loop_.post([link = display_link_.get()] { link->start(); });
    }
    return {};
}

void Machine::request_stop(StopReason reason, std::string message) {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_reason_.load() != StopReason::None) return;
        stop_message_ = std::move(message);
        stop_reason_ = reason;
    }
    {
        std::lock_guard lock(pause_mutex_);
        pause_changed_.notify_all();
    }
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        vcpus_[i]->request_exit();
        if (i < vcpu_threads_.size() && vcpu_threads_[i].joinable())
            pthread_kill(vcpu_threads_[i].native_handle(), kKickSignal);
    }
}

Machine::StopReason Machine::run() {
    install_kick_handler();
    io_thread_ = std::thread([this] { loop_.run(); });
    {
        // Threads start under the lock so request_stop sees every handle.
        std::lock_guard lock(stop_mutex_);
        for (auto& vcpu : vcpus_) vcpu_threads_.emplace_back([this, &vcpu] { run_vcpu(*vcpu); });
    }
    for (auto& thread : vcpu_threads_) thread.join();
    vcpu_threads_.clear();
    loop_.stop();
    io_thread_.join();
    return stop_reason_.load();
}

void Machine::pause() {
    std::unique_lock lock(pause_mutex_);
    if (paused_) return;
    paused_ = true;
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        vcpus_[i]->request_exit();
        if (i < vcpu_threads_.size()) pthread_kill(vcpu_threads_[i].native_handle(), kKickSignal);
    }
    pause_changed_.wait_for(lock, std::chrono::seconds(5), [this] {
        return parked_vcpus_ == vcpus_.size() || stop_reason_.load() != StopReason::None;
    });
}

void Machine::resume() {
    std::lock_guard lock(pause_mutex_);
    paused_ = false;
    pause_changed_.notify_all();
}

void Machine::press_power_button() {
    if (power_management_) power_management_->press_power_button();
}

void Machine::run_vcpu(hv::Vcpu& vcpu) {
    if (vcpu.index() == 0) {
        timespec now{};
        clock_gettime(CLOCK_REALTIME, &now);
        first_entry_unix_ns_ = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + now.tv_nsec;
    }
    while (stop_reason_.load() == StopReason::None) {
        {
            std::unique_lock lock(pause_mutex_);
            if (paused_) {
                ++parked_vcpus_;
                pause_changed_.notify_all();
                pause_changed_.wait(lock, [this] { return !paused_ || stop_reason_.load() != StopReason::None; });
                --parked_vcpus_;
                vcpu.clear_exit_request();
                continue;
            }
        }
        auto exit = vcpu.run();
        if (!exit) {
            request_stop(StopReason::HostError, fmt::format("vCPU {}: {}", vcpu.index(), exit.error().message));
            break;
        }
        switch (exit->kind) {
        case hv::VcpuExit::Kind::PortIo:
            for (uint32_t i = 0; i < exit->count; ++i) {
                std::span<uint8_t> element(exit->data + i * exit->size, exit->size);
                if (exit->is_write) port_bus_.write(exit->address, element);
                else if (!port_bus_.read(exit->address, element)) std::memset(element.data(), 0xff, element.size());
            }
            break;
        case hv::VcpuExit::Kind::Mmio: {
            std::span<uint8_t> data(exit->data, exit->size);
            if (exit->is_write) mmio_bus_.write(exit->address, data);
            else if (!mmio_bus_.read(exit->address, data)) std::memset(data.data(), 0xff, data.size());
            break;
        }
        case hv::VcpuExit::Kind::Halt:
        case hv::VcpuExit::Kind::Interrupted:
            break;
        case hv::VcpuExit::Kind::SystemShutdown:
            request_stop(StopReason::PowerOff);
            break;
        case hv::VcpuExit::Kind::SystemReset:
            request_stop(StopReason::Reset);
            break;
        case hv::VcpuExit::Kind::Shutdown: {
            std::string message = fmt::format("vCPU {} triple-faulted\n{}", vcpu.index(), describe_vcpu(vcpu));
            // KVM on AMD INITs the vCPU at the shutdown intercept, as the VMCB is
            // undefined after one (arch/x86/kvm/svm/svm.c, shutdown_interception),
            // so the registers are then the reset state, not the faulting one.
            if (in_reset_state(vcpu))
                message += "\n  (the reset state: KVM re-initialised the vCPU at the shutdown, so the faulting "
                           "state is lost; the guest's console shows how far it got)";
            request_stop(StopReason::TripleFault, std::move(message));
            break;
        }
        case hv::VcpuExit::Kind::InternalError:
        case hv::VcpuExit::Kind::FailEntry:
            request_stop(StopReason::InternalError,
                         fmt::format("vCPU {}: KVM {} (code {:#x})\n{}", vcpu.index(),
                                     exit->kind == hv::VcpuExit::Kind::FailEntry ? "refused to enter the guest"
                                                                                 : "internal error",
                                     exit->reason, describe_vcpu(vcpu)));
            break;
        case hv::VcpuExit::Kind::Other:
            request_stop(StopReason::InternalError,
                         fmt::format("vCPU {}: unexpected KVM exit {}\n{}", vcpu.index(), exit->reason,
                                     describe_vcpu(vcpu)));
            break;
        }
    }
}

bool Machine::in_reset_state(hv::Vcpu& vcpu) {
    auto regs = vcpu.registers();
    auto sregs = vcpu.special_registers();
    // Power-on/INIT state: CS selector F000, IP FFF0, paging and protection off (SDM vol. 3A, 9.1.1).
    return regs && sregs && regs->rip == 0xfff0 && sregs->cs.selector == 0xf000 && (sregs->cr0 & 1) == 0;
}

std::string Machine::describe_vcpu(hv::Vcpu& vcpu) {
    auto regs = vcpu.registers();
    auto sregs = vcpu.special_registers();
    if (!regs || !sregs) return "  (registers unavailable)";
    const auto& r = *regs;
    const auto& s = *sregs;
    return fmt::format(
        "  rip={:016x} rsp={:016x} rflags={:08x}\n"
        "  rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}\n"
        "  rsi={:016x} rdi={:016x} rbp={:016x}\n"
        "  r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}\n"
        "  r12={:016x} r13={:016x} r14={:016x} r15={:016x}\n"
        "  cs={:04x} ss={:04x} cr0={:08x} cr2={:016x} cr3={:016x} cr4={:08x} efer={:x}",
        r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, s.cs.selector, s.ss.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
}

}  // namespace atl::vmm
