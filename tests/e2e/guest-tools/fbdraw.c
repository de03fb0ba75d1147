/* fbdraw FILE: copies FILE (raw pixels in the framebuffer's own layout) into
 * /dev/fb0 through a shared mapping, as fbdev clients draw. (A write(2) to
 * the DRM fbdev of Linux 6.12 updates its memory without flushing it to the
 * device; the mapping's deferred I/O does flush.) Runs in the busybox test
 * guest (built static). */
#include <fcntl.h>
#include <linux/fb.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fbdraw FILE\n");
        return 2;
    }
    const int image = open(argv[1], O_RDONLY);
    const int fb = open("/dev/fb0", O_RDWR);
    struct fb_fix_screeninfo fix;
    struct stat info;
    if (image < 0 || fb < 0 || ioctl(fb, FBIOGET_FSCREENINFO, &fix) != 0 || fstat(image, &info) != 0) {
        perror("fbdraw");
        return 1;
    }
    size_t length = fix.smem_len;
    if ((size_t)info.st_size < length) length = (size_t)info.st_size;
    unsigned char* screen = mmap(NULL, fix.smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0);
    unsigned char* pixels = mmap(NULL, length, PROT_READ, MAP_PRIVATE, image, 0);
    if (screen == MAP_FAILED || pixels == MAP_FAILED) {
        perror("fbdraw: mmap");
        return 1;
    }
    memcpy(screen, pixels, length);
    msync(screen, fix.smem_len, MS_SYNC);
    munmap(screen, fix.smem_len);
    printf("fbdraw: %zu bytes\n", length);
    return 0;
}
