/* Run a command and report its own resource use: "user_us sys_us maxrss_kb exit" on fd FD.
 * Peak RSS needs a small parent: Linux keeps a process's RSS high-water mark across exec, so a
 * child forked from the (big) benchmark process would report the benchmark's RSS as its own.
 * Build: cc -O2 -o spawn spawn.c;  run: ./spawn FD CMD ARGS... */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int out = atoi(argv[1]);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(out);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return 1;
    dprintf(out, "%ld %ld %ld %d\n", ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
            ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec, ru.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}
