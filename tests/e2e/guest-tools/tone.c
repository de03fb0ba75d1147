/* Plays a sine wave through the kernel's ALSA PCM interface, or measures one.
 *
 *   tone play DEVICE HZ SECONDS   (in the guest: /dev/snd/pcmC0D0p, S16_LE
 *                                  stereo 48 kHz, 20 ms periods, 8 of them:
 *                                  a nested guest under TCG needs the slack)
 *   tone check FILE               (in the test host: FILE is raw S16_LE mono
 *                                  48 kHz; prints how long a tone lasts and its
 *                                  frequency from zero crossings)
 *
 * No alsa-lib in the busybox guest, so the ioctls of <sound/asound.h> are used
 * directly: HW_PARAMS with every parameter pinned, PREPARE, WRITEI_FRAMES,
 * DRAIN. Output lines start with TONE- for the scenario to check. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

static int play(const char *device, double hz, double seconds) {
    /* The whole tone first: the slow guest only copies while it plays. */
    const long total = (long)(seconds * RATE) / PERIOD_FRAMES * PERIOD_FRAMES;
    int16_t *tone = malloc(total * CHANNELS * sizeof *tone);
    for (long i = 0; i < total; ++i)
        tone[2 * i] = tone[2 * i + 1] = (int16_t)(12000 * sin(2 * M_PI * hz * (double)i / RATE));
    int fd = open(device, O_WRONLY);
    if (fd < 0) {
        printf("TONE-ERROR open %s: %s\n", device, strerror(errno));
        return 1;
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
    set_interval(&params, SNDRV_PCM_HW_PARAM_PERIOD_SIZE, PERIOD_FRAMES);
    set_interval(&params, SNDRV_PCM_HW_PARAM_PERIODS, PERIODS);
    if (ioctl(fd, SNDRV_PCM_IOCTL_HW_PARAMS, &params) < 0) {
        printf("TONE-ERROR hw_params: %s\n", strerror(errno));
        return 1;
    }
    if (ioctl(fd, SNDRV_PCM_IOCTL_PREPARE) < 0) {
        printf("TONE-ERROR prepare: %s\n", strerror(errno));
        return 1;
    }
    long written = 0;
    int xruns = 0;
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
    /* The longest silent stretch inside the tone: a dropout would show here. */
    size_t gap = 0, run = 0;
    for (size_t i = first; i <= last; ++i) {
        run = abs(samples[i]) < 200 ? run + 1 : 0;
        if (run > gap) gap = run;
    }
    const double seconds = (double)(last - first) / RATE;
    printf("TONE-HEARD seconds=%.3f hz=%.1f samples=%zu longest_quiet_ms=%.1f\n", seconds, crossings / 2.0 / seconds,
           count, gap * 1000.0 / RATE);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "play") == 0) return play(argv[2], atof(argv[3]), atof(argv[4]));
    if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
    fprintf(stderr, "usage: tone play DEVICE HZ SECONDS | tone check FILE\n");
    return 2;
}
