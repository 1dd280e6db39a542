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
// sqlite3_db_config is variadic; this is its (int op, int value, int *result) form, used for
// the boolean options (SQLITE_DBCONFIG_DEFENSIVE, SQLITE_DBCONFIG_TRUSTED_SCHEMA, ...).
static inline int strata_sqlite3_db_config_bool(sqlite3 *db, int op, int value) {
    int result = -1;
    int rc = sqlite3_db_config(db, op, value, &result);
    return rc == SQLITE_OK ? result : -1;
}
#endif
