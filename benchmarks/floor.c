/* The naive floor: open, pread 4096 bytes, close, for every path listed in a file.
 * Prints the elapsed seconds (CLOCK_MONOTONIC) and the bytes read, nothing else.
 * Build: cc -O2 -o floor floor.c;  run: ./floor PATHS_FILE REPEATS */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATHS_FILE REPEATS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 1024, n = 0;
    char **paths = malloc(cap * sizeof *paths);
    char line[4096];
    while (paths != NULL && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (n == cap) {
            char **more = realloc(paths, (cap *= 2) * sizeof *paths);
            if (more == NULL)
                return 1;
            paths = more;
        }
        paths[n++] = strdup(line);
    }
    fclose(f);
    int repeats = atoi(argv[2]);
    double best = -1;
    unsigned long long total = 0;
    static char buf[4096];
    for (int r = 0; r < (repeats > 0 ? repeats : 1); r++) {
        struct timespec a, b;
        total = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (size_t i = 0; i < n; i++) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t got = pread(fd, buf, sizeof buf, 0);
            if (got > 0)
                total += (unsigned long long)got;
            close(fd);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        if (best < 0 || t < best)
            best = t;
    }
    printf("%.6f %llu\n", best, total);
    return 0;
}
