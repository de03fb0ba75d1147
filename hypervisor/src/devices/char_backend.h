// Where a guest's character device (16550 UART, virtio-console) reads and
// writes on the host: stdout/stdin, a unix socket, or nothing.
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace atl::vmm {

class EventLoop;

class CharBackend {
public:
    using InputHandler = std::function<void(std::span<const uint8_t>)>;
    virtual ~CharBackend() = default;
    // Output from the guest. Never blocks the caller: when the host side is slow
    // or absent, bytes are dropped (a guest console must not stall the guest).
    virtual void write(std::span<const uint8_t> bytes) = 0;
    // Input for the guest arrives through `handler`, called on the event loop thread.
    virtual void set_input_handler(InputHandler handler) = 0;
};

// stdout for output; stdin for input when it is a terminal or pipe (raw mode on a tty).
Result<std::shared_ptr<CharBackend>> make_stdio_char_backend(EventLoop& loop);
// Listens on a unix socket path; one client at a time gets the console.
Result<std::shared_ptr<CharBackend>> make_socket_char_backend(EventLoop& loop, const std::string& path);
// Discards output, never has input.
std::shared_ptr<CharBackend> make_null_char_backend();

// One boot's view of a console that outlives the boot (a client stays attached
// across a guest reboot). Output goes straight through; input handlers set on
// the view run on `loop`, the boot's device thread. Destroying the view
// detaches it: no input is posted to `loop` afterwards. Views of one console
// must not overlap in time.
std::shared_ptr<CharBackend> make_boot_view(std::shared_ptr<CharBackend> console, EventLoop& loop);

}  // namespace atl::vmm
