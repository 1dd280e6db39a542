#ifndef STRATA_CARCHIVE_SHIM_H
#define STRATA_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
