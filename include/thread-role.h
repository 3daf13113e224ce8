/*
 * thread-role.h - which of qnext's threads is running, and cheap checks of
 * the rule every header states ("UI thread only", "engine thread only").
 *
 * A thread says what it is once, first thing (thread_role_set); until then
 * it may play every role, so unit tests and the line-mode commands, which
 * run the engine on the main thread, pass every check.  assert_ui() and
 * assert_engine() go at the exported entry points of the modules that belong
 * to one thread.  They compile to nothing in release builds (NDEBUG) and
 * abort through fatal() in debug and sanitizer builds, naming the function
 * and the thread that called it.
 *
 * Any thread.
 */
#ifndef QNEXT_THREAD_ROLE_H
#define QNEXT_THREAD_ROLE_H

enum thread_role {
	ROLE_UI = 1 << 0,     /* curses, readline, SQLite (ui/, src/store.c) */
	ROLE_ENGINE = 1 << 1, /* the model: session, forward pass, tokenizer */
	ROLE_WORKER = 1 << 2, /* a worker of the engine's pool (engine/pool.c) */
	ROLE_IO = 1 << 3,     /* a helper thread: expert-cache reads, tickers, loaders */
	ROLE_ANY = ROLE_UI | ROLE_ENGINE | ROLE_WORKER | ROLE_IO,
};

/* Set the calling thread's role(s); a bitwise or of enum thread_role. */
void thread_role_set(int roles);
/* The calling thread's roles (ROLE_ANY until thread_role_set). */
int thread_role(void);
/* Abort (fatal) naming func when the calling thread has none of roles. */
void thread_role_check(int roles, const char *func);

#ifdef NDEBUG
#define assert_ui()     ((void)0)
#define assert_engine() ((void)0)
#else
#define assert_ui()     thread_role_check(ROLE_UI, __func__)
#define assert_engine() thread_role_check(ROLE_ENGINE, __func__)
#endif

#endif
