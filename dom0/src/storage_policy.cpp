#include <atoll/dom0/storage_policy.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace atl::dom0 {
namespace {

std::string resolve(const std::string& path) {
    char* resolved = realpath(path.c_str(), nullptr);
    if (!resolved) return {};
    std::string out(resolved);
    free(resolved);
    return out;
}

bool inside(const std::string& path, const std::string& directory) {
    if (directory == "/") return true;
    return path.size() > directory.size() && path.compare(0, directory.size(), directory) == 0 &&
           path[directory.size()] == '/';
}

}  // namespace

StoragePolicy::StoragePolicy(std::vector<std::string> directories) : directories_(std::move(directories)) {}

Outcome<std::string> StoragePolicy::check(const std::string& path, Access access, const std::string& what) const {
    const std::string subject = what + " " + path;
    if (path.empty() || path.front() != '/')
        return fault(ErrorKind::InvalidArgument, subject + ": not an absolute path");
    const std::string resolved = resolve(path);
    if (resolved.empty()) {
        const int error = errno;
        if (error == ENOENT || error == ENOTDIR) return fault(ErrorKind::InvalidArgument, subject + ": not found");
        return fault(ErrorKind::InvalidArgument, subject + ": " + std::strerror(error));
    }
    bool permitted = false;
    for (const auto& directory : directories_) {
        // Resolved now, not once: a directory may be created after atolld starts.
        const std::string real_directory = resolve(directory);
        if (!real_directory.empty() && inside(resolved, real_directory)) permitted = true;
    }
    if (!permitted) {
        std::string list;
        for (const auto& directory : directories_) list += (list.empty() ? "" : ", ") + directory;
        return fault(ErrorKind::InvalidArgument,
                     subject + (resolved != path ? " (" + resolved + ")" : "") +
                         ": outside the permitted storage directories (" + (list.empty() ? "none" : list) + ")");
    }
    struct stat info {};
    if (stat(resolved.c_str(), &info) != 0)
        return fault(ErrorKind::InvalidArgument, subject + ": " + std::strerror(errno));
    if (!S_ISREG(info.st_mode) && !S_ISBLK(info.st_mode))
        return fault(ErrorKind::InvalidArgument, subject + ": not a regular file or block device");
    // Opening is the honest test of access (ACLs, read-only mounts). O_NONBLOCK:
    // never wait on a file that was swapped for something else meanwhile.
    const int flags = (access == Access::ReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    const int fd = open(resolved.c_str(), flags);
    if (fd < 0) {
        const int error = errno;
        return fault(ErrorKind::InvalidArgument, subject + ": cannot be opened for " +
                                                     (access == Access::ReadWrite ? "reading and writing" : "reading") +
                                                     ": " + std::strerror(error));
    }
    close(fd);
    return resolved;
}

Outcome<VmDefinition> StoragePolicy::check_definition(const VmDefinition& definition) const {
    VmDefinition out = definition;
    const std::string owner = " (VM '" + definition.name + "')";
    auto check_into = [&](std::string& path, Access access, const std::string& what) -> Outcome<void> {
        auto resolved = check(path, access, what);
        if (!resolved) return fault(resolved.error().kind, resolved.error().message + owner);
        path = *resolved;
        return {};
    };
    if (definition.boot.kind == BootSource::Kind::Kernel) {
        ATOLL_DOM0_TRY(check_into(out.boot.kernel, Access::Read, "kernel"));
        if (!out.boot.initrd.empty()) ATOLL_DOM0_TRY(check_into(out.boot.initrd, Access::Read, "initrd"));
    }
    for (size_t i = 0; i < out.disks.size(); ++i) {
        ATOLL_DOM0_TRY(check_into(out.disks[i].path, out.disks[i].read_only ? Access::Read : Access::ReadWrite,
                                  "disk image"));
    }
    return out;
}

}  // namespace atl::dom0
