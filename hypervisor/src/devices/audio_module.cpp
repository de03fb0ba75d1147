// Loads the PulseAudio back-end module on first use. Looked for beside the
// running executable first (an installed atoll-vmm in lib/atoll, or a copy
// with its module in a test host's payload), then in the install directory,
// then in the build tree (tests run from there). Loaded once and never
// unloaded: its threads and objects live as long as the process.
#include "devices/audio_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <mutex>
#include <string>
#include <vector>

namespace atl::vmm {
namespace {

std::vector<std::string> module_directories() {
    std::vector<std::string> directories;
    char self[PATH_MAX];
    const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0) {
        std::string path(self, static_cast<size_t>(length));
        directories.push_back(path.substr(0, path.rfind('/')));
    }
#ifdef ATOLL_AUDIO_MODULE_INSTALL_DIR
    directories.emplace_back(ATOLL_AUDIO_MODULE_INSTALL_DIR);
#endif
#ifdef ATOLL_AUDIO_MODULE_BUILD_DIR
    directories.emplace_back(ATOLL_AUDIO_MODULE_BUILD_DIR);
#endif
    return directories;
}

Result<PulseAudioModuleEntry> load_entry() {
    std::string tried;
    for (const auto& directory : module_directories()) {
        const std::string path = directory + "/" + kPulseAudioModuleName;
        if (access(path.c_str(), F_OK) != 0) {
            tried += (tried.empty() ? "" : ", ") + directory;
            continue;
        }
        void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!module) return make_error("audio: cannot load " + path + ": " + dlerror());
        auto* entry = reinterpret_cast<PulseAudioModuleEntry>(dlsym(module, kPulseAudioModuleEntry));
        if (!entry)
            return make_error("audio: " + path + " is not this atoll-vmm's module (no " + kPulseAudioModuleEntry + ")");
        return entry;
    }
    return make_error(std::string("audio: ") + kPulseAudioModuleName + " not found (looked in " + tried + ")");
}

}  // namespace

Result<std::shared_ptr<AudioBackend>> make_pulse_audio_backend(const PulseAudioOptions& options) {
    static std::once_flag once;
    static Result<PulseAudioModuleEntry> entry = make_error("audio: the module was not loaded");
    std::call_once(once, [] { entry = load_entry(); });
    if (!entry) return entry.error();
    Result<std::shared_ptr<AudioBackend>> backend = make_error("audio: the PulseAudio module gave no back-end");
    (*entry)(&options, &backend);
    return backend;
}

}  // namespace atl::vmm
