/* The store's connection, shared by the files that make up the store (store.c, the lease
 * records; store_sessions.c, the bridge's named sessions). */
#ifndef SB_SERVER_STORE_INT_H
#define SB_SERVER_STORE_INT_H

#include "store.h"

#include <pthread.h>
#include <sqlite3.h>

struct sbs_store {
	sqlite3 *db;
	pthread_mutex_t mu;
};

sb_err *sbs_store_db_err(sqlite3 *db, const char *what);
/* Prepare sql into *out; the error names what was being done. */
sb_err *sbs_store_prepare(sbs_store *st, const char *sql, const char *what, sqlite3_stmt **out);

#endif
