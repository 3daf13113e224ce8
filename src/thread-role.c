/*
 * thread-role.c - the calling thread's role, kept in a thread-local.
 *
 * Any thread.
 */
#include "thread-role.h"

#include "util.h"

static _Thread_local int role = ROLE_ANY;

void
thread_role_set(int roles)
{
	role = roles;
}

int
thread_role(void)
{
	return role;
}

static const char *
role_name(int r)
{
	if (r == ROLE_ANY)
		return "any";
	if (r & ROLE_UI)
		return r & ROLE_ENGINE ? "ui+engine" : "ui";
	if (r & ROLE_ENGINE)
		return "engine";
	if (r & ROLE_WORKER)
		return "worker";
	return r & ROLE_IO ? "io" : "none";
}

void
thread_role_check(int roles, const char *func)
{
	if (!(role & roles))
		fatal("%s called on the %s thread, which may not (wants %s)", func, role_name(role),
		      role_name(roles));
}
