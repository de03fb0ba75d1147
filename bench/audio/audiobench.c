// audiobench: runs a VMM whose guest plays tone bursts, records PulseAudio's
// null-sink monitor meanwhile, and reports, on one clock (the test host's
// CLOCK_MONOTONIC), when each burst was written by the guest and when it was
// heard; then plays bursts into the microphone the guest listens to and
// reports when each entered the source and when the guest heard it; also
// samples the CPU time of the VMM and of PulseAudio at the guest's markers.
// Part of bench/audio (see bench/README.md); runs in the virtual test host.
//
// Usage: audiobench -d SOURCE [-m MIC_SINK] [-p PULSE_PID] [-c SOCKET]
//                   [-t TIMEOUT_S] [-o LOG] -- PROG ARGS...
//   -d SOURCE   the PulseAudio source to record (the null sink's monitor),
//               from PROG's line "AB-MARK record-begin" to "AB-MARK
//               record-end"; the server is libpulse's default ($PULSE_SERVER)
//   -m MIC_SINK the null sink whose monitor is the guest's microphone (the
//               default source): from PROG's line "TONE-LISTENING" to
//               "TONE-LISTENED", plays 100 ms bursts of 1 kHz into it, 400-600
//               ms apart, and records MIC_SINK.monitor to timestamp them
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
//   control at=bursts-end|play-end|listen-end|listen-stall t_ms=T underruns=N overruns=M
//       (with -c; -1: no answer; listen-stall: the first 3 stalled reads)
//   thread tid=T name=COMM playing_cpu_ms=C playing_guest_ms=G
//       the VMM's threads' CPU time between TONE-PLAYING and TONE-PLAYED
//   latency burst=N ms=L
//       for each "TONE-BURST N" line: the first onset after it, minus the
//       line's arrival; "ms=none" when no onset followed within 2 s
//   mic_onset t_ms=T naive_ms=N
//       (with -m) a burst's onset at MIC_SINK.monitor: a tone after at least
//       200 ms of silence
//   mic bursts=N onsets=M chunks=C   (with -m) bursts played, onsets recorded
//   capture heard=N burst=K ms=L end_ms=E
//       for each "TONE-HEARD-ONSET N" line: the arrival of its first byte
//       minus the latest mic_onset before it (burst K, counted from 1); E is
//       the same from the line's last byte; "ms=none" without such an onset
//       within 2 s
//   exit=STATUS (or "signal N"), timeout=1 when PROG had to be killed,
//   record_chunks=N record_error=TEXT mic_record_error=TEXT mic_play_error=TEXT
// Exit: 0 PROG ran and exited by itself, 1 otherwise, 2 usage errors.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#define QUIET_BEFORE_ONSET (RATE / 20)  // 50 ms of silence before an onset (the monitor)
// The microphone's bursts are 400-600 ms apart: a dropout inside one (the
// player is late now and then in the loaded test host) is not an onset.
#define MIC_QUIET_BEFORE_ONSET (RATE / 5)
#define ENVELOPE_WINDOW (2 * RATE)      // see arrival_ms
#define MAX_EVENTS 4096
#define MAX_ONSETS 4096

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(void) {
    fprintf(stderr, "usage: audiobench -d SOURCE [-m MIC_SINK] [-p PULSE_PID] [-c SOCKET] [-t TIMEOUT_S] [-o LOG]"
                    " -- PROG ARGS...\n");
    exit(2);
}

// --- the recorders ----------------------------------------------------------
// One entry per chunk read: when the read returned, and the index of the
// frame after the chunk's last.
struct chunk {
    double read_ms;
    long end_frame;
};
// A native client of a PulseAudio source that timestamps the onsets of tones
// in it: the null sink's monitor (what the guest played) and the
// microphone's (what the guest is to hear).
struct recorder {
    const char* source;
    long quiet_before_onset;  // frames
    struct chunk* chunks;
    size_t chunk_count, chunk_capacity;  // chunk_count: atomic (the player waits for the first)
    long onset_frames[MAX_ONSETS];
    size_t onset_count;
    volatile int running;
    int state;  // 0 not started, 1 running, 2 stopped
    pthread_t thread;
    char error[256];
};
static struct recorder monitor_recorder = {.quiet_before_onset = QUIET_BEFORE_ONSET, .running = 1},
                       mic_recorder = {.quiet_before_onset = MIC_QUIET_BEFORE_ONSET, .running = 1};

static void* record(void* self) {
    struct recorder* r = self;
    const pa_sample_spec spec = {.format = PA_SAMPLE_S16LE, .rate = RATE, .channels = 1};
    // fragsize sets both how often the server sends (arrival granularity)
    // and, through the monitor, how far ahead of real time the null sink
    // renders: as little as the server will do.
    const pa_buffer_attr attr = {.maxlength = (uint32_t)-1, .tlength = (uint32_t)-1, .prebuf = (uint32_t)-1,
                                 .minreq = (uint32_t)-1, .fragsize = CHUNK_FRAMES * 2};
    int error = 0;
    pa_simple* stream =
        pa_simple_new(NULL, "atoll audiobench", PA_STREAM_RECORD, r->source, "monitor", &spec, NULL, &attr, &error);
    if (!stream) {
        snprintf(r->error, sizeof r->error, "pa_simple_new: %s", pa_strerror(error));
        return NULL;
    }
    int16_t buffer[CHUNK_FRAMES];
    long frame = 0, last_loud = -r->quiet_before_onset - 1;
    while (r->running) {
        if (pa_simple_read(stream, buffer, sizeof buffer, &error) < 0) {
            snprintf(r->error, sizeof r->error, "pa_simple_read: %s", pa_strerror(error));
            break;
        }
        const double t = now_ms();
        for (int i = 0; i < CHUNK_FRAMES; ++i, ++frame) {
            if (abs(buffer[i]) < LOUD) continue;
            if (frame - last_loud > r->quiet_before_onset && r->onset_count < MAX_ONSETS)
                r->onset_frames[r->onset_count++] = frame;
            last_loud = frame;
        }
        if (r->chunk_count == r->chunk_capacity) {
            r->chunk_capacity = r->chunk_capacity ? 2 * r->chunk_capacity : 4096;
            r->chunks = realloc(r->chunks, r->chunk_capacity * sizeof *r->chunks);
        }
        r->chunks[r->chunk_count] = (struct chunk){t, frame};
        __atomic_store_n(&r->chunk_count, r->chunk_count + 1, __ATOMIC_RELEASE);
    }
    pa_simple_free(stream);
    return NULL;
}

static void start_recorder(struct recorder* r) {
    if (r->state != 0) return;
    pthread_create(&r->thread, NULL, record, r);
    r->state = 1;
}

static void stop_recorder(struct recorder* r) {
    if (r->state != 1) return;
    r->running = 0;
    pthread_join(r->thread, NULL);
    r->state = 2;
}

// When the frame at index `frame` reached the recorder, free of its own
// scheduling delays: a chunk that it read late shows a larger offset
// (read time - position in the stream) than one read at once, so the
// smallest offset among the chunks within ENVELOPE_WINDOW frames is taken as
// the stream's true arrival schedule. (The server delivers a whole fragment
// at once, so this is the arrival of the fragment holding the frame, give or
// take the null sink's render block.)
static double arrival_ms(const struct recorder* r, long frame, double* naive_ms) {
    double best = 1e300;
    *naive_ms = -1;
    for (size_t j = 0; j < r->chunk_count; ++j) {
        const long end = r->chunks[j].end_frame;
        if (*naive_ms < 0 && end > frame) *naive_ms = r->chunks[j].read_ms;
        if (labs(end - frame) > ENVELOPE_WINDOW) continue;
        const double offset = r->chunks[j].read_ms - end * 1e3 / RATE;
        if (offset < best) best = offset;
    }
    // The fragment holding the frame arrives when its last frame does.
    const long fragment_end = (frame / CHUNK_FRAMES + 1) * CHUNK_FRAMES;
    return best + fragment_end * 1e3 / RATE;
}

// --- the microphone -------------------------------------------------------
// Plays 100 ms bursts of 1 kHz with 400-600 ms of silence between into the
// microphone's sink, from when its recorder has heard the source until told
// to stop. One stream that never stops (silence between the bursts), so
// the bursts reach the source on the sink's clock, with no stream set-up or
// pre-buffering in between; where they reach it is what the recorder says.
#define MIC_BLOCK_FRAMES 480  // 10 ms
#define MIC_BURST_FRAMES (RATE / 10)
#define MIC_GAP_MS 400
#define MIC_MAX_BURSTS 200
struct player {
    const char* sink;
    volatile int running;
    int state;  // 0 not started, 1 running, 2 stopped
    int bursts;
    pthread_t thread;
    char error[256];
};
static struct player mic_player = {.running = 1};

static void stop_player(struct player* p) {
    if (p->state != 1) return;
    p->running = 0;
    pthread_join(p->thread, NULL);
    p->state = 2;
}

static void* play_bursts(void* self) {
    struct player* p = self;
    // Until the recorder has its first fragment (a new client of a null
    // sink's monitor waits a while for it), a burst would go unrecorded.
    const double wait_until = now_ms() + 5000;
    while (p->running && __atomic_load_n(&mic_recorder.chunk_count, __ATOMIC_ACQUIRE) == 0 && now_ms() < wait_until)
        usleep(10000);
    const pa_sample_spec spec = {.format = PA_SAMPLE_S16LE, .rate = RATE, .channels = 2};
    // A deep buffer: the player's own latency is not measured (the recorder
    // says when a burst reached the source), but its underruns would be gaps.
    const pa_buffer_attr attr = {.maxlength = (uint32_t)-1, .tlength = MIC_BLOCK_FRAMES * 4 * 25,
                                 .prebuf = (uint32_t)-1, .minreq = (uint32_t)-1, .fragsize = (uint32_t)-1};
    int error = 0;
    pa_simple* stream =
        pa_simple_new(NULL, "atoll audiobench", PA_STREAM_PLAYBACK, p->sink, "speaker", &spec, NULL, &attr, &error);
    if (!stream) {
        snprintf(p->error, sizeof p->error, "pa_simple_new: %s", pa_strerror(error));
        return NULL;
    }
    srand(2);
    int16_t block[MIC_BLOCK_FRAMES * 2];
    long frame = 0, burst_begin = -1, next_burst = RATE / 2;  // half a second of silence first
    while (p->running) {
        for (int i = 0; i < MIC_BLOCK_FRAMES; ++i, ++frame) {
            if (frame == next_burst && p->bursts < MIC_MAX_BURSTS) {
                burst_begin = frame;
                ++p->bursts;
                const int gap_ms = MIC_GAP_MS + rand() % (MIC_GAP_MS / 2 + 1);
                next_burst = frame + MIC_BURST_FRAMES + (long)gap_ms * RATE / 1000;
            }
            const long k = frame - burst_begin;
            const int16_t sample =
                burst_begin >= 0 && k < MIC_BURST_FRAMES ? (int16_t)(12000 * sin(2 * M_PI * 1000.0 * k / RATE)) : 0;
            block[2 * i] = block[2 * i + 1] = sample;
        }
        if (pa_simple_write(stream, block, sizeof block, &error) < 0) {
            snprintf(p->error, sizeof p->error, "pa_simple_write: %s", pa_strerror(error));
            break;
        }
    }
    pa_simple_free(stream);
    return NULL;
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
// device's underrun and overrun counts, from the `status` command; -1 on any
// failure.
static long control_underruns(const char* socket_path, long* overruns) {
    *overruns = -1;
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
            const char* over = strstr(reply, "\"overruns\":");
            if (key && over) {
                underruns = strtol(key + 12, NULL, 10);
                *overruns = strtol(over + 11, NULL, 10);
                break;
            }
        }
    }
    close(fd);
    return underruns;
}

struct event {
    double t_ms, first_byte_ms, vmm_cpu_ms, vmm_guest_ms, pa_cpu_ms;
    char text[160];
};
static struct event events[MAX_EVENTS];
static size_t event_count;

// For each "TONE-HEARD-ONSET N" line: the arrival of its first byte minus
// the arrival, at the microphone's own recorder, of the latest burst onset
// before it. The guest prints the line as soon as the read that holds the
// onset returns, and the UART hands each byte to the host as the guest writes
// it, so the first byte marks the moment the application had the sound; the
// rest of the line (one exit per byte) is the console's time, not the sound's
// (end_ms: the same from the line's last byte, for comparison).
static void report_capture(double start) {
    static double reference_ms[MAX_ONSETS];
    const size_t count = mic_recorder.onset_count;
    for (size_t i = 0; i < count; ++i) {
        double naive;
        reference_ms[i] = arrival_ms(&mic_recorder, mic_recorder.onset_frames[i], &naive) - start;
        printf("mic_onset t_ms=%.1f naive_ms=%.1f\n", reference_ms[i], naive - start);
    }
    if (mic_player.sink)
        printf("mic bursts=%d onsets=%zu chunks=%zu\n", mic_player.bursts, count, mic_recorder.chunk_count);
    for (size_t i = 0; i < event_count; ++i) {
        int heard;
        if (sscanf(events[i].text, "TONE-HEARD-ONSET %d", &heard) != 1) continue;
        const double t = events[i].first_byte_ms;
        size_t k = 0;
        while (k < count && reference_ms[k] <= t) ++k;
        // The latest onset before the line; none if that is older than any
        // plausible latency (a sound the recorder did not hear).
        if (k > 0 && t - reference_ms[k - 1] < 2000)
            printf("capture heard=%d burst=%zu ms=%.1f end_ms=%.1f\n", heard, k, t - reference_ms[k - 1],
                   events[i].t_ms - reference_ms[k - 1]);
        else
            printf("capture heard=%d burst=none ms=none\n", heard);
    }
}

int main(int argc, char** argv) {
    const char* log_path = NULL;
    const char* control = NULL;
    int timeout_s = 180;
    pid_t pulse = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+d:m:p:t:o:c:")) != -1) {
        switch (opt) {
        case 'd': monitor_recorder.source = optarg; break;
        case 'm': mic_player.sink = optarg; break;
        case 'p': pulse = atoi(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 'o': log_path = optarg; break;
        case 'c': control = optarg; break;
        default: usage();
        }
    }
    if (!monitor_recorder.source || optind >= argc) usage();
    char mic_monitor[256];
    if (mic_player.sink) {
        snprintf(mic_monitor, sizeof mic_monitor, "%s.monitor", mic_player.sink);
        mic_recorder.source = mic_monitor;
    }
    FILE* log = log_path ? fopen(log_path, "we") : NULL;
    if (log_path && !log) {
        perror(log_path);
        return 2;
    }

    // The monitor's recorder runs only between the guest's "AB-MARK
    // record-begin" and "AB-MARK record-end", the microphone's recorder and
    // player only from "TONE-LISTENING" to "TONE-LISTENED": a low-latency
    // client of a monitor makes the server render every few ms, which would
    // swamp PulseAudio's CPU time in the idle and playing phases.

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
    double line_begin = 0;  // when the line's first byte came
    int timed_out = 0, done = 0, status = 0, stall_queries = 0;
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
                if (buffer[i] != '\r') {
                    if (fill == 0) line_begin = t;
                    line[fill++] = buffer[i];
                }
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
                e->first_byte_ms = line_begin;
                e->vmm_cpu_ms = e->vmm_guest_ms = e->pa_cpu_ms = -1;
                cpu_ms(child, &e->vmm_cpu_ms, &e->vmm_guest_ms);
                if (pulse) cpu_ms(pulse, &e->pa_cpu_ms, &pa_guest);
                snprintf(e->text, sizeof e->text, "%s", tag);
                if (strncmp(tag, "TONE-PLAYING", 12) == 0) play_begin_count = snapshot_threads(child, play_begin);
                if (strncmp(tag, "TONE-PLAYED", 11) == 0) play_end_count = snapshot_threads(child, play_end);
                // After the CPU samples: the query costs the VMM a little.
                const char* at = strstr(tag, "record-end")                 ? "bursts-end"
                                 : strncmp(tag, "TONE-PLAYED", 11) == 0     ? "play-end"
                                 : strncmp(tag, "TONE-LISTENED", 13) == 0   ? "listen-end"
                                 : strncmp(tag, "TONE-LISTEN-STALL", 17) == 0 ? "listen-stall"
                                                                            : NULL;
                if (control && at && (strcmp(at, "listen-stall") != 0 || ++stall_queries <= 3)) {
                    long overruns;
                    const long underruns = control_underruns(control, &overruns);
                    printf("control at=%s t_ms=%.1f underruns=%ld overruns=%ld\n", at, t, underruns, overruns);
                }
            }
            if (strstr(line, "AB-MARK record-begin")) {
                start_recorder(&monitor_recorder);
            } else if (strstr(line, "AB-MARK record-end")) {
                stop_recorder(&monitor_recorder);
            } else if (strstr(line, "TONE-LISTENING") && mic_player.sink && mic_player.state == 0) {
                start_recorder(&mic_recorder);
                pthread_create(&mic_player.thread, NULL, play_bursts, &mic_player);
                mic_player.state = 1;
            } else if (strstr(line, "TONE-LISTENED") && mic_player.state == 1) {
                stop_player(&mic_player);
                stop_recorder(&mic_recorder);
            }
        }
    }
    close(out[0]);
    waitpid(child, &status, 0);
    stop_player(&mic_player);
    stop_recorder(&mic_recorder);
    stop_recorder(&monitor_recorder);
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
    static double onset_ms[MAX_ONSETS];
    const size_t onset_count = monitor_recorder.onset_count;
    for (size_t i = 0; i < onset_count; ++i) {
        double naive;
        onset_ms[i] = arrival_ms(&monitor_recorder, monitor_recorder.onset_frames[i], &naive) - start;
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
    report_capture(start);
    if (timed_out) printf("timeout=1\n");
    if (WIFEXITED(status))
        printf("exit=%d\n", WEXITSTATUS(status));
    else
        printf("exit=signal %d\n", WTERMSIG(status));
    printf("record_chunks=%zu\n", monitor_recorder.chunk_count);
    if (monitor_recorder.error[0]) printf("record_error=%s\n", monitor_recorder.error);
    if (mic_recorder.error[0]) printf("mic_record_error=%s\n", mic_recorder.error);
    if (mic_player.error[0]) printf("mic_play_error=%s\n", mic_player.error);
    const int failed = monitor_recorder.error[0] || mic_recorder.error[0] || mic_player.error[0];
    return timed_out || !WIFEXITED(status) || failed ? 1 : 0;
}
