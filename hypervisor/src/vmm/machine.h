// One boot of a VM: KVM objects, guest RAM, devices and vCPU threads. A guest
// reboot throws the whole machine away and builds a new one from the config.
#pragma once

#include "devices/bus.h"
#include "hv/hypervisor.h"
#include "memory/guest_memory.h"
#include "vmm/event_loop.h"

#include <atoll/vmm/vmm.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace atl::vmm {

namespace pci {
class PciRoot;
}
class AcpiPmDevice;
class AudioBackend;
class CharBackend;
class DisplayConnection;
class DisplayLink;

// The VM's consoles live as long as the VMM process, not one boot, so that a
// client attached to a socket stays attached when the guest reboots.
struct Consoles {
    std::shared_ptr<CharBackend> serial;
    std::shared_ptr<CharBackend> virtio_console;  // null when the VM has none
};
// Opens the consoles the configuration asks for; their input is read on `loop`.
Result<Consoles> open_consoles(const VmConfig& config, EventLoop& loop);
// Likewise the connection to atoll-display, so that its VNC viewers stay when
// the guest reboots; null when the VM has no display. Each boot's DisplayLink
// takes it over (it connects on the first boot's I/O thread).
std::shared_ptr<DisplayConnection> make_display_connection(const VmConfig& config);

class Machine {
public:
    enum class StopReason { None, PowerOff, Stopped, Reset, TripleFault, InternalError, HostError };

    // `audio` outlives the machine (the VM's PulseAudio client stays across
    // reboots); null: the VM has no sound device.
    static Result<std::unique_ptr<Machine>> build(const VmConfig& config, hv::Hypervisor& hypervisor,
                                                  const Consoles& consoles,
                                                  std::shared_ptr<AudioBackend> audio = nullptr,
                                                  std::shared_ptr<DisplayConnection> display = nullptr);
    ~Machine();

    // Runs the vCPUs until the guest powers off, resets or fails.
    StopReason run();
    const std::string& stop_message() const { return stop_message_; }

    // Asks every vCPU to stop; the first reason wins. Safe from any thread.
    void request_stop(StopReason reason, std::string message = {});

    // Parks every vCPU outside the guest and waits until they are parked; resume()
    // lets them go. Safe from any thread but the vCPUs'.
    void pause();
    void resume();
    // The ACPI power button: a guest that honours it shuts down.
    void press_power_button();
    // CLOCK_REALTIME nanoseconds just before vCPU 0 first entered the guest; 0 until then.
    uint64_t first_vcpu_entry_unix_ns() const { return first_entry_unix_ns_.load(); }

private:
    explicit Machine(const VmConfig& config);
    Result<void> create_platform(hv::Hypervisor& hypervisor);
    Result<void> create_devices(const Consoles& consoles, std::shared_ptr<AudioBackend> audio,
                                std::shared_ptr<DisplayConnection> display);
    Result<void> load_guest();
    void run_vcpu(hv::Vcpu& vcpu);
    std::string describe_vcpu(hv::Vcpu& vcpu);
    static bool in_reset_state(hv::Vcpu& vcpu);

    VmConfig config_;
    std::unique_ptr<hv::Vm> vm_;
    std::shared_ptr<GuestMemory> memory_;
    std::vector<std::unique_ptr<hv::Vcpu>> vcpus_;
    std::vector<std::thread> vcpu_threads_;
    EventLoop loop_;
    std::thread io_thread_;
    IoBus port_bus_;
    IoBus mmio_bus_;
    std::shared_ptr<pci::PciRoot> pci_root_;
    std::vector<std::shared_ptr<void>> keep_alive_;  // devices referenced only through callbacks

    std::shared_ptr<AcpiPmDevice> power_management_;
    std::atomic<uint64_t> first_entry_unix_ns_{0};

    std::mutex pause_mutex_;
    std::condition_variable pause_changed_;
    bool paused_ = false;
    unsigned parked_vcpus_ = 0;

    std::mutex stop_mutex_;
    std::atomic<StopReason> stop_reason_{StopReason::None};
    std::string stop_message_;

    // Last, so it goes first: it refers to devices that pci_root_ keeps alive.
    std::unique_ptr<DisplayLink> display_link_;
};

}  // namespace atl::vmm
