/* probe: the tools of itemloop's test images itemloop-test:noshell and
 * itemloop-test:musl, chosen by argv[0] like busybox, or `probe TOOL ARGS...`.
 * Built by .ci/setup-sandboxes.sh with musl-gcc (static, and linked against musl). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void nap(const char *s) {
    double d = strtod(s, NULL);
    struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int tool(const char *name, int argc, char **argv) {
    if (!strcmp(name, "true")) return 0;
    if (!strcmp(name, "false")) return 1;
    if (!strcmp(name, "echo")) {
        for (int i = 1; i < argc; i++) printf("%s%s", argv[i], i + 1 < argc ? " " : "");
        printf("\n");
        return 0;
    }
    if (!strcmp(name, "sleep") && argc > 1) { nap(argv[1]); return 0; }
    if (!strcmp(name, "cat")) {
        char buf[65536];
        ssize_t n;
        int fd = argc > 1 ? open(argv[1], O_RDONLY) : 0;
        if (fd < 0) { perror(argv[1]); return 1; }
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write(1, buf, (size_t)n) != n) return 1;
        return n < 0;
    }
    if (!strcmp(name, "spew") && argc > 1) {   /* N bytes of 'a', then END */
        static char buf[65536];
        memset(buf, 'a', sizeof buf);
        long long left = atoll(argv[1]);
        while (left > 0) {
            ssize_t n = write(1, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
            if (n <= 0) return 1;
            left -= n;
        }
        return write(1, "END\n", 4) != 4;
    }
    if (!strcmp(name, "bg") && argc > 1) {     /* a child that sleeps holding stdout */
        pid_t pid = fork();
        if (pid == 0) { execl("/proc/self/exe", "sleep", argv[1], (char *)0); _exit(127); }
        printf("%d\n", (int)pid);
        return 0;
    }
    if (!strcmp(name, "tree") && argc > 2) {   /* a background child, a setsid daemon, sleep */
        if (fork() == 0) { execl("/proc/self/exe", "sleep", argv[1], (char *)0); _exit(127); }
        if (fork() == 0) {
            setsid();
            if (fork() == 0) { execl("/proc/self/exe", "sleep", argv[2], (char *)0); _exit(127); }
            _exit(0);
        }
        execl("/proc/self/exe", "sleep", argv[1], (char *)0);
        return 127;
    }
    if (!strcmp(name, "alive") && argc > 1) {
        if (kill(atoi(argv[1]), 0) != 0) return 1;
        printf("running\n");
        return 0;
    }
    if (!strcmp(name, "write") && argc > 1) {  /* create a file, or say why not */
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1) {
            fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        return close(fd) != 0;
    }
    if (!strcmp(name, "exists") && argc > 1) return access(argv[1], F_OK) != 0;
    if (!strcmp(name, "id")) { printf("%d\n", (int)getuid()); return 0; }
    fprintf(stderr, "probe: unknown tool %s\n", name);
    return 2;
}

int main(int argc, char **argv) {
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    if (!strcmp(name, "probe") && argc > 1) return tool(argv[1], argc - 1, argv + 1);
    return tool(name, argc, argv);
}
