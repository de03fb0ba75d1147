/* evread DEVICE COUNT TIMEOUT_S: prints the key events of an evdev device on
 * the console ("ATOLL-KEY code=30 value=1") until COUNT of them arrived or
 * TIMEOUT_S seconds passed. Runs in the busybox test guest (built static). */
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: evread DEVICE COUNT TIMEOUT_S\n");
        return 2;
    }
    const int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    const int wanted = atoi(argv[2]);
    const time_t deadline = time(NULL) + atoi(argv[3]);
    int seen = 0;
    printf("ATOLL-EVREAD ready %s\n", argv[1]);
    fflush(stdout);
    while (seen < wanted && time(NULL) < deadline) {
        struct pollfd entry = {fd, POLLIN, 0};
        if (poll(&entry, 1, 500) != 1) continue;
        struct input_event event;
        if (read(fd, &event, sizeof event) != (ssize_t)sizeof event) break;
        if (event.type != EV_KEY) continue;
        printf("ATOLL-KEY code=%u value=%d\n", event.code, event.value);
        fflush(stdout);
        ++seen;
    }
    printf("ATOLL-EVREAD done keys=%d\n", seen);
    return seen >= wanted ? 0 : 1;
}
