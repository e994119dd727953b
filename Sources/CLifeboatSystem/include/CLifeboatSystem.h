#ifndef LIFEBOAT_CSYSTEM_H
#define LIFEBOAT_CSYSTEM_H

#include <spawn.h>

// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module is not built
// with, so Swift cannot see them. Each wrapper calls the glibc function of the same name
// and returns what it returns (errno is set by the call where the function sets it).

/// pipe2(2): both ends created with the flags at once (O_CLOEXEC), so that a child spawned
/// by another thread between pipe() and fcntl() cannot inherit them.
int lifeboat_pipe2(int fds[2], int flags);

/// posix_spawn_file_actions_addchdir_np (glibc 2.29): the child's working directory.
int lifeboat_posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): closes every descriptor from
/// `lowest` up in the child, so it inherits nothing but standard input, output and error.
int lifeboat_posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int lowest);

#endif
