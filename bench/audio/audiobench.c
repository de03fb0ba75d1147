// audiobench: runs a VMM whose guest plays tone bursts, records PulseAudio's
// null-sink monitor meanwhile, and reports, on one clock (the test host's
// CLOCK_MONOTONIC), when each burst was written by the guest and when it was
// heard; also samples the CPU time of the VMM and of PulseAudio at the
// guest's markers. Part of bench/audio (see bench/README.md); runs in the
// virtual test host.
//
// Usage: audiobench -d SOURCE [-p PULSE_PID] [-c SOCKET] [-t TIMEOUT_S] [-o LOG]
//                   -- PROG ARGS...
//   -d SOURCE   the PulseAudio source to record (the null sink's monitor),
//               from PROG's line "AB-MARK record-begin" to "AB-MARK
//               record-end"; the server is libpulse's default ($PULSE_SERVER)
//   -p PID      PulseAudio's process, for its CPU time
//   -c SOCKET   atoll-vmm's control socket: its sound device's underrun count
//               at the end of the bursts and of the tone ("control" lines)
//   -t TIMEOUT  kill PROG (SIGKILL) after TIMEOUT seconds; default 180
//   -o LOG      PROG's output (stdout and stderr, one pipe), each line with
//               the milliseconds since PROG was started: "[  1234.5] text"
// Output (stdout), times in ms since PROG was started:
//   event t_ms=T vmm_cpu_ms=C vmm_guest_ms=G pa_cpu_ms=P text=LINE
//       for each line of PROG's containing "TONE-" or "AB-MARK": when it
//       arrived, and the CPU times (user+system, all threads; vmm_guest_ms is
//       the part of vmm_cpu_ms spent running the guest) at that moment
//   onset t_ms=T naive_ms=N
//       a tone starting after at least 50 ms of silence at the monitor (see
//       arrival_ms below for T; N is the plain read time, for comparison)
//   control at=bursts-end|play-end underruns=N   (with -c; -1: no answer)
//   thread tid=T name=COMM playing_cpu_ms=C playing_guest_ms=G
//       the VMM's threads' CPU time between TONE-PLAYING and TONE-PLAYED
//   latency burst=N ms=L
//       for each "TONE-BURST N" line: the first onset after it, minus the
//       line's arrival; "ms=none" when no onset followed within 2 s
//   exit=STATUS (or "signal N"), timeout=1 when PROG had to be killed,
//   record_chunks=N record_error=TEXT
// Exit: 0 PROG ran and exited by itself, 1 otherwise, 2 usage errors.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pulse/error.h>
#include <pulse/simple.h>

#define RATE 48000
#define CHUNK_FRAMES 240          // 5 ms: the granularity of arrival times
#define LOUD 2000                 // the guest's tone peaks at 12000
#define QUIET_BEFORE_ONSET (RATE / 20)  // 50 ms of silence before an onset
#define ENVELOPE_WINDOW (2 * RATE)      // see arrival_ms
#define MAX_EVENTS 4096
#define MAX_ONSETS 4096

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(void) {
    fprintf(stderr, "usage: audiobench -d SOURCE [-p PULSE_PID] [-c SOCKET] [-t TIMEOUT_S] [-o LOG] -- PROG ARGS...\n");
    exit(2);
}

// --- the recorder ---------------------------------------------------------
// One entry per chunk read: when the read returned, and the index of the
// frame after the chunk's last.
struct chunk {
    double read_ms;
    long end_frame;
};
static struct chunk* chunks;
static size_t chunk_count, chunk_capacity;
static long onset_frames[MAX_ONSETS];
static size_t onset_count;
static volatile int recording = 1;
static char record_error[256];
static const char* record_source;

static void* record(void* unused) {
    (void)unused;
    const pa_sample_spec spec = {.format = PA_SAMPLE_S16LE, .rate = RATE, .channels = 1};
    // fragsize sets both how often the server sends (arrival granularity)
    // and, through the monitor, how far ahead of real time the null sink
    // renders: as little as the server will do.
    const pa_buffer_attr attr = {.maxlength = (uint32_t)-1, .tlength = (uint32_t)-1, .prebuf = (uint32_t)-1,
                                 .minreq = (uint32_t)-1, .fragsize = CHUNK_FRAMES * 2};
    int error = 0;
    pa_simple* stream = pa_simple_new(NULL, "atoll audiobench", PA_STREAM_RECORD, record_source, "monitor", &spec,
                                      NULL, &attr, &error);
    if (!stream) {
        snprintf(record_error, sizeof record_error, "pa_simple_new: %s", pa_strerror(error));
        return NULL;
    }
    int16_t buffer[CHUNK_FRAMES];
    long frame = 0, last_loud = -QUIET_BEFORE_ONSET - 1;
    while (recording) {
        if (pa_simple_read(stream, buffer, sizeof buffer, &error) < 0) {
            snprintf(record_error, sizeof record_error, "pa_simple_read: %s", pa_strerror(error));
            break;
        }
        const double t = now_ms();
        for (int i = 0; i < CHUNK_FRAMES; ++i, ++frame) {
            if (abs(buffer[i]) < LOUD) continue;
            if (frame - last_loud > QUIET_BEFORE_ONSET && onset_count < MAX_ONSETS) onset_frames[onset_count++] = frame;
            last_loud = frame;
        }
        if (chunk_count == chunk_capacity) {
            chunk_capacity = chunk_capacity ? 2 * chunk_capacity : 4096;
            chunks = realloc(chunks, chunk_capacity * sizeof *chunks);
        }
        chunks[chunk_count++] = (struct chunk){t, frame};
    }
    pa_simple_free(stream);
    return NULL;
}

// When the frame at index `frame` reached us, free of the recorder's own
// scheduling delays: a chunk that we read late shows a larger offset
// (read time - position in the stream) than one read at once, so the
// smallest offset among the chunks within ENVELOPE_WINDOW frames is taken as
// the stream's true arrival schedule. (The server delivers a whole fragment
// at once, so this is the arrival of the fragment holding the frame, give or
// take the null sink's render block.)
static double arrival_ms(long frame, double* naive_ms) {
    double best = 1e300;
    *naive_ms = -1;
    for (size_t j = 0; j < chunk_count; ++j) {
        const long end = chunks[j].end_frame;
        if (*naive_ms < 0 && end > frame) *naive_ms = chunks[j].read_ms;
        if (labs(end - frame) > ENVELOPE_WINDOW) continue;
        const double offset = chunks[j].read_ms - end * 1e3 / RATE;
        if (offset < best) best = offset;
    }
    // The fragment holding the frame arrives when its last frame does.
    const long fragment_end = (frame / CHUNK_FRAMES + 1) * CHUNK_FRAMES;
    return best + fragment_end * 1e3 / RATE;
}

// --- CPU time --------------------------------------------------------------
// utime + stime (all threads, exited ones included) and guest_time, in ms.
static int stat_cpu_ms(const char* path, double* total, double* guest) {
    char buffer[4096];
    FILE* f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buffer, 1, sizeof buffer - 1, f);
    fclose(f);
    buffer[n] = 0;
    // Fields after the command name, which may hold spaces and parentheses.
    char* p = strrchr(buffer, ')');
    if (!p) return -1;
    p += 2;
    unsigned long long field[64] = {0};
    int i = 3;  // the state, field 3, is a letter
    p = strchr(p, ' ');
    while (p && i < 60) {
        field[++i] = strtoull(p + 1, &p, 10);
        if (*p != ' ') break;
    }
    const double tick_ms = 1e3 / sysconf(_SC_CLK_TCK);
    *total = (field[14] + field[15]) * tick_ms;
    *guest = field[43] * tick_ms;
    return 0;
}

static int cpu_ms(pid_t pid, double* total, double* guest) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return stat_cpu_ms(path, total, guest);
}

static int cpu_ms_of(char* scratch, int pid, int tid, double* total, double* guest) {
    sprintf(scratch, "/proc/%d/task/%d/stat", pid, tid);
    return stat_cpu_ms(scratch, total, guest);
}

// Per-thread CPU of the VMM at the start and end of the playing window
// (TONE-PLAYING, TONE-PLAYED): which of its threads does the work.
#define MAX_THREADS 64
struct thread_cpu {
    int tid;
    char name[32];
    double total_ms, guest_ms;
};
static struct thread_cpu play_begin[MAX_THREADS], play_end[MAX_THREADS];
static int play_begin_count, play_end_count;

static int snapshot_threads(pid_t pid, struct thread_cpu* threads) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR* dir = opendir(path);
    if (!dir) return 0;
    int count = 0;
    struct dirent* entry;
    while ((entry = readdir(dir)) && count < MAX_THREADS) {
        const int tid = atoi(entry->d_name);
        if (tid <= 0) continue;
        struct thread_cpu* t = &threads[count];
        t->tid = tid;
        char file[96], name[64] = "";
        snprintf(file, sizeof file, "/proc/%d/task/%d/comm", (int)pid, tid);
        FILE* f = fopen(file, "re");
        if (f) {
            if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
            fclose(f);
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        if (cpu_ms_of(file, (int)pid, tid, &t->total_ms, &t->guest_ms) == 0) ++count;
    }
    closedir(dir);
    return count;
}

// atoll-vmm's control socket (hypervisor/docs/control-protocol.md): the
// device's underrun count, from the `status` command; -1 on any failure.
static long control_underruns(const char* socket_path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path);
    long underruns = -1;
    char reply[65536];
    size_t fill = 0;
    static const char request[] = "{\"id\":1,\"command\":\"status\"}\n";
    if (connect(fd, (struct sockaddr*)&address, sizeof address) == 0 &&
        write(fd, request, sizeof request - 1) == (ssize_t)(sizeof request - 1)) {
        // The greeting, then the response: read until a line has "underruns".
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        while (fill < sizeof reply - 1 && poll(&pfd, 1, 2000) > 0) {
            ssize_t n = read(fd, reply + fill, sizeof reply - 1 - fill);
            if (n <= 0) break;
            fill += (size_t)n;
            reply[fill] = 0;
            const char* key = strstr(reply, "\"underruns\":");
            if (key) {
                underruns = strtol(key + 12, NULL, 10);
                break;
            }
        }
    }
    close(fd);
    return underruns;
}

struct event {
    double t_ms, vmm_cpu_ms, vmm_guest_ms, pa_cpu_ms;
    char text[160];
};
static struct event events[MAX_EVENTS];
static size_t event_count;

int main(int argc, char** argv) {
    const char* log_path = NULL;
    const char* control = NULL;
    int timeout_s = 180;
    pid_t pulse = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+d:p:t:o:c:")) != -1) {
        switch (opt) {
        case 'd': record_source = optarg; break;
        case 'p': pulse = atoi(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 'o': log_path = optarg; break;
        case 'c': control = optarg; break;
        default: usage();
        }
    }
    if (!record_source || optind >= argc) usage();
    FILE* log = log_path ? fopen(log_path, "we") : NULL;
    if (log_path && !log) {
        perror(log_path);
        return 2;
    }

    // The recorder runs only between the guest's "AB-MARK record-begin" and
    // "AB-MARK record-end": a low-latency client of the monitor makes the
    // server render every few ms, which would swamp PulseAudio's CPU time
    // in the idle and playing phases.
    pthread_t recorder;
    int recorder_state = 0;  // 0 not started, 1 running, 2 stopped

    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        perror("pipe");
        return 1;
    }
    const double start = now_ms();
    pid_t child = fork();
    if (child == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        execvp(argv[optind], argv + optind);
        perror(argv[optind]);
        _exit(127);
    }
    close(out[1]);

    char line[4096];
    size_t fill = 0;
    int timed_out = 0, done = 0, status = 0;
    while (!done) {
        const double elapsed = now_ms() - start;
        if (elapsed > timeout_s * 1e3) {
            kill(child, SIGKILL);
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, 1, 200) <= 0) continue;
        char buffer[4096];
        ssize_t n = read(out[0], buffer, sizeof buffer);
        if (n <= 0) break;
        const double t = now_ms() - start;
        for (ssize_t i = 0; i < n; ++i) {
            if (buffer[i] != '\n' && fill < sizeof line - 1) {
                if (buffer[i] != '\r') line[fill++] = buffer[i];
                continue;
            }
            if (buffer[i] != '\n') continue;
            line[fill] = 0;
            fill = 0;
            if (log) {
                fprintf(log, "[%9.1f] %s\n", t, line);
                fflush(log);  // the host script watches it
            }
            const char* tag = strstr(line, "TONE-");
            if (!tag) tag = strstr(line, "AB-MARK");
            if (tag && event_count < MAX_EVENTS) {
                struct event* e = &events[event_count++];
                double pa_guest;
                e->t_ms = t;
                e->vmm_cpu_ms = e->vmm_guest_ms = e->pa_cpu_ms = -1;
                cpu_ms(child, &e->vmm_cpu_ms, &e->vmm_guest_ms);
                if (pulse) cpu_ms(pulse, &e->pa_cpu_ms, &pa_guest);
                snprintf(e->text, sizeof e->text, "%s", tag);
                if (strncmp(tag, "TONE-PLAYING", 12) == 0) play_begin_count = snapshot_threads(child, play_begin);
                if (strncmp(tag, "TONE-PLAYED", 11) == 0) play_end_count = snapshot_threads(child, play_end);
                // After the CPU samples: the query costs the VMM a little.
                if (control && (strstr(tag, "record-end") || strncmp(tag, "TONE-PLAYED", 11) == 0))
                    printf("control at=%s underruns=%ld\n", strstr(tag, "record-end") ? "bursts-end" : "play-end",
                           control_underruns(control));
            }
            if (strstr(line, "AB-MARK record-begin") && recorder_state == 0) {
                pthread_create(&recorder, NULL, record, NULL);
                recorder_state = 1;
            } else if (strstr(line, "AB-MARK record-end") && recorder_state == 1) {
                recording = 0;
                pthread_join(recorder, NULL);
                recorder_state = 2;
            }
        }
    }
    close(out[0]);
    waitpid(child, &status, 0);
    if (recorder_state == 1) {
        recording = 0;
        pthread_join(recorder, NULL);
    }
    if (log) fclose(log);

    for (size_t i = 0; i < event_count; ++i) {
        const struct event* e = &events[i];
        printf("event t_ms=%.1f vmm_cpu_ms=%.0f vmm_guest_ms=%.0f pa_cpu_ms=%.0f text=%s\n", e->t_ms, e->vmm_cpu_ms,
               e->vmm_guest_ms, e->pa_cpu_ms, e->text);
    }
    for (int i = 0; i < play_end_count; ++i) {
        for (int j = 0; j < play_begin_count; ++j) {
            if (play_begin[j].tid != play_end[i].tid) continue;
            printf("thread tid=%d name=%s playing_cpu_ms=%.0f playing_guest_ms=%.0f\n", play_end[i].tid,
                   play_end[i].name, play_end[i].total_ms - play_begin[j].total_ms,
                   play_end[i].guest_ms - play_begin[j].guest_ms);
        }
    }
    double onset_ms[MAX_ONSETS];
    for (size_t i = 0; i < onset_count; ++i) {
        double naive;
        onset_ms[i] = arrival_ms(onset_frames[i], &naive) - start;
        printf("onset t_ms=%.1f naive_ms=%.1f\n", onset_ms[i], naive - start);
    }
    for (size_t i = 0; i < event_count; ++i) {
        int burst;
        if (sscanf(events[i].text, "TONE-BURST %d", &burst) != 1 || strstr(events[i].text, "DONE")) continue;
        const double t = events[i].t_ms;
        size_t k = 0;
        // An onset a little before its marker would be an error of the
        // method, not of the VMM: shown as it is rather than skipped.
        while (k < onset_count && onset_ms[k] < t - 50) ++k;
        if (k < onset_count && onset_ms[k] - t < 2000)
            printf("latency burst=%d ms=%.1f\n", burst, onset_ms[k] - t);
        else
            printf("latency burst=%d ms=none\n", burst);
    }
    if (timed_out) printf("timeout=1\n");
    if (WIFEXITED(status))
        printf("exit=%d\n", WEXITSTATUS(status));
    else
        printf("exit=signal %d\n", WTERMSIG(status));
    printf("record_chunks=%zu\n", chunk_count);
    if (record_error[0]) printf("record_error=%s\n", record_error);
    return timed_out || !WIFEXITED(status) || record_error[0] ? 1 : 0;
}
