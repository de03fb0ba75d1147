// blkbench: block-device read benchmark for the nested benchmark guest
// (busybox has no fio). Built static; reads with O_DIRECT so the guest's
// page cache is bypassed and every read is a virtio-blk request.
//
// Usage: blkbench seq DEVICE [BLOCK_KIB]   read the whole device once, in
//                                          BLOCK_KIB (default 1024) requests
//        blkbench rand DEVICE SECONDS      4 KiB reads at random 4 KiB-aligned
//                                          offsets, one at a time (queue depth 1)
// Output: one line, "BENCH-SEQ mib_s=N bytes=N ms=N" or
//         "BENCH-RAND iops=N reads=N ms=N". Exit 1 on any I/O error.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void* aligned(size_t size) {
    void* p = NULL;
    if (posix_memalign(&p, 4096, size) != 0) {
        perror("posix_memalign");
        exit(1);
    }
    memset(p, 0, size);
    return p;
}

int main(int argc, char** argv) {
    if (argc < 3 || (strcmp(argv[1], "seq") != 0 && strcmp(argv[1], "rand") != 0)) {
        fprintf(stderr, "usage: blkbench seq DEVICE [BLOCK_KIB] | blkbench rand DEVICE SECONDS\n");
        return 2;
    }
    int fd = open(argv[2], O_RDONLY | O_DIRECT);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < (1 << 20)) {
        fprintf(stderr, "blkbench: %s is too small (%lld bytes)\n", argv[2], (long long)size);
        return 1;
    }

    if (strcmp(argv[1], "seq") == 0) {
        size_t block = (argc > 3 ? strtoul(argv[3], NULL, 10) : 1024) * 1024;
        if (block == 0) return 2;
        char* buf = aligned(block);
        uint64_t total = 0;
        double start = now_ms();
        for (off_t off = 0; off < size;) {
            ssize_t n = pread(fd, buf, block, off);
            if (n <= 0) {
                perror("blkbench: pread");
                return 1;
            }
            off += n;
            total += (uint64_t)n;
        }
        double ms = now_ms() - start;
        printf("BENCH-SEQ mib_s=%.1f bytes=%llu ms=%.1f\n", total / 1048576.0 / (ms / 1e3),
               (unsigned long long)total, ms);
        return 0;
    }

    double seconds = argc > 3 ? strtod(argv[3], NULL) : 3;
    char* buf = aligned(4096);
    uint64_t blocks = (uint64_t)size / 4096, reads = 0, x = 0x9e3779b97f4a7c15ull;
    double start = now_ms(), end = start + seconds * 1e3, t = start;
    while (t < end) {
        // Check the clock every 64 reads; a read is far longer than clock_gettime.
        for (int i = 0; i < 64; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (pread(fd, buf, 4096, (off_t)((x % blocks) * 4096)) != 4096) {
                perror("blkbench: pread");
                return 1;
            }
            reads++;
        }
        t = now_ms();
    }
    double ms = t - start;
    printf("BENCH-RAND iops=%.0f reads=%llu ms=%.1f\n", reads / (ms / 1e3), (unsigned long long)reads, ms);
    return 0;
}
