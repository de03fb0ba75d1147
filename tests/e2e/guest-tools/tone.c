/* Plays a sine wave through the kernel's ALSA PCM interface, or measures one.
 *
 *   tone play DEVICE HZ SECONDS   (in the guest: /dev/snd/pcmC0D0p, S16_LE
 *                                  stereo 48 kHz, 20 ms periods, 8 of them:
 *                                  a nested guest under TCG needs the slack)
 *   tone bursts DEVICE HZ COUNT BURST_MS GAP_MS
 *                                 (in the guest, for bench/audio: COUNT tone
 *                                  bursts, each from a stopped stream after
 *                                  silence; "TONE-BURST N" goes to the console
 *                                  right before each burst's write)
 *   tone listen DEVICE COUNT TIMEOUT_S
 *                                 (in the guest, for bench/audio: records from
 *                                  the capture PCM in 10 ms periods and prints
 *                                  "TONE-HEARD-ONSET N" as soon as a read holds
 *                                  a tone after at least 200 ms of silence,
 *                                  until COUNT onsets or TIMEOUT_S seconds)
 *   tone record DEVICE SECONDS FILE
 *                                 (in the guest: /dev/snd/pcmC0D0c, the same
 *                                  format; writes the left channel to FILE as
 *                                  raw S16_LE mono, for `tone check`)
 *   tone make FILE HZ SECONDS     (in the test host: a raw S16_LE mono 48 kHz
 *                                  sine for pacat to play into a source)
 *   tone check FILE               (FILE is raw S16_LE mono 48 kHz; prints how
 *                                  long a tone lasts and its frequency from
 *                                  zero crossings)
 *
 * No alsa-lib in the busybox guest, so the ioctls of <sound/asound.h> are used
 * directly: HW_PARAMS with every parameter pinned, PREPARE, WRITEI_FRAMES,
 * DRAIN. Output lines start with TONE- for the scenario to check. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <sound/asound.h>

#define RATE 48000
#define CHANNELS 2
#define PERIOD_FRAMES 960
#define PERIODS 8
/* tone listen: a read returns each 10 ms of sound, so an onset is seen within
 * 10 ms of reaching the guest; 16 of them (snd_virtio's most), so a guest
 * stalled for a while in the nested test host does not overrun at once. The
 * capture buffer's size adds no latency: a read returns as soon as a period
 * is in. */
#define LISTEN_PERIOD_FRAMES 480
#define LISTEN_PERIODS 16
#define LOUD 2000 /* the host's tone peaks at 12000 */
/* The host's bursts are 400-600 ms apart: a dropout inside one (the loaded
 * test host has them) must not count as another onset. */
#define QUIET_BEFORE_ONSET (RATE / 5) /* 200 ms */

static void set_mask(struct snd_pcm_hw_params *params, int parameter, unsigned value) {
    struct snd_mask *mask = &params->masks[parameter - SNDRV_PCM_HW_PARAM_FIRST_MASK];
    memset(mask, 0, sizeof *mask);
    mask->bits[value >> 5] |= 1u << (value & 31);
}

static void set_interval(struct snd_pcm_hw_params *params, int parameter, unsigned value) {
    struct snd_interval *interval = &params->intervals[parameter - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL];
    memset(interval, 0, sizeof *interval);
    interval->min = interval->max = value;
    interval->integer = 1;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int16_t *make_tone(long frames, double hz) {
    int16_t *tone = malloc(frames * CHANNELS * sizeof *tone);
    for (long i = 0; i < frames; ++i)
        tone[2 * i] = tone[2 * i + 1] = (int16_t)(12000 * sin(2 * M_PI * hz * (double)i / RATE));
    return tone;
}

/* Opens DEVICE and sets the hardware parameters; -1 (reported) on failure. */
static int open_pcm_periods(const char *device, int flags, unsigned period_frames, unsigned periods) {
    int fd = open(device, flags);
    if (fd < 0) {
        printf("TONE-ERROR open %s: %s\n", device, strerror(errno));
        return -1;
    }
    struct snd_pcm_hw_params params;
    memset(&params, 0, sizeof params);
    /* Everything allowed, then the few parameters that matter pinned. */
    for (int i = 0; i <= SNDRV_PCM_HW_PARAM_LAST_MASK - SNDRV_PCM_HW_PARAM_FIRST_MASK; ++i)
        memset(&params.masks[i], 0xff, sizeof params.masks[i]);
    for (int i = 0; i <= SNDRV_PCM_HW_PARAM_LAST_INTERVAL - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL; ++i) {
        params.intervals[i].min = 0;
        params.intervals[i].max = ~0u;
    }
    params.rmask = ~0u;
    set_mask(&params, SNDRV_PCM_HW_PARAM_ACCESS, SNDRV_PCM_ACCESS_RW_INTERLEAVED);
    set_mask(&params, SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S16_LE);
    set_mask(&params, SNDRV_PCM_HW_PARAM_SUBFORMAT, SNDRV_PCM_SUBFORMAT_STD);
    set_interval(&params, SNDRV_PCM_HW_PARAM_CHANNELS, CHANNELS);
    set_interval(&params, SNDRV_PCM_HW_PARAM_RATE, RATE);
    set_interval(&params, SNDRV_PCM_HW_PARAM_PERIOD_SIZE, period_frames);
    set_interval(&params, SNDRV_PCM_HW_PARAM_PERIODS, periods);
    if (ioctl(fd, SNDRV_PCM_IOCTL_HW_PARAMS, &params) < 0) {
        printf("TONE-ERROR hw_params: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int open_pcm(const char *device, int flags) {
    return open_pcm_periods(device, flags, PERIOD_FRAMES, PERIODS);
}

static int play(const char *device, double hz, double seconds) {
    /* The whole tone first: the slow guest only copies while it plays. */
    const long total = (long)(seconds * RATE) / PERIOD_FRAMES * PERIOD_FRAMES;
    int16_t *tone = make_tone(total, hz);
    int fd = open_pcm(device, O_WRONLY);
    if (fd < 0) return 1;
    if (ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) < 0) {
        printf("TONE-ERROR prepare: %s\n", strerror(errno));
        return 1;
    }
    long written = 0;
    int xruns = 0;
    /* bench/audio samples the VMM's CPU time at this line and at TONE-PLAYED. */
    printf("TONE-PLAYING\n");
    fflush(stdout);
    const double begin = now_seconds();
    while (written < total) {
        struct snd_xferi transfer = {.result = 0, .buf = tone + written * CHANNELS, .frames = PERIOD_FRAMES};
        if (ioctl(fd, SNDRV_PCM_IOCTL_WRITEI_FRAMES, &transfer) < 0) {
            if (errno == EPIPE) { /* underrun in the guest: prepare and go on */
                ++xruns;
                ioctl(fd, SNDRV_PCM_IOCTL_PREPARE);
                continue;
            }
            printf("TONE-ERROR write: %s\n", strerror(errno));
            return 1;
        }
        written += transfer.result;
    }
    ioctl(fd, SNDRV_PCM_IOCTL_DRAIN);
    const double elapsed = now_seconds() - begin;
    close(fd);
    printf("TONE-PLAYED frames=%ld seconds=%.3f xruns=%d\n", written, elapsed, xruns);
    return 0;
}

/* Each burst starts a stopped stream (PREPARE, then the first write starts
 * it: the kernel's default start threshold is one frame), so the whole path
 * from the write to the host's speaker is measured, not the depth of a
 * running ring buffer. The marker goes to the console right before the
 * write: the 8250 driver hands the few bytes to the UART from its interrupt
 * at once (they fit in its FIFO), so the host sees them within about an
 * interrupt's round trip of the write. Waiting for the UART to drain
 * (tcdrain) would be worse: the driver polls in jiffies, 4-20 ms here. */
static int bursts(const char *device, double hz, int count, int burst_ms, int gap_ms) {
    const long frames = (long)burst_ms * RATE / 1000;
    if (frames <= 0 || frames > (long)PERIOD_FRAMES * PERIODS) {
        printf("TONE-ERROR bursts: BURST_MS must fit in the %d ms buffer\n", PERIOD_FRAMES * PERIODS * 1000 / RATE);
        return 1;
    }
    int16_t *tone = make_tone(frames, hz);
    int fd = open_pcm(device, O_WRONLY);
    if (fd < 0) return 1;
    srand(1);
    for (int n = 1; n <= count; ++n) {
        if (ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) < 0) {
            printf("TONE-ERROR prepare: %s\n", strerror(errno));
            return 1;
        }
        const double before_marker = now_seconds();
        printf("TONE-BURST %d\n", n);
        fflush(stdout);
        const double before_write = now_seconds();
        struct snd_xferi transfer = {.result = 0, .buf = tone, .frames = frames};
        if (ioctl(fd, SNDRV_PCM_IOCTL_WRITEI_FRAMES, &transfer) < 0) {
            printf("TONE-ERROR write: %s\n", strerror(errno));
            return 1;
        }
        const double after_write = now_seconds();
        ioctl(fd, SNDRV_PCM_IOCTL_DRAIN);
        printf("TONE-BURST-DONE %d marker_ms=%.2f write_ms=%.2f drain_ms=%.1f\n", n,
               (before_write - before_marker) * 1e3, (after_write - before_write) * 1e3,
               (now_seconds() - after_write) * 1e3);
        fflush(stdout);
        /* A gap that varies, so that no period of the host's audio path lines
         * up with the bursts by chance. */
        const int gap = gap_ms + (gap_ms > 0 ? rand() % (gap_ms / 2 + 1) : 0);
        usleep((useconds_t)gap * 1000);
    }
    close(fd);
    return 0;
}

/* Capture starts with the first read (the default start threshold is one
 * frame). Only the left channel is kept: the host plays the same sine on both. */
static int record(const char *device, double seconds, const char *path) {
    const long total = (long)(seconds * RATE) / PERIOD_FRAMES * PERIOD_FRAMES;
    int16_t *frames = malloc(PERIOD_FRAMES * CHANNELS * sizeof *frames);
    int16_t *left = malloc(total * sizeof *left);
    int fd = open_pcm(device, O_RDONLY);
    if (fd < 0) return 1;
    if (ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) < 0) {
        printf("TONE-ERROR prepare: %s\n", strerror(errno));
        return 1;
    }
    printf("TONE-RECORDING\n");
    fflush(stdout);
    long got = 0;
    int xruns = 0;
    const double begin = now_seconds();
    while (got < total) {
        struct snd_xferi transfer = {.result = 0, .buf = frames, .frames = PERIOD_FRAMES};
        if (ioctl(fd, SNDRV_PCM_IOCTL_READI_FRAMES, &transfer) < 0) {
            if (errno == EPIPE) { /* overrun in the guest: what was lost is lost */
                ++xruns;
                ioctl(fd, SNDRV_PCM_IOCTL_PREPARE);
                continue;
            }
            printf("TONE-ERROR read: %s\n", strerror(errno));
            return 1;
        }
        for (long i = 0; i < transfer.result && got < total; ++i) left[got++] = frames[CHANNELS * i];
    }
    close(fd);
    FILE *file = fopen(path, "wb");
    if (!file || fwrite(left, sizeof *left, got, file) != (size_t)got || fclose(file) != 0) {
        printf("TONE-ERROR %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("TONE-RECORDED frames=%ld seconds=%.3f xruns=%d\n", got, now_seconds() - begin, xruns);
    return 0;
}

static void on_alarm(int signal) { (void)signal; }

/* The kernel's view of a PCM (state, hw_ptr, appl_ptr, avail...) on one
 * line, from /proc/asound/cardC/pcmDc/sub0/status for /dev/snd/pcmCcDDc. */
static void print_pcm_status(const char *device, const char *tag) {
    int card, pcm;
    char path[96], line[128];
    if (sscanf(device, "/dev/snd/pcmC%dD%d", &card, &pcm) != 2) return;
    snprintf(path, sizeof path, "/proc/asound/card%d/pcm%dc/sub0/status", card, pcm);
    FILE *file = fopen(path, "r");
    if (!file) return;
    printf("%s", tag);
    while (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "state", 5) == 0 || strstr(line, "_ptr") || strncmp(line, "avail", 5) == 0 ||
            strncmp(line, "delay", 5) == 0)
            printf(" [%s]", line);
    }
    printf("\n");
    fclose(file);
}

/* One stream, started by the first read and read without a break, as a
 * program that listens does. The onset line is the first thing printed after
 * the read that holds the onset returns: the host takes the arrival of its
 * first byte as the moment the application had the sound (each byte the
 * guest writes to the UART reaches the host at once, one exit each). The
 * details follow on a second line, after the first has gone. */
static int listen_for(const char *device, int count, double timeout_s) {
    /* A device that never delivers must not hang the guest: the alarm
     * interrupts the blocked read (no SA_RESTART). */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    sigaction(SIGALRM, &action, NULL);
    alarm((unsigned)timeout_s + 2);
    int16_t *frames = malloc(LISTEN_PERIOD_FRAMES * CHANNELS * sizeof *frames);
    int fd = open_pcm_periods(device, O_RDONLY, LISTEN_PERIOD_FRAMES, LISTEN_PERIODS);
    if (fd < 0) return 1;
    if (ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) < 0) {
        printf("TONE-ERROR prepare: %s\n", strerror(errno));
        return 1;
    }
    long quiet = 0; /* frames below LOUD since the last loud one (or the start) */
    long frames_read = 0;
    int heard = 0, xruns = 0, stalls = 0, reads = 0;
    const double opened = now_seconds();
    double begin = opened, last_read = opened, longest_wait = 0;
    while (heard < count) {
        struct snd_xferi transfer = {.result = 0, .buf = frames, .frames = LISTEN_PERIOD_FRAMES};
        if (ioctl(fd, SNDRV_PCM_IOCTL_READI_FRAMES, &transfer) < 0) {
            if (errno == EPIPE) { /* overrun: frames were lost, so no silence can be vouched for */
                ++xruns;
                quiet = 0;
                const int prepared = ioctl(fd, SNDRV_PCM_IOCTL_PREPARE);
                printf("TONE-LISTEN-XRUN %d prepare=%s\n", xruns, prepared < 0 ? strerror(errno) : "ok");
                fflush(stdout);
                continue;
            }
            if (errno == EINTR) break;
            if (errno == EIO) {
                /* No period came in time (Linux gives up a read after about
                 * 1.1 buffer times, 176 ms here, with -EIO); the stream still
                 * runs, and nothing was lost that an overrun would not report. */
                ++stalls;
                printf("TONE-LISTEN-STALL %d waited_ms=%.1f\n", stalls, (now_seconds() - last_read) * 1e3);
                if (stalls <= 3 || stalls % 20 == 0) print_pcm_status(device, "TONE-LISTEN-PCM");
                fflush(stdout);
                if (now_seconds() - opened > timeout_s) break;
                continue;
            }
            printf("TONE-ERROR read: %s\n", strerror(errno));
            return 1;
        }
        const double now = now_seconds();
        if (reads++ == 0) {
            begin = now;
            printf("TONE-LISTENING period_ms=%d periods=%d\n", LISTEN_PERIOD_FRAMES * 1000 / RATE, LISTEN_PERIODS);
            fflush(stdout);
        } else if (now - last_read > longest_wait) {
            longest_wait = now - last_read;
        }
        last_read = now;
        long onset = -1;
        for (long i = 0; i < transfer.result; ++i) {
            if (abs(frames[CHANNELS * i]) < LOUD) {
                ++quiet;
                continue;
            }
            if (quiet >= QUIET_BEFORE_ONSET && onset < 0) onset = i;
            quiet = 0;
        }
        frames_read += transfer.result;
        if (onset >= 0) {
            printf("TONE-HEARD-ONSET %d\n", ++heard);
            fflush(stdout);
            /* onset_ms: how far into the read the tone began (the read's
             * last frame came from the source that much later than the
             * onset's); print_ms: how long the line above took to go. */
            printf("TONE-HEARD-DETAIL %d onset_ms=%.1f read_ms=%ld print_ms=%.1f\n", heard,
                   (double)onset * 1000 / RATE, transfer.result * 1000 / RATE, (now_seconds() - now) * 1e3);
            fflush(stdout);
        }
        if (now - opened > timeout_s) break;
    }
    close(fd);
    printf("TONE-LISTENED heard=%d seconds=%.3f frames=%ld xruns=%d stalls=%d longest_wait_ms=%.1f\n", heard,
           last_read - begin, frames_read, xruns, stalls, longest_wait * 1e3);
    fflush(stdout);
    return heard == count ? 0 : 1;
}

static int make(const char *path, double hz, double seconds) {
    const long total = (long)(seconds * RATE);
    FILE *file = fopen(path, "wb");
    if (!file) {
        printf("TONE-ERROR %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (long i = 0; i < total; ++i) {
        const int16_t sample = (int16_t)(12000 * sin(2 * M_PI * hz * (double)i / RATE));
        fwrite(&sample, sizeof sample, 1, file);
    }
    return fclose(file) == 0 ? 0 : 1;
}

static int check(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        printf("TONE-ERROR %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t capacity = 1 << 20, count = 0;
    int16_t *samples = malloc(capacity * sizeof *samples);
    size_t got;
    while ((got = fread(samples + count, sizeof *samples, capacity - count, file)) > 0) {
        count += got;
        if (count == capacity) samples = realloc(samples, (capacity *= 2) * sizeof *samples);
    }
    fclose(file);
    size_t first = count, last = 0;
    for (size_t i = 0; i < count; ++i) {
        if (abs(samples[i]) > 2000) {
            if (first == count) first = i;
            last = i;
        }
    }
    if (first >= last) {
        printf("TONE-HEARD seconds=0.000 hz=0.0 samples=%zu\n", count);
        return 0;
    }
    size_t crossings = 0;
    for (size_t i = first + 1; i <= last; ++i)
        if ((samples[i - 1] < 0) != (samples[i] < 0)) ++crossings;
    /* The longest silent stretch inside the tone (a dropout would show here),
     * and the longest stretch without one, with its own frequency: a nested
     * test host stalls now and then, and the tone's pitch is still checkable
     * between its stalls. A dropout is over 1 ms below the threshold. */
    size_t gap = 0, run = 0, unbroken = 0, unbroken_crossings = 0, start = first, run_crossings = 0;
    for (size_t i = first + 1; i <= last; ++i) {
        run = abs(samples[i]) < 200 ? run + 1 : 0;
        if (run > gap) gap = run;
        if (run > RATE / 1000 || i == last) {
            const size_t end = i == last ? last : i - run;
            if (end > start && end - start > unbroken) {
                unbroken = end - start;
                unbroken_crossings = run_crossings;
            }
            if (i != last) {
                while (i < last && abs(samples[i + 1]) < 200) {
                    ++i;
                    ++run;
                }
                if (run > gap) gap = run;
                start = i + 1;
                run_crossings = 0;
                run = 0;
            }
            continue;
        }
        if ((samples[i - 1] < 0) != (samples[i] < 0)) ++run_crossings;
    }
    const double seconds = (double)(last - first) / RATE;
    const double unbroken_seconds = (double)unbroken / RATE;
    printf("TONE-HEARD seconds=%.3f hz=%.1f samples=%zu longest_quiet_ms=%.1f unbroken_seconds=%.3f unbroken_hz=%.1f\n",
           seconds, crossings / 2.0 / seconds, count, gap * 1000.0 / RATE, unbroken_seconds,
           unbroken > 0 ? unbroken_crossings / 2.0 / unbroken_seconds : 0.0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "play") == 0) return play(argv[2], atof(argv[3]), atof(argv[4]));
    if (argc == 7 && strcmp(argv[1], "bursts") == 0)
        return bursts(argv[2], atof(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    if (argc == 5 && strcmp(argv[1], "listen") == 0) return listen_for(argv[2], atoi(argv[3]), atof(argv[4]));
    if (argc == 5 && strcmp(argv[1], "record") == 0) return record(argv[2], atof(argv[3]), argv[4]);
    if (argc == 5 && strcmp(argv[1], "make") == 0) return make(argv[2], atof(argv[3]), atof(argv[4]));
    if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
    fprintf(stderr, "usage: tone play DEVICE HZ SECONDS | tone bursts DEVICE HZ COUNT BURST_MS GAP_MS |\n"
                    "       tone listen DEVICE COUNT TIMEOUT_S | tone record DEVICE SECONDS FILE |\n"
                    "       tone make FILE HZ SECONDS | tone check FILE\n");
    return 2;
}
