/* fbbench KEYBOARD SECONDS: the display benchmark's guest side (bench/display).
 *
 * Phase 1, throughput: redraws the whole of /dev/fb0 in a loop, every frame
 * different (tiles of flat colour that all change), with the frame number in a marker block
 * at the top-left (pixel = R: counter low byte, G: counter high byte, B: 0x5a),
 * and flushes each frame with msync (the DRM fbdev's deferred I/O sends it to
 * the GPU at once, rather than at its next 50 ms tick). Ends at the first key
 * press on KEYBOARD (an evdev device) or after SECONDS.
 *
 * Phase 2, latency: the screen stays still; the marker shows B 0xa5 and a
 * counter that grows by one at each key press (only the marker block is
 * redrawn and flushed). Escape ends it.
 *
 * A VNC client (vncbench.cpp) reads the marker to count distinct frames and to
 * time a key press to the update that shows its effect. Static, for the
 * busybox benchmark guest. */
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { kMarkerWidth = 64, kMarkerHeight = 16, kThroughputMarker = 0x5a, kLatencyMarker = 0xa5 };

static struct fb_var_screeninfo var;
static struct fb_fix_screeninfo fix;
static uint8_t* screen;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void flush(void) { msync(screen, fix.smem_len, MS_SYNC); }

static void draw_marker(uint32_t counter, uint32_t kind) {
    const uint32_t value = (counter & 0xff) << 16 | ((counter >> 8) & 0xff) << 8 | kind;
    for (uint32_t y = 0; y < kMarkerHeight && y < var.yres; ++y) {
        uint32_t* row = (uint32_t*)(screen + (size_t)y * fix.line_length);
        for (uint32_t x = 0; x < kMarkerWidth && x < var.xres; ++x) row[x] = value;
    }
}

/* 16x16 tiles of flat colour, every tile a new colour in every frame: the
 * whole screen changes, as when a desktop redraws a full-screen window, with
 * the flat areas such a screen has (a photograph-like picture would make both
 * servers spend their time in zlib rather than in moving frames). */
static void draw_frame(uint32_t frame) {
    for (uint32_t y = 0; y < var.yres; ++y) {
        uint32_t* row = (uint32_t*)(screen + (size_t)y * fix.line_length);
        const uint32_t ty = y / 16;
        /* The marker block is drawn once, last: a frame caught half drawn (the
         * fbdev's 50 ms timer may flush in the middle of one) still shows the
         * previous frame's number, never a tile where the number should be. */
        for (uint32_t x = y < kMarkerHeight ? kMarkerWidth : 0; x < var.xres; ++x) {
            const uint32_t tx = x / 16;
            const uint32_t r = (tx * 16 + 4 * frame) & 0xff;
            const uint32_t g = (ty * 16 + 2 * frame) & 0xff;
            const uint32_t b = (tx + ty + frame) & 0xff;
            row[x] = r << 16 | g << 8 | b;
        }
    }
    draw_marker(frame, kThroughputMarker);
}

/* The code of the next key press (value 1), or -1 when no event came within
 * timeout_ms. Releases and SYN_REPORTs are skipped. */
static int next_press(int keyboard, int timeout_ms) {
    for (;;) {
        struct pollfd entry = {keyboard, POLLIN, 0};
        if (poll(&entry, 1, timeout_ms) != 1) return -1;
        struct input_event event;
        if (read(keyboard, &event, sizeof event) != (ssize_t)sizeof event) return -1;
        if (event.type == EV_KEY && event.value == 1) return event.code;
    }
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fbbench KEYBOARD SECONDS\n");
        return 2;
    }
    const double seconds = atof(argv[2]);
    const int fb = open("/dev/fb0", O_RDWR);
    const int keyboard = open(argv[1], O_RDONLY | O_NONBLOCK);
    if (fb < 0 || keyboard < 0 || ioctl(fb, FBIOGET_VSCREENINFO, &var) != 0 ||
        ioctl(fb, FBIOGET_FSCREENINFO, &fix) != 0) {
        perror("fbbench");
        return 1;
    }
    if (var.bits_per_pixel != 32) {
        fprintf(stderr, "fbbench: %u bits per pixel, expected 32\n", var.bits_per_pixel);
        return 1;
    }
    screen = mmap(NULL, fix.smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0);
    if (screen == MAP_FAILED) {
        perror("fbbench: mmap");
        return 1;
    }
    printf("FBBENCH-START %ux%u stride=%u\n", var.xres, var.yres, fix.line_length);
    fflush(stdout);

    const double start = now_s();
    uint32_t frame = 0;
    while (now_s() - start < seconds) {
        draw_frame(++frame);
        flush();
        if (next_press(keyboard, 0) >= 0) break;
    }
    const double elapsed = now_s() - start;
    printf("FBBENCH-THROUGHPUT frames=%u seconds=%.2f fps=%.1f\n", frame, elapsed, frame / elapsed);
    fflush(stdout);

    uint32_t presses = 0;
    draw_marker(0, kLatencyMarker);
    flush();
    for (;;) {
        const int code = next_press(keyboard, 120000);
        if (code < 0 || code == KEY_ESC) break;
        draw_marker(++presses, kLatencyMarker);
        flush();
    }
    printf("FBBENCH-LATENCY presses=%u\n", presses);
    return 0;
}
