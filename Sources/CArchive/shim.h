#ifndef LIFEBOAT_CARCHIVE_SHIM_H
#define LIFEBOAT_CARCHIVE_SHIM_H
// libarchive's reading and writing APIs (libarchive-dev, found through pkg-config).
#include <archive.h>
#include <archive_entry.h>
#endif
