#ifndef LIFEBOAT_CSYSTEM_H
#define LIFEBOAT_CSYSTEM_H

#include <spawn.h>
#include <sys/types.h>

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

/// lseek(2) with SEEK_DATA: the offset of the first byte of data at or after `offset`;
/// -1 with ENXIO when only a hole follows. Finds the data regions of a sparse file.
off_t lifeboat_lseek_data(int fd, off_t offset);

/// lseek(2) with SEEK_HOLE: the offset of the first hole at or after `offset` (the end of
/// the file counts as a hole).
off_t lifeboat_lseek_hole(int fd, off_t offset);

/// major(3) and minor(3) of a device number (macros in <sys/sysmacros.h>, which Swift does
/// not import).
unsigned int lifeboat_dev_major(dev_t device);
unsigned int lifeboat_dev_minor(dev_t device);

/// syncfs(2): writes out every dirty page of the file system holding `fd` (a restore syncs
/// the data directory once instead of every file in it).
int lifeboat_syncfs(int fd);

/// Bytes malloc has handed out and not taken back (mallinfo2(3): `uordblks + hblkhd`, the
/// blocks it mmapped included), for tests that bound what a hostile input makes us allocate.
size_t lifeboat_heap_in_use(void);

/// mallopt(3) M_ARENA_MAX: at most `count` malloc arenas (glibc's default is eight per core,
/// one per thread that allocates). Returns 1 on success, 0 on failure, as mallopt does.
int lifeboat_limit_malloc_arenas(int count);

#endif
