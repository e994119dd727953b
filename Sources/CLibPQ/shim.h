#ifndef LIFEBOAT_CLIBPQ_SHIM_H
#define LIFEBOAT_CLIBPQ_SHIM_H
// libpq's client API. The include path comes from pkg-config (libpq-dev).
#include <libpq-fe.h>
#endif
