// Where a VM's files may live: kernels, initrds and disk images must resolve
// (realpath: symbolic links and all) to a file inside one of the permitted
// storage directories. Checked when a VM is defined and again when it starts.
#pragma once

#include <atoll/dom0/error.h>
#include <atoll/dom0/vm_definition.h>

#include <string>
#include <vector>

namespace atl::dom0 {

class StoragePolicy {
public:
    // Directories that do not exist (yet) are kept and permit nothing until they do.
    explicit StoragePolicy(std::vector<std::string> directories);

    const std::vector<std::string>& directories() const { return directories_; }

    enum class Access { Read, ReadWrite };
    // Resolves `path` and checks that it is a regular file or block device inside
    // a permitted directory that this process can open with `access`. Returns the
    // resolved path. `what` names the file in messages ("disk image", "kernel").
    Outcome<std::string> check(const std::string& path, Access access, const std::string& what) const;

    // Every file of the definition; returns it with resolved paths.
    Outcome<VmDefinition> check_definition(const VmDefinition& definition) const;

private:
    std::vector<std::string> directories_;
};

}  // namespace atl::dom0
