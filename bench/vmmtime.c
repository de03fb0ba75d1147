// vmmtime: runs a VMM, timestamps its console output, optionally samples its
// memory use. Part of Atoll's benchmarks (bench/run); runs in the virtual
// test host, so it is built static and uses nothing beyond libc.
//
// Usage: vmmtime [-m MARKER] [-r DELAY_MS [-g NAME]] [-t TIMEOUT_S] [-k] [-o LOG]
//                -- PROG ARGS...
//   -m MARKER   report boot_ms when MARKER first appears in PROG's output
//               (stdout and stderr, read from one pipe)
//   -r DELAY_MS DELAY_MS after the marker, report the VMM's resident memory
//               (kB) from /proc/PID/status: vmrss, rss_anon, rss_file,
//               rss_shmem; and from /proc/PID/smaps: guest_ram_rss, the Rss
//               of the mappings whose name contains NAME (-g: the guest RAM
//               memfd, e.g. "/memfd:atoll-guest-ram"), and
//               overhead = vmrss - guest_ram_rss
//   -t TIMEOUT  kill PROG (SIGKILL) after TIMEOUT seconds; default 120
//   -k          kill PROG as soon as everything asked for is measured
//   -o LOG      write PROG's output there, each line prefixed with the
//               milliseconds since PROG was started: "[  1234.5] text"
// Output (stdout), one "key=value" per line: boot_ms, vmrss_kb, rss_anon_kb,
// rss_file_kb, rss_shmem_kb, guest_ram_rss_kb, guest_ram_maps, overhead_kb, exit (PROG's status, or
// "signal N"), and "timeout=1" when PROG had to be killed.
// Exit: 0 when the marker (if any) was seen and PROG was not timed out,
// 1 otherwise, 2 on usage errors.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(void) {
    fprintf(stderr, "usage: vmmtime [-m MARKER] [-r DELAY_MS [-g NAME]] [-t TIMEOUT_S] [-k] [-o LOG] -- PROG ARGS...\n");
    exit(2);
}

// Reads "Key:   123 kB" from /proc/PID/status; -1 when missing.
static long status_kb(const char* status, const char* key) {
    size_t n = strlen(key);
    for (const char* line = status; line && *line;) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') return strtol(line + n + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line) line++;
    }
    return -1;
}

// Sum of the Rss of the mappings whose name contains `name`; -1 on errors.
static long mapped_rss_kb(pid_t pid, const char* name, int* maps) {
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE* f = fopen(path, "re");
    if (!f) return -1;
    long total = 0;
    int in_match = 0;
    *maps = 0;
    while (fgets(line, sizeof line, f)) {
        // A mapping starts with "start-end perms offset dev inode [name]";
        // its fields follow as "Key:   value kB".
        unsigned long start, end;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3) {
            in_match = strstr(line, name) != NULL;
            *maps += in_match;
        } else if (in_match && strncmp(line, "Rss:", 4) == 0) {
            total += strtol(line + 4, NULL, 10);
        }
    }
    fclose(f);
    return total;
}

static int sample_memory(pid_t pid, const char* guest_ram) {
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) return -1;
    buf[len] = 0;
    long vmrss = status_kb(buf, "VmRSS"), anon = status_kb(buf, "RssAnon");
    long file = status_kb(buf, "RssFile"), shmem = status_kb(buf, "RssShmem");
    if (vmrss < 0) return -1;
    printf("vmrss_kb=%ld\nrss_anon_kb=%ld\nrss_file_kb=%ld\nrss_shmem_kb=%ld\n", vmrss, anon, file, shmem);
    if (guest_ram) {
        int maps = 0;
        long ram = mapped_rss_kb(pid, guest_ram, &maps);
        if (ram < 0) return -1;
        printf("guest_ram_rss_kb=%ld\nguest_ram_maps=%d\n", ram, maps);
        if (maps > 0) printf("overhead_kb=%ld\n", vmrss - ram);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char** argv) {
    const char* marker = NULL;
    const char* log_path = NULL;
    const char* guest_ram = NULL;
    long rss_delay = -1, timeout_s = 120;
    int kill_when_done = 0, opt;
    while ((opt = getopt(argc, argv, "+m:r:g:t:ko:")) != -1) {
        switch (opt) {
        case 'm': marker = optarg; break;
        case 'r': rss_delay = strtol(optarg, NULL, 10); break;
        case 't': timeout_s = strtol(optarg, NULL, 10); break;
        case 'g': guest_ram = optarg; break;
        case 'k': kill_when_done = 1; break;
        case 'o': log_path = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc || (rss_delay >= 0 && !marker) || (marker && !*marker)) usage();

    FILE* log = NULL;
    if (log_path && !(log = fopen(log_path, "w"))) {
        perror(log_path);
        return 2;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("pipe");
        return 2;
    }
    const double start = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "vmmtime: exec %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    close(fds[1]);

    // Marker search across read boundaries: keep the last strlen(marker)-1 bytes.
    size_t mlen = marker ? strlen(marker) : 0;
    char* window = calloc(1, mlen + 8192 + 1);
    size_t wlen = 0;
    double marker_at = -1;
    int sampled = rss_delay < 0, timed_out = 0, at_line_start = 1, pipe_open = 1;
    const double deadline = start + timeout_s * 1e3;

    while (pipe_open) {
        double t = now_ms();
        if (t >= deadline) {
            timed_out = 1;
            break;
        }
        if (!sampled && marker_at >= 0 && t >= marker_at + rss_delay) {
            if (sample_memory(pid, guest_ram) != 0) printf("memory_error=1\n");
            sampled = 1;
        }
        if (kill_when_done && sampled && (!marker || marker_at >= 0)) break;
        double wait = deadline - t;
        if (!sampled && marker_at >= 0 && marker_at + rss_delay - t < wait) wait = marker_at + rss_delay - t;
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, wait < 1 ? 1 : (int)wait);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        char buf[8192];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pipe_open = 0;
            continue;
        }
        double got = now_ms();
        if (log) {
            for (ssize_t i = 0; i < n; i++) {
                if (at_line_start) fprintf(log, "[%9.1f] ", got - start);
                if (buf[i] != '\r') fputc(buf[i], log);
                at_line_start = buf[i] == '\n';
            }
            fflush(log);
        }
        if (marker && marker_at < 0) {
            memcpy(window + wlen, buf, (size_t)n);
            wlen += (size_t)n;
            window[wlen] = 0;
            if (memmem(window, wlen, marker, mlen)) {
                marker_at = got;
                printf("boot_ms=%.1f\n", marker_at - start);
                fflush(stdout);
            } else if (wlen >= mlen) {
                memmove(window, window + wlen - (mlen - 1), mlen - 1);
                wlen = mlen - 1;
            }
        }
    }

    int status = 0;
    if (timed_out || pipe_open) kill(pid, SIGKILL);
    if (timed_out) printf("timeout=1\n");
    // The VMM may have closed its output and still be running; bound the wait.
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (now_ms() >= deadline + 5e3) {
            kill(pid, SIGKILL);
            printf("timeout=1\n");
            timed_out = 1;
            waitpid(pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    if (WIFEXITED(status)) printf("exit=%d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) printf("exit=signal %d\n", WTERMSIG(status));
    printf("elapsed_ms=%.1f\n", now_ms() - start);
    if (log) fclose(log);
    return (timed_out || (marker && marker_at < 0)) ? 1 : 0;
}
