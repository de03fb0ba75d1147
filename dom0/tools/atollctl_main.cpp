// atollctl: the command-line client of atolld (see dom0/README.md).
#include <atoll/dom0/atollctl.h>

int main(int argc, char** argv) { return atl::dom0::atollctl_main(argc, argv); }
