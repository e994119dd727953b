#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include "CLifeboatSystem.h"

int lifeboat_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int lifeboat_posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int lifeboat_posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

off_t lifeboat_lseek_data(int fd, off_t offset) {
    return lseek(fd, offset, SEEK_DATA);
}

off_t lifeboat_lseek_hole(int fd, off_t offset) {
    return lseek(fd, offset, SEEK_HOLE);
}

unsigned int lifeboat_dev_major(dev_t device) {
    return major(device);
}

unsigned int lifeboat_dev_minor(dev_t device) {
    return minor(device);
}

int lifeboat_syncfs(int fd) {
    return syncfs(fd);
}

size_t lifeboat_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

int lifeboat_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}
