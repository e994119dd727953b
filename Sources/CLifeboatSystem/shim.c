#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
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
