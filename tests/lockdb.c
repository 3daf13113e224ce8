/*
 * lockdb.c - hold a write lock on an SQLite file for a while, as another
 * qnext (or any other program) would: `lockdb FILE SECONDS`.  Prints
 * "locked" once it holds the lock.  A test helper for cli-tui-locked.sh,
 * built by that script (it is not part of qnext).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

int
main(int argc, char **argv)
{
	sqlite3 *db;

	if (argc != 3 || sqlite3_open(argv[1], &db) != SQLITE_OK) {
		fprintf(stderr, "usage: lockdb FILE SECONDS\n");
		return 2;
	}
	/* EXCLUSIVE in WAL mode keeps out every writer; readers still read. */
	if (sqlite3_exec(db, "BEGIN EXCLUSIVE; DELETE FROM input_history;", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "lockdb: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	sleep((unsigned)atoi(argv[2]));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	return 0;
}
