// SQLite's SQLITE_TRANSIENT/SQLITE_STATIC are macros casting integers to function pointers,
// which Swift cannot import; these wrappers bind with SQLITE_TRANSIENT semantics.
#ifndef STRATA_CSQLITE_SHIM_H
#define STRATA_CSQLITE_SHIM_H
#include <sqlite3.h>

static inline int strata_sqlite3_bind_text_transient(sqlite3_stmt *s, int i, const char *v, int n) {
    return sqlite3_bind_text(s, i, v, n, SQLITE_TRANSIENT);
}
static inline int strata_sqlite3_bind_blob_transient(sqlite3_stmt *s, int i, const void *v, int n) {
    return sqlite3_bind_blob(s, i, v, n, SQLITE_TRANSIENT);
}
static inline int strata_sqlite3_bind_blob_static(sqlite3_stmt *s, int i, const void *v, int n) {
    return sqlite3_bind_blob(s, i, v, n, SQLITE_STATIC);
}
static inline int strata_sqlite3_bind_text_static(sqlite3_stmt *s, int i, const char *v, int n) {
    return sqlite3_bind_text(s, i, v, n, SQLITE_STATIC);
}
#endif
